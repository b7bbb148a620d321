package render_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	return testbin.FreePort(t, network)
}

// run starts a proxy until the test ends.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	bin := testbin.Require(t, name)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

func eventually(t *testing.T, what string, f func() (string, error), want string) {
	t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = f(); err == nil && got == want {
			return
		}
	}
	t.Fatalf("%s: got %q, %v; want %q", what, got, err, want)
}

// TestLiveAllProxies renders one services list for all three proxies, starts
// the real HAProxy, nginx and pen on those files and pushes traffic through
// each to Go backends: HTTP through HAProxy, HTTP by virtual host through
// nginx, and UDP through pen.
func TestLiveAllProxies(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web %s via %s", r.URL.Path, r.Host)
	}))
	defer web.Close()
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	lo := netip.MustParseAddr("127.0.0.1")
	svcs := []services.Service{
		{Name: "web", Port: freePort(t, "tcp"), Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/"},
			Servers:     []services.Server{{IP: lo, Port: web.Listener.Addr().(*net.TCPAddr).Port, Weight: 500}}},
		{Name: "dns", Port: freePort(t, "udp"), Protocol: services.UDP, Mode: services.ModeTCP,
			Servers: []services.Server{{IP: lo, Port: echo.LocalAddr().(*net.UDPAddr).Port, Weight: 500}}},
	}
	runDir := t.TempDir()
	o := render.Options{HAProxy: true, VHostDomain: "test.local", VHostPort: freePort(t, "tcp"), MaxConnections: 64,
		PenServers: 4, PenClients: 64, RunDir: runDir}
	tpl, err := render.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Render(o, tpl, render.NewPlan(o, svcs), pen.NewSlots(o.PenServers))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(runDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hcfg := write("haproxy.cfg", files.HAProxy)
	ncfg := write("nginx.conf", files.Nginx)
	pcfg := write("pen/"+pen.ConfigName(svcs[1].Key()), files.Pen[svcs[1].Key()])
	if err := nginx.MakeDirs(runDir); err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Check(context.Background(), testbin.Require(t, "haproxy"), hcfg); err != nil {
		t.Fatal(err)
	}
	if err := nginx.Check(context.Background(), testbin.Require(t, "nginx"), runDir, ncfg); err != nil {
		t.Fatal(err)
	}
	run(t, "haproxy", "-W", "-db", "-f", hcfg)
	run(t, "nginx", "-e", "stderr", "-p", runDir, "-c", ncfg)
	run(t, "pen", "-f", "-U", "-F", pcfg, fmt.Sprintf("127.0.0.1:%d", svcs[1].Port))

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(port int, host string) func() (string, error) {
		return func() (string, error) {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/hi", port), nil)
			req.Host = host
			resp, err := client.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		}
	}
	eventually(t, "HTTP through haproxy", get(svcs[0].Port, "x"), "web /hi via x")
	eventually(t, "HTTP through the nginx vhost", get(o.VHostPort, "web.test.local"), "web /hi via web.test.local")
	eventually(t, "UDP through pen", func() (string, error) {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", svcs[1].Port))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return strings.TrimSpace(string(buf[:n])), err
	}, "echo ping")
}
