package pen_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

// pen has no check mode: a real pen is started on a config with the largest
// weight and maxconn services.Validate accepts (and the smallest) and must
// serve through both servers. A wrapped (negative) max would refuse every
// connection to its server.
func TestLimitsAcceptedByProxy(t *testing.T) {
	a, b := namedBackend(t, "a"), namedBackend(t, "b")
	a.Weight, a.MaxConn = services.MaxWeight, services.MaxServerConns
	b.Weight, b.MaxConn = 1, 1
	s := svc(a, b)
	s.Port = 65535
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := pen.Render(pen.Params{Servers: 2}, s, pen.NewSlots(2))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), " weight 1000 max 2147483647 hard 2147483647\n") {
		t.Fatalf("config:\n%s", cfg)
	}
	// pen has no check mode: pen.Parse is the check the agent and the dry
	// run apply before pen reads a config. It must accept every value the
	// contract does, or a valid service is refused as a bad config.
	if err := pen.Parse(cfg); err != nil {
		t.Fatalf("pen.Parse refuses a config at the contract's limits: %v", err)
	}
	cfgPath := filepath.Join(t.TempDir(), "cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "tcp")
	startPen(t, false, port, cfgPath)
	seen := map[string]bool{}
	waitFor(t, func() bool { seen[get(port)] = true; return seen["a"] && seen["b"] }, "pen to serve through both servers")
}
