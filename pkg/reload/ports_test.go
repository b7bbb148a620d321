package reload

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// A port held by another process must cost only its own service: HAProxy
// alone would refuse to start with every listener, and the next apply after
// the port is freed brings the service up.
func TestPortHeldByAnotherProcess(t *testing.T) {
	bs := newBackends(t, 2)
	blocker, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	blocked := blocker.Addr().(*net.TCPAddr).Port
	defer blocker.Close()

	free := service(0, bs[0])
	h := startAgent(t, withHAProxy, "", nil)
	free.Port = h.port
	held := service(blocked, bs[1])
	held.Name = "held"
	h.write(free, held)
	err = h.waitApplied()
	if err == nil || !strings.Contains(err.Error(), "held by another process") {
		t.Fatalf("apply: %v, want the held port reported", err)
	}
	h.client(withHAProxy).eventually(t, bs[0].name, 5*time.Second)
	if got := metricValue(t, h.metrics(), "proxymatic_reload_port_conflicts"); got != 1 {
		t.Errorf("port conflicts metric %v, want 1", got)
	}

	blocker.Close()
	// The agent applies the same file again after retryDelay.
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(retryDelay + 10*time.Second)
	for {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", blocked))
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freed port was never served: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := metricValue(t, h.metrics(), "proxymatic_reload_port_conflicts"); got != 0 {
		t.Errorf("port conflicts metric %v after the port was freed, want 0", got)
	}
}

func TestPortGuardSkipsOwnAndVHostPorts(t *testing.T) {
	var probed []services.Key
	g := newPortGuard(80)
	g.probe = func(k services.Key) error {
		probed = append(probed, k)
		if k.Port == 2 {
			return fmt.Errorf("%s is held by another process", k)
		}
		return nil
	}
	svc := func(p int) services.Service { return services.Service{Name: "s", Port: p, Protocol: services.TCP} }
	kept, busy := g.filter([]services.Service{svc(1), svc(2), svc(80)})
	if len(kept) != 2 || len(busy) != 1 || busy[0].Service.Port != 2 {
		t.Fatalf("kept %v busy %v", kept, busy)
	}
	probed = nil
	g.filter([]services.Service{svc(1), svc(3)})
	if len(probed) != 1 || probed[0].Port != 3 {
		t.Errorf("probed %v: a port our proxies already listen on must not be probed", probed)
	}
}
