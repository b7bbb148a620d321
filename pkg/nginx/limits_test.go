package nginx_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Every server value at the largest services.Validate accepts passes the
// real `nginx -t` (nginx does not read service timeouts).
func TestLimitsAcceptedByProxy(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 62)+"b.", 3) + strings.Repeat("c", services.MaxNameLen-3*64)
	vhosts := []nginx.VHost{{Host: long, Service: services.Key{Port: 65535, Protocol: services.TCP},
		Servers: []services.Server{
			{IP: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Port: 65535, Weight: services.MaxWeight, MaxConn: services.MaxServerConns},
			{IP: netip.MustParseAddr("10.0.0.1"), Port: 1, Weight: 1, MaxConn: 1},
			{IP: netip.MustParseAddr("10.0.0.2"), Port: 1, Weight: 0},
		}}}
	cfg := checkWithNginx(t, nginx.Params{Port: 65535, MaxConnections: 1}, vhosts)
	for _, want := range []string{"weight=256 max_conns=2147483647;", "weight=1 max_conns=1;", "10.0.0.2:1 down;", "listen 65535"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
