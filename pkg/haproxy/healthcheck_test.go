package haproxy_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/services"
)

// checkBackend is an HTTP server whose /health answers 200 only to an
// HTTP/1.1 request with Host want (an app behind a name-based router, or one
// that insists on HTTP/1.1), and records what the checks sent.
type checkBackend struct {
	port int
	mu   sync.Mutex
	seen []string // "<proto> <host> <path>" of each check
}

func newCheckBackend(t *testing.T, want string) *checkBackend {
	b := &checkBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			fmt.Fprintf(w, "I am %s", want)
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, r.Proto+" "+r.Host+" "+r.URL.RequestURI())
		b.mu.Unlock()
		if r.Proto != "HTTP/1.1" || r.Host != want {
			http.Error(w, "wrong host", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "OK")
	}))
	t.Cleanup(srv.Close)
	b.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return b
}

func (b *checkBackend) checks() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// serverStatus reads each server's status ("UP", "DOWN", ...) of one
// listen from the stats frontend's CSV.
func serverStatus(t *testing.T, runDir, listen string) map[string]string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", haproxy.StatsSocket(runDir))
		}}}
	resp, err := c.Get("http://haproxy/haproxy;csv")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(rows) == 0 {
		return nil
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "# ")] = i
	}
	out := map[string]string{}
	for _, r := range rows[1:] {
		if r[col["pxname"]] == listen && r[col["svname"]] != "FRONTEND" && r[col["svname"]] != "BACKEND" {
			out[r[col["svname"]]] = r[col["status"]]
		}
	}
	return out
}

// TestLiveHealthCheckSendsHost: a real HAProxy checks real backends with
// HTTP/1.1 and the service's Host header (its virtual host name with a vhost
// domain, its name without), with Marathon's interval, timeout and failure
// count: the backend that wants that Host is UP, the one that wants another
// goes DOWN after one failed check.
func TestLiveHealthCheckSendsHost(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	for _, tc := range []struct{ domain, host string }{
		{"apps.test", "web.apps.test"},
		{"", "web"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			good, bad := newCheckBackend(t, tc.host), newCheckBackend(t, "someone-else")
			runDir := t.TempDir()
			port := freeTCPPort(t)
			svcs := []services.Service{{Name: "web", Port: port, Protocol: services.TCP, Mode: services.ModeHTTP,
				HealthCheck: &services.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, Failures: 1},
				Servers:     []services.Server{srv("127.0.0.1", good.port, 500), srv("127.0.0.2", bad.port, 500)}}}
			cfg, err := haproxy.Render(haproxy.Params{RunDir: runDir, MaxConnections: 64, VHostDomain: tc.domain}, svcs)
			if err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(runDir, "haproxy.cfg")
			if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, bin, "-W", "-db", "-f", cfgPath)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); cmd.Wait() }()

			listen := fmt.Sprintf("web-%d", port)
			goodName, badName := fmt.Sprintf("127.0.0.1_%d", good.port), fmt.Sprintf("127.0.0.2_%d", bad.port)
			var st map[string]string
			deadline := time.Now().Add(20 * time.Second)
			for {
				st = serverStatus(t, runDir, listen)
				// Both must have been checked (a fresh server starts UP).
				if st[goodName] == "UP" && st[badName] == "DOWN" && len(good.checks()) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("server states %v, checks seen %q / %q; haproxy said:\n%s\nconfig:\n%s", st, good.checks(), bad.checks(), out.String(), cfg)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, c := range good.checks() {
				if c != "HTTP/1.1 "+tc.host+" /health" {
					t.Errorf("check sent %q, want HTTP/1.1 with Host %s", c, tc.host)
				}
			}
			// Traffic goes to the healthy server only.
			for range 5 {
				if body, err := testbin.Get(port); err != nil || body != "I am "+tc.host {
					t.Fatalf("through haproxy: %q, %v", body, err)
				}
			}
		})
	}
}
