package fault

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// Both binaries' /status and /metrics bind where configured and serve
// nothing else: other paths 404, other methods 405.
func TestEndpoints(t *testing.T) {
	testbin.Require(t, "pen")
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	s := startSync(t, "", "--marathon", m.URL)
	s.waitFile(t, 10*time.Second, "10.0.0.1")
	a := startAgent(t, agentOpts{}, svc("web", freePort(t), newBackend(t, "web-1")))
	eventually(t, 20*time.Second, "agent OK", func() bool { c, _ := get(a.status + "/status"); return c == http.StatusOK })

	for name, base := range map[string]string{"sync": s.status, "reload": a.status} {
		t.Run(name, func(t *testing.T) {
			if c, body := get(base + "/status"); c != http.StatusOK || body != "OK\n" {
				t.Errorf("GET /status: %d %q", c, body)
			}
			if c, body := get(base + "/metrics"); c != http.StatusOK || !strings.Contains(body, "proxymatic_") {
				t.Errorf("GET /metrics: %d, proxymatic metrics present: %v", c, strings.Contains(body, "proxymatic_"))
			}
			// The status page: sync's at /; reload's at /proxymatic, where /
			// leads without HAProxy (pkg/statuspage).
			if c, body := get(base + "/"); c != http.StatusOK || !strings.Contains(body, "<title>proxymatic-"+name) {
				t.Errorf("GET /: %d, want the status page", c)
			}
			if c, body := get(base + "/status/explain"); c != http.StatusOK || !strings.Contains(body, `"entries"`) {
				t.Errorf("GET /status/explain: %d %q", c, body)
			}
			for _, p := range []string{"/debug/pprof/", "/status/x", "/metricsx", "/../etc/passwd", "/haproxy", "/index.html"} {
				if c, _ := get(base + p); c != http.StatusNotFound {
					t.Errorf("GET %s: %d, want 404", p, c)
				}
			}
			for _, method := range []string{"POST", "PUT", "DELETE"} {
				for _, p := range []string{"/status", "/metrics"} {
					if c, _ := do(method, base+p, ""); c != http.StatusMethodNotAllowed {
						t.Errorf("%s %s: %d, want 405", method, p, c)
					}
				}
			}
			// Bound to 127.0.0.1 only: another loopback address is refused.
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
			if !refused("127.0.0.2:" + port) {
				t.Errorf("the endpoint answers on 127.0.0.2:%s, beyond the configured 127.0.0.1", port)
			}
		})
	}
}
