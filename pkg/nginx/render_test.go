package nginx_test

import (
	"bufio"
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

	"github.com/meltwater/proxymatic/internal/golden"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/services"
)

func srv(ip string, port, weight int) services.Server {
	return services.Server{IP: netip.MustParseAddr(ip), Port: port, Weight: weight}
}

func fixture() []nginx.VHost {
	a := srv("10.0.0.1", 31000, 1000)
	a.MaxConn = 20
	return []nginx.VHost{
		{Host: "web.apps.example.com", Service: services.Key{Port: 8080, Protocol: services.TCP},
			Servers: []services.Server{a, srv("fd00::2", 31001, 500), srv("10.0.0.3", 31002, 0)}},
		{Host: "empty.apps.example.com", Service: services.Key{Port: 8081, Protocol: services.TCP}},
		{Host: "drained.apps.example.com", Service: services.Key{Port: 8082, Protocol: services.TCP},
			Servers: []services.Server{srv("10.0.0.4", 31003, 0)}},
	}
}

// checkWithNginx renders for a real run dir and has nginx -t check it.
func checkWithNginx(t *testing.T, p nginx.Params, vhosts []nginx.VHost) []byte {
	t.Helper()
	bin := testbin.Require(t, "nginx")
	p.RunDir = t.TempDir()
	cfg, err := nginx.Render(p, vhosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := nginx.MakeDirs(p.RunDir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.RunDir, "nginx.conf")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := nginx.Check(context.Background(), bin, p.RunDir, path); err != nil {
		t.Fatalf("nginx rejects the rendered config: %v\n%s", err, cfg)
	}
	return cfg
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		p    nginx.Params
	}{
		{"nginx.conf.golden", nginx.Params{Port: 80, MaxConnections: 1024}},
		{"nginx-proxy-protocol.conf.golden", nginx.Params{Port: 8000, MaxConnections: 1024, ProxyProtocol: true, User: "nobody", Group: "nogroup"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := tc.p
			p.RunDir = "/var/run/proxymatic"
			cfg, err := nginx.Render(p, fixture())
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.file, cfg)
			checkWithNginx(t, tc.p, fixture())
		})
	}
}

func TestRenderSettings(t *testing.T) {
	cfg, err := nginx.Render(nginx.Params{RunDir: "/run/pm", Port: 80, MaxConnections: 1000}, fixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\ndaemon off;\n", "\npid /run/pm/nginx.pid;\n", "\nerror_log stderr warn;\n",
		"\n    worker_connections 2000;\n",
		"\n    client_body_temp_path /run/pm/nginx-tmp/client_body;\n",
		"\n    proxy_temp_path /run/pm/nginx-tmp/proxy;\n",
		"\n    fastcgi_temp_path /run/pm/nginx-tmp/fastcgi;\n",
		"\n    uwsgi_temp_path /run/pm/nginx-tmp/uwsgi;\n",
		"\n    scgi_temp_path /run/pm/nginx-tmp/scgi;\n",
		"\n    access_log /dev/stdout vhost;\n",
		"\n    keepalive_timeout 1300s;\n",
		"\n    gzip on;\n", "\n    gzip_proxied any;\n", " text/css ", " application/json ",
		"\n    proxy_set_header Host $http_host;\n",
		"\n    proxy_buffering off;\n",
		"\n        listen 80 default_server;\n",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %q", want)
		}
	}
	for _, unwanted := range []string{"\nuser ", "proxy_protocol", "real_ip_header", "access_log off", "Host $host;"} {
		if strings.Contains(string(cfg), unwanted) {
			t.Errorf("config holds %q", unwanted)
		}
	}
}

// Many virtual hosts with long names: nginx must still build its
// server_names hash (the default sizes fail well before this).
func TestRenderManyLongHosts(t *testing.T) {
	var vhosts []nginx.VHost
	// Names up to 200 bytes and more, in DNS labels of at most 50 + digits.
	long := strings.TrimSuffix(strings.Repeat(strings.Repeat("a", 49)+".", 5), ".")
	for i := 0; i < 3000; i++ {
		vhosts = append(vhosts, nginx.VHost{Host: fmt.Sprintf("%s%d.example.com", strings.TrimSuffix(long[:i%200+1], "."), i),
			Servers: []services.Server{srv("10.0.0.1", 1000+i, 500)}})
	}
	checkWithNginx(t, nginx.Params{Port: 80, MaxConnections: 100}, vhosts)
}

func TestRenderRefusesInvalid(t *testing.T) {
	good := nginx.Params{RunDir: "/run", Port: 80, MaxConnections: 10}
	vh := func(host string, srvs ...services.Server) []nginx.VHost {
		return []nginx.VHost{{Host: "ok.example.com"}, {Host: host, Servers: srvs}}
	}
	ok := srv("10.0.0.1", 80, 1)
	cases := map[string]struct {
		p      nginx.Params
		vhosts []nginx.VHost
	}{
		"semicolon in host":   {good, vh("a;b.example.com", ok)},
		"brace in host":       {good, vh("a}b", ok)},
		"space in host":       {good, vh("a b", ok)},
		"newline in host":     {good, vh("a\nserver_name evil", ok)},
		"empty host":          {good, vh("", ok)},
		"host too long":       {good, vh(strings.Repeat("a", 254), ok)},
		"duplicate host":      {good, vh("ok.example.com", ok)},
		"invalid ip":          {good, vh("x", services.Server{Port: 80, Weight: 1})},
		"zone ip":             {good, vh("x", services.Server{IP: netip.MustParseAddr("fe80::1%lo"), Port: 80})},
		"port 0":              {good, vh("x", srv("10.0.0.1", 0, 1))},
		"weight 1001":         {good, vh("x", srv("10.0.0.1", 80, 1001))},
		"duplicate server":    {good, vh("x", ok, ok)},
		"negative maxconn":    {good, vh("x", services.Server{IP: ok.IP, Port: 80, MaxConn: -1})},
		"bad run dir":         {nginx.Params{RunDir: "/run/x;y", Port: 80, MaxConnections: 1}, nil},
		"relative run dir":    {nginx.Params{RunDir: "run", Port: 80, MaxConnections: 1}, nil},
		"bad port":            {nginx.Params{RunDir: "/run", Port: 0, MaxConnections: 1}, nil},
		"bad max connections": {nginx.Params{RunDir: "/run", Port: 80}, nil},
		"bad user":            {nginx.Params{RunDir: "/run", Port: 80, MaxConnections: 1, User: "root;"}, nil},
		"group without user":  {nginx.Params{RunDir: "/run", Port: 80, MaxConnections: 1, Group: "nogroup"}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := nginx.Render(tc.p, tc.vhosts)
			if err == nil || cfg != nil {
				t.Fatalf("Render = %q, %v; want an error", cfg, err)
			}
		})
	}
}

func TestCheckCarriesNginxMessage(t *testing.T) {
	bin := testbin.Require(t, "nginx")
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte("events {}\nfrobnicate on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := nginx.Check(context.Background(), bin, dir, path)
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("Check = %v, want nginx's complaint about frobnicate", err)
	}
}

func TestLoadTemplate(t *testing.T) {
	dir := t.TempDir()
	tpl, err := nginx.LoadTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := nginx.Params{RunDir: "/run", Port: 80, MaxConnections: 10, Template: tpl}
	got, _ := nginx.Render(p, fixture())
	p.Template = nil
	want, _ := nginx.Render(p, fixture())
	if !bytes.Equal(got, want) || got == nil {
		t.Error("a template dir without nginx.conf.tmpl did not fall back to the embedded template")
	}
	custom := "{{range .VHosts}}{{.Host}}{{range .Servers}} {{.Address}}/{{.Weight}}{{end}}\n{{end}}"
	if err := os.WriteFile(filepath.Join(dir, nginx.TemplateName), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	if p.Template, err = nginx.LoadTemplate(dir); err != nil {
		t.Fatal(err)
	}
	got, err = nginx.Render(p, fixture()[:1])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "web.apps.example.com 10.0.0.1:31000/256 [fd00::2]:31001/128 10.0.0.3:31002/0\n" {
		t.Errorf("custom template rendered %q", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

// startNginx runs a real nginx on the rendered config until the test ends.
func startNginx(t *testing.T, p nginx.Params, vhosts []nginx.VHost) {
	t.Helper()
	bin := testbin.Require(t, "nginx")
	checkWithNginx(t, p, vhosts)
	p.RunDir = t.TempDir()
	cfg, err := nginx.Render(p, vhosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := nginx.MakeDirs(p.RunDir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.RunDir, "nginx.conf")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-e", "stderr", "-p", p.RunDir, "-c", path)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
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
			t.Logf("nginx output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawRequest sends one HTTP/1.1 request (after an optional PROXY header) and
// returns the status code and body.
func rawRequest(t *testing.T, port int, preamble, host, path string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%sGET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", preamble, path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func backend(t *testing.T) services.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			if r.Header.Get("Connection") != "upgrade" {
				http.Error(w, "Connection: "+r.Header.Get("Connection"), 400)
				return
			}
			c, rw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			io.Copy(c, rw) // echo until the client closes
			return
		}
		fmt.Fprintf(w, "host=%s xff=%s xrip=%s proto=%s", r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Real-IP"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(s.Close)
	return srv("127.0.0.1", s.Listener.Addr().(*net.TCPAddr).Port, 500)
}

func TestLiveNginx(t *testing.T) {
	b := backend(t)
	port := freePort(t)
	vhosts := []nginx.VHost{
		{Host: "web.test.local", Servers: []services.Server{b}},
		{Host: "empty.test.local"},
	}
	startNginx(t, nginx.Params{Port: port, MaxConnections: 64}, vhosts)

	code, body := rawRequest(t, port, "", "web.test.local", "/x")
	if code != 200 || body != "host=web.test.local xff=127.0.0.1 xrip=127.0.0.1 proto=http" {
		t.Errorf("vhost: %d %q", code, body)
	}
	if code, _ := rawRequest(t, port, "", "empty.test.local", "/"); code != 503 {
		t.Errorf("vhost without servers: %d, want 503", code)
	}
	if code, _ := rawRequest(t, port, "", "unknown.test.local", "/"); code != 503 {
		t.Errorf("unknown host: %d, want 503", code)
	}
	if code, body := rawRequest(t, port, "", "unknown.test.local", "/_status"); code != 200 || body != "OK\n" {
		t.Errorf("/_status: %d %q", code, body)
	}

	// A websocket upgrade reaches the backend with its headers and the
	// connection then carries data both ways.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: web.test.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("websocket echo: %q %v", line, err)
	}
}

func TestLiveNginxProxyProtocol(t *testing.T) {
	b := backend(t)
	port := freePort(t)
	startNginx(t, nginx.Params{Port: port, MaxConnections: 64, ProxyProtocol: true},
		[]nginx.VHost{{Host: "web.test.local", Servers: []services.Server{b}}})
	code, body := rawRequest(t, port, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n", "web.test.local", "/")
	if code != 200 || body != "host=web.test.local xff=203.0.113.7 xrip=203.0.113.7 proto=http" {
		t.Errorf("through proxy protocol: %d %q", code, body)
	}
	code, _ = rawRequest(t, port, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n", "x", "/_status")
	if code != 200 {
		t.Errorf("/_status through proxy protocol: %d", code)
	}
}
