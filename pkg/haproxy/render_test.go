package haproxy_test

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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/golden"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/services"
)

func srv(ip string, port, weight int) services.Server {
	return services.Server{IP: netip.MustParseAddr(ip), Port: port, Weight: weight}
}

// fixture covers every branch of the template: tcp, http with and without a
// check, timeouts, IPv6, maxconn, weight 0 and a service with no servers.
func fixture() []services.Service {
	web := srv("10.0.0.1", 31000, 1000)
	web.Host = "node-1.example.com"
	web.MaxConn = 50
	return []services.Service{
		{Name: "db", Port: 5432, Protocol: services.TCP, Mode: services.ModeTCP,
			Servers: []services.Server{srv("10.0.0.2", 31001, 500), srv("10.0.0.3", 31002, 0)}},
		{Name: "web", Port: 8080, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/health?full=1"},
			Timeouts:    &services.Timeouts{Client: 90 * time.Second, Server: 1500 * time.Millisecond},
			Servers:     []services.Server{web, srv("fd00::7", 31003, 3)}},
		{Name: "api", Port: 8081, Protocol: services.TCP, Mode: services.ModeHTTP,
			Servers: []services.Server{srv("10.0.0.4", 31004, 250)}},
		{Name: "shop", Port: 8082, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/", Interval: 20 * time.Second, Timeout: 10 * time.Second, Failures: 5},
			Servers:     []services.Server{srv("10.0.0.5", 31005, 500)}},
		{Name: "empty", Port: 9000, Protocol: services.TCP, Mode: services.ModeTCP},
	}
}

func params(runDir string) haproxy.Params {
	return haproxy.Params{RunDir: runDir, MaxConnections: 4096, HardStopAfter: 30 * time.Minute, VHostDomain: "apps.example.com"}
}

func checkWithHAProxy(t *testing.T, cfg []byte) {
	t.Helper()
	bin := testbin.Require(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Check(context.Background(), bin, path); err != nil {
		t.Fatalf("haproxy rejects the rendered config: %v\n%s", err, cfg)
	}
}

func TestRenderGolden(t *testing.T) {
	cfg, err := haproxy.Render(params("/var/run/proxymatic"), fixture())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "haproxy.cfg.golden", cfg)
	checkWithHAProxy(t, cfg)
}

func TestRenderNoServices(t *testing.T) {
	cfg, err := haproxy.Render(params("/var/run/proxymatic"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte("\nlisten ")) {
		t.Errorf("listen section rendered without services:\n%s", cfg)
	}
	checkWithHAProxy(t, cfg)
}

func TestRenderRequiredSettings(t *testing.T) {
	cfg, err := haproxy.Render(params("/run/pm"), fixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\n    maxconn 8192\n", // twice --max-connections
		"\n    hard-stop-after 30m\n",
		"\n    spread-checks 5\n",
		"\n    stats socket /run/pm/haproxy.sock mode 600 level admin expose-fd listeners\n",
		"\n    server-state-file /run/pm/haproxy.state\n",
		"\n    load-server-state-from-file global\n",
		"\n    bind unix@/run/pm/haproxy-stats.sock mode 600\n",
		"\n    stats uri /haproxy\n",
		"\n    monitor-uri /status\n",
		"\nlisten web-8080\n    bind :8080\n    mode http\n    balance leastconn\n    maxconn 4096\n    option forwardfor if-none\n    option httpchk\n    http-check send meth GET uri /health?full=1 ver HTTP/1.1 hdr Host web.apps.example.com\n    timeout client 90000ms\n    timeout server 1500ms\n",
		" 10.0.0.1:31000 id ", "weight 256 maxconn 50 check\n",
		" [fd00::7]:31003 id ", // IPv6 bracketed
		"weight 1 check\n",     // 3/1000 does not round to a draining 0
		// Marathon's check settings: timeout per listen, inter and fall per server.
		"\n    http-check send meth GET uri / ver HTTP/1.1 hdr Host shop.apps.example.com\n    timeout check 10000ms\n",
		" 10.0.0.5:31005 id ", " weight 128 check inter 20000ms fall 5\n",
		"\nlisten api-8081\n    bind :8081\n    mode http\n    balance leastconn\n    maxconn 4096\n    option forwardfor if-none\n    server 10.0.0.4_31004 10.0.0.4:31004 id ",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %q", want)
		}
	}
	for _, unwanted := range []string{"\n    daemon\n", "\n    server 10.0.0.4_31004 10.0.0.4:31004 id 0"} {
		if strings.Contains(string(cfg), unwanted) {
			t.Errorf("config holds %q", unwanted)
		}
	}
	// Without an HTTP check no server gets "check"; tcp services never get forwardfor.
	db := section(string(cfg), "db-5432")
	if strings.Contains(db, " check") || strings.Contains(db, "forwardfor") || strings.Contains(db, "httpchk") {
		t.Errorf("db section has http-only settings:\n%s", db)
	}
}

func section(cfg, name string) string {
	i := strings.Index(cfg, "\nlisten "+name+"\n")
	if i < 0 {
		return ""
	}
	rest := cfg[i+1:]
	if j := strings.Index(rest, "\n\n"); j >= 0 {
		return rest[:j]
	}
	return rest
}

func TestWeight(t *testing.T) {
	for in, want := range map[int]int{0: 0, 1: 1, 3: 1, 4: 1, 500: 128, 999: 255, 1000: 256} {
		if got := haproxy.Weight(in); got != want {
			t.Errorf("Weight(%d) = %d, want %d", in, got, want)
		}
	}
}

var serverLine = regexp.MustCompile(`(?m)^    server (\S+) (\S+) id (\d+) `)

func serverIDs(t *testing.T, cfg []byte) map[string]string {
	t.Helper()
	ids := map[string]string{}
	seen := map[string]bool{}
	for _, m := range serverLine.FindAllStringSubmatch(string(cfg), -1) {
		ids[m[2]] = m[1] + " id " + m[3]
		if seen[m[3]] {
			t.Errorf("id %s used twice", m[3])
		}
		seen[m[3]] = true
	}
	return ids
}

// Adding and removing servers must not change the name or id of a server
// that stays: HAProxy's server-state file and stats follow them.
func TestServerNamesAndIDsStable(t *testing.T) {
	all := []services.Server{srv("10.0.0.1", 1, 1), srv("10.0.0.2", 2, 1), srv("10.0.0.3", 3, 1), srv("10.0.0.4", 4, 1), srv("::1", 5, 1)}
	steps := [][]int{{0, 1, 2}, {1, 2}, {0, 1, 2, 3, 4}, {4}, {3, 4, 0}, {2}}
	first := map[string]string{}
	for i, step := range steps {
		svc := services.Service{Name: "s", Port: 100, Protocol: services.TCP, Mode: services.ModeTCP}
		for _, j := range step {
			svc.Servers = append(svc.Servers, all[j])
		}
		cfg, err := haproxy.Render(params("/run"), []services.Service{svc})
		if err != nil {
			t.Fatal(err)
		}
		ids := serverIDs(t, cfg)
		if len(ids) != len(step) {
			t.Fatalf("step %d: %d servers rendered, want %d", i, len(ids), len(step))
		}
		for addr, id := range ids {
			if prev, ok := first[addr]; ok && prev != id {
				t.Errorf("step %d: %s changed from %q to %q", i, addr, prev, id)
			}
			first[addr] = id
		}
	}
}

// Services built in code bypass services.Parse; Render must refuse anything
// Parse would, so no hostile byte reaches haproxy.cfg.
func TestRenderRefusesInvalidServices(t *testing.T) {
	good := func() services.Service {
		return services.Service{Name: "ok", Port: 80, Protocol: services.TCP, Mode: services.ModeHTTP,
			Servers: []services.Server{srv("10.0.0.1", 80, 100)}}
	}
	cases := map[string]func(*services.Service){
		"newline in name":   func(s *services.Service) { s.Name = "a\n    server evil 1.2.3.4:80" },
		"space in name":     func(s *services.Service) { s.Name = "a b" },
		"uppercase name":    func(s *services.Service) { s.Name = "Web" },
		"empty name":        func(s *services.Service) { s.Name = "" },
		"newline in path":   func(s *services.Service) { s.HealthCheck = &services.HealthCheck{Path: "/\nlisten evil"} },
		"space in path":     func(s *services.Service) { s.HealthCheck = &services.HealthCheck{Path: "/a b"} },
		"hash in path":      func(s *services.Service) { s.HealthCheck = &services.HealthCheck{Path: "/a#b"} },
		"quote in path":     func(s *services.Service) { s.HealthCheck = &services.HealthCheck{Path: `/"a`} },
		"relative path":     func(s *services.Service) { s.HealthCheck = &services.HealthCheck{Path: "health"} },
		"semicolon in host": func(s *services.Service) { s.Servers[0].Host = "a;b" },
		"newline in host":   func(s *services.Service) { s.Servers[0].Host = "a\nb" },
		"zero port":         func(s *services.Service) { s.Port = 0 },
		"big port":          func(s *services.Service) { s.Port = 70000 },
		"bad mode":          func(s *services.Service) { s.Mode = "http\n" },
		"udp":               func(s *services.Service) { s.Protocol = services.UDP; s.Mode = services.ModeTCP },
		"invalid ip":        func(s *services.Service) { s.Servers[0].IP = netip.Addr{} },
		"ip with zone":      func(s *services.Service) { s.Servers[0].IP = netip.MustParseAddr("fe80::1%eth0") },
		"weight over 1000":  func(s *services.Service) { s.Servers[0].Weight = 1001 },
		"negative maxconn":  func(s *services.Service) { s.Servers[0].MaxConn = -1 },
		"server port 0":     func(s *services.Service) { s.Servers[0].Port = 0 },
		"negative timeout":  func(s *services.Service) { s.Timeouts = &services.Timeouts{Client: -time.Second} },
		"duplicate server":  func(s *services.Service) { s.Servers = append(s.Servers, s.Servers[0]) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			bad := good()
			mutate(&bad)
			cfg, err := haproxy.Render(params("/run"), []services.Service{good2(), bad})
			if err == nil {
				t.Fatalf("rendered:\n%s", cfg)
			}
			if cfg != nil {
				t.Errorf("returned a config along with the error")
			}
		})
	}
	// And the good service alone renders.
	if _, err := haproxy.Render(params("/run"), []services.Service{good2(), good()}); err != nil {
		t.Fatal(err)
	}
}

func good2() services.Service {
	return services.Service{Name: "other", Port: 81, Protocol: services.TCP, Mode: services.ModeTCP}
}

func TestRenderRefusesBadParams(t *testing.T) {
	for _, p := range []haproxy.Params{
		{RunDir: "", MaxConnections: 1},
		{RunDir: "relative", MaxConnections: 1},
		{RunDir: "/run/a b", MaxConnections: 1},
		{RunDir: "/run/a\nglobal", MaxConnections: 1},
		{RunDir: "/run/../etc", MaxConnections: 1},
		{RunDir: "/run", MaxConnections: 0},
	} {
		if _, err := haproxy.Render(p, nil); err == nil {
			t.Errorf("Render accepted %+v", p)
		}
	}
}

func TestCheckCarriesHAProxyMessage(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	path := filepath.Join(t.TempDir(), "bad.cfg")
	if err := os.WriteFile(path, []byte("defaults\n    mode tcp\n    frobnicate 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := haproxy.Check(context.Background(), bin, path)
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("Check = %v, want HAProxy's complaint about frobnicate", err)
	}
}

func TestLoadTemplate(t *testing.T) {
	dir := t.TempDir()
	// Missing file in the dir: the embedded template.
	tpl, err := haproxy.LoadTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := params("/run")
	p.Template = tpl
	got, err := haproxy.Render(p, fixture())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := haproxy.Render(params("/run"), fixture())
	if !bytes.Equal(got, want) {
		t.Error("a template dir without haproxy.cfg.tmpl did not fall back to the embedded template")
	}

	custom := "global\n    maxconn {{.GlobalMaxConn}}\n{{range .Services}}# {{.Name}}{{range .Servers}} {{.Address}}{{end}}\n{{end}}"
	if err := os.WriteFile(filepath.Join(dir, haproxy.TemplateName), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	if tpl, err = haproxy.LoadTemplate(dir); err != nil {
		t.Fatal(err)
	}
	p.Template = tpl
	got, err = haproxy.Render(p, fixture()[:1])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "global\n    maxconn 8192\n# db-5432 10.0.0.2:31001 10.0.0.3:31002\n" {
		t.Errorf("custom template rendered %q", got)
	}

	if err := os.WriteFile(filepath.Join(dir, haproxy.TemplateName), []byte("{{.Nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := haproxy.LoadTemplate(dir); err == nil {
		t.Error("a broken template was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, haproxy.TemplateName), []byte("{{.Nope}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, _ = haproxy.LoadTemplate(dir)
	p.Template = tpl
	if _, err := haproxy.Render(p, nil); err == nil {
		t.Error("a template naming an unknown field rendered")
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestLiveHAProxy runs a real HAProxy on the rendered config and pushes HTTP
// requests (checked by the httpchk) and a raw TCP exchange through it.
func TestLiveHAProxy(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			return
		}
		fmt.Fprintf(w, "hello %s xff=%s", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	bport := backend.Listener.Addr().(*net.TCPAddr).Port

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	eport := echo.Addr().(*net.TCPAddr).Port

	runDir := t.TempDir()
	httpPort, tcpPort := freeTCPPort(t), freeTCPPort(t)
	svcs := []services.Service{
		{Name: "web", Port: httpPort, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/ping"},
			Servers:     []services.Server{srv("127.0.0.1", bport, 500)}},
		{Name: "echo", Port: tcpPort, Protocol: services.TCP, Mode: services.ModeTCP,
			Servers: []services.Server{srv("127.0.0.1", eport, 500)}},
	}
	cfg, err := haproxy.Render(haproxy.Params{RunDir: runDir, MaxConnections: 64}, svcs)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(runDir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Check(context.Background(), bin, cfgPath); err != nil {
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

	client := &http.Client{Timeout: 2 * time.Second}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/x", httpPort))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "hello /x xff=127.0.0.1" {
		t.Fatalf("through haproxy: %q; haproxy said:\n%s", body, out.String())
	}

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "ping\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("tcp echo through haproxy: %q, %v", line, err)
	}

	// The stats frontend answers on its unix socket.
	sc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", haproxy.StatsSocket(runDir))
		}}}
	resp, err := sc.Get("http://haproxy/haproxy;csv")
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(csv), "web-"+fmt.Sprint(httpPort)) {
		t.Errorf("stats page lacks the web service:\n%s", csv)
	}
	resp, err = sc.Get("http://haproxy/status")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("monitor-uri: %v %v", resp, err)
	}
}
