package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func freePort(t testing.TB) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

// backend is a real HTTP server answering its name.
type backend struct {
	name string
	srv  services.Server
}

func newBackends(t testing.TB, n int) []backend {
	t.Helper()
	var out []backend
	for i := range n {
		name := fmt.Sprintf("backend-%d", i)
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(s.Close)
		ap := netip.MustParseAddrPort(s.Listener.Addr().String())
		out = append(out, backend{name: name, srv: services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: services.DefaultWeight}})
	}
	return out
}

// openDir makes dir and its parents traversable by the proxies' unprivileged
// users (t.TempDir is 0700).
func openDir(t testing.TB, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != filepath.Dir(os.TempDir()); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type harness struct {
	t        testing.TB
	cfg      config.Reload
	a        *agent
	st       *status.Server
	statusAt string
	cancel   context.CancelFunc
	done     chan error
	applied  chan error
	port     int // the service's port
}

type mode int

const (
	withHAProxy mode = iota
	withNginx
	withPen
)

func (m mode) String() string { return [...]string{"haproxy", "nginx", "pen"}[m] }

func startAgent(t testing.TB, m mode, templateDir string, initial []services.Service) *harness {
	t.Helper()
	return startAgentWith(t, m, templateDir, "", 0, initial)
}

// startAgentIn starts an agent on an existing run dir, for a service port
// chosen by the caller.
func startAgentIn(t testing.TB, m mode, runDir string, port int) *harness {
	t.Helper()
	return startAgentWith(t, m, "", runDir, port, nil)
}

// setup, when given, is run on the agent before it starts.
func startAgentWith(t testing.TB, m mode, templateDir, runDir string, port int, initial []services.Service, setup ...func(*agent)) *harness {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	if runDir == "" {
		runDir = filepath.Join(t.TempDir(), "run")
	}
	h := &harness{t: t, applied: make(chan error, 100), done: make(chan error, 1), port: port}
	b := bins{haproxy: testbin.Require(t, "haproxy"), pen: testbin.Require(t, "pen")}
	h.cfg = config.Reload{
		Services:       filepath.Join(t.TempDir(), "in", "services.yaml"),
		MaxConnections: 512, PenServers: 8, PenClients: 512, VHostPort: 80,
		RunDir:        runDir,
		TemplateDir:   templateDir,
		ShutdownDelay: 200 * time.Millisecond, StopTimeout: 5 * time.Second,
	}
	openDir(t, filepath.Dir(h.cfg.RunDir))
	switch m {
	case withHAProxy:
		h.cfg.HAProxy = true
	case withNginx:
		b.nginx = testbin.Require(t, "nginx")
		h.cfg.HAProxy = true
		h.cfg.VHostDomain = "test.example"
		h.cfg.VHostPort = freePort(t)
	}
	if err := h.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if initial != nil {
		h.write(initial...)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.st = status.New(nil)
	a, err := newAgent(&h.cfg, options(&h.cfg), h.st, logger, b)
	if err != nil {
		t.Fatal(err)
	}
	a.applied = func(_ [sha256.Size]byte, err error) { h.applied <- err }
	for _, f := range setup {
		f(a)
	}
	h.a = a
	ln, err := status.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.statusAt = "http://" + ln.Addr().String()
	if h.cfg.HAProxy {
		h.st.Handle("/haproxy", haproxyStats(filepath.Join(h.cfg.RunDir, "haproxy-stats.sock")))
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- serve(ctx, a, h.st, ln, h.cfg.ShutdownDelay, h.cfg.StopTimeout, nil, logger) }()
	t.Cleanup(func() { h.stop() })
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

var stopped sync.Map

func (h *harness) stop() error {
	if _, already := stopped.LoadOrStore(h, true); already {
		return nil
	}
	h.cancel()
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Error("agent did not stop")
		return nil
	}
}

// write replaces services.yaml atomically, as proxymatic-sync does.
func (h *harness) write(svcs ...services.Service) {
	h.t.Helper()
	f := services.File{Services: slices.Clone(svcs)}
	f.Normalize()
	h.writeRaw(f.Encode())
}

func (h *harness) writeRaw(data []byte) {
	h.t.Helper()
	dir := filepath.Dir(h.cfg.Services)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".services.yaml.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.cfg.Services); err != nil {
		h.t.Fatal(err)
	}
}

// waitApplied returns the result of the next file applied. A report of the
// file missing is skipped: the watcher may have looked between the creation
// of the directory and the first rename.
func (h *harness) waitApplied() error {
	h.t.Helper()
	for {
		select {
		case err := <-h.applied:
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		case <-time.After(30 * time.Second):
			h.t.Fatal("no file applied")
			return nil
		}
	}
}

func (h *harness) statusCode() int {
	resp, err := http.Get(h.statusAt + "/status")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// statusBody is GET /status's code and body, as JSON when asked.
func (h *harness) statusBody(asJSON bool) (int, string) {
	req, _ := http.NewRequest("GET", h.statusAt+"/status", nil)
	if asJSON {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) metrics() string {
	resp, err := http.Get(h.statusAt + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// client sends one request on a fresh connection through the proxy under
// test and returns the backend that answered.
type client struct {
	url  string
	host string
	c    *http.Client
}

func (h *harness) client(m mode) *client {
	c := &client{url: fmt.Sprintf("http://127.0.0.1:%d/", h.port), c: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}}
	if m == withNginx {
		c.url = fmt.Sprintf("http://127.0.0.1:%d/", h.cfg.VHostPort)
		c.host = "web." + h.cfg.VHostDomain
	}
	return c
}

func (c *client) get() (string, error) {
	req, _ := http.NewRequest("GET", c.url, nil)
	if c.host != "" {
		req.Host = c.host
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, b)
	}
	return string(b), nil
}

// eventually polls until the proxy answers from want.
func (c *client) eventually(t testing.TB, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	var err error
	for time.Since(start) < within {
		if got, err = c.get(); err == nil && got == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no answer from %s within %v: last %q, %v", want, within, got, err)
	return 0
}

func service(port int, bs ...backend) services.Service {
	s := services.Service{Name: "web", Port: port, Protocol: services.TCP, Mode: services.ModeTCP}
	for _, b := range bs {
		s.Servers = append(s.Servers, b.srv)
	}
	return s
}

// load runs a few goroutines of fresh connections until stop, counting
// answers and failures.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	wg         sync.WaitGroup
	stop       context.CancelFunc
}

func startLoad(c *client, workers int) *load {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	l := &load{stop: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				if _, err := c.get(); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) finish() (ok, failed int64, errs []string) {
	l.stop()
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.errs
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// TestSwitchUnderLoad switches the service between backends 20 times while
// fresh connections keep coming, for each proxy: no request may fail and
// every change must reach the traffic.
//
// HAProxy takes a switch of servers through its runtime API; "haproxy-reload"
// overrides the template with a copy of the embedded one, which makes every
// change a checked reload, so that path stays tested under load too.
func TestSwitchUnderLoad(t *testing.T) {
	for _, tc := range switchCases(t) {
		m := tc.m
		t.Run(tc.name, func(t *testing.T) {
			bs := newBackends(t, 4)
			h := startAgent(t, m, tc.templateDir, nil)
			if code := h.statusCode(); code != http.StatusServiceUnavailable {
				t.Fatalf("/status before any file: %d, want 503", code)
			}
			h.write(service(h.port, bs[0]))
			if err := h.waitApplied(); err != nil {
				t.Fatal(err)
			}
			if code := h.statusCode(); code != http.StatusOK {
				t.Fatalf("/status after the first good file: %d, want 200", code)
			}
			c := h.client(m)
			c.eventually(t, bs[0].name, 10*time.Second)

			runtime0, reloads0 := metricOr0(h, haproxyRuntime), metricOr0(h, haproxyReloads)
			l := startLoad(c, 3)
			var took []time.Duration
			for i := 1; i <= 20; i++ {
				next := bs[i%len(bs)]
				start := time.Now()
				h.write(service(h.port, next))
				c.eventually(t, next.name, 10*time.Second)
				took = append(took, time.Since(start))
				if err := h.waitApplied(); err != nil {
					t.Fatalf("switch %d: %v", i, err)
				}
			}
			ok, failed, errs := l.finish()
			t.Logf("%s: %d requests, %d failed; rename to first response from the new backend: p50 %v, p99 %v, max %v",
				tc.name, ok+failed, failed, percentile(took, .5), percentile(took, .99), slices.Max(took))
			if failed > 0 {
				t.Fatalf("%d of %d requests failed during 20 switches: %v", failed, ok+failed, errs)
			}
			if ok == 0 {
				t.Fatal("the load sent nothing")
			}
			// Each HAProxy switch took the path it was meant to.
			runtimes, reloads := metricOr0(h, haproxyRuntime)-runtime0, metricOr0(h, haproxyReloads)-reloads0
			switch {
			case tc.name == "haproxy" && (runtimes != 20 || reloads != 0),
				tc.name == "haproxy-reload" && (runtimes != 0 || reloads != 20):
				t.Fatalf("%s: %v runtime updates, %v reloads", tc.name, runtimes, reloads)
			}
			if !strings.Contains(h.metrics(), fmt.Sprintf(`proxymatic_reload_reloads_total{proxy="%s"}`, map[mode]string{withHAProxy: "haproxy", withNginx: "nginx", withPen: "pen"}[m])) {
				t.Fatal("/metrics has no reload counter for the proxy")
			}
		})
	}
}

type switchCase struct {
	name        string
	m           mode
	templateDir string
}

func switchCases(t testing.TB) []switchCase {
	t.Helper()
	tmpl, err := os.ReadFile("../haproxy/templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg.tmpl"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	return []switchCase{{"haproxy", withHAProxy, ""}, {"haproxy-reload", withHAProxy, dir}, {"nginx", withNginx, ""}, {"pen", withPen, ""}}
}

// A proxy killed outright comes back; a config the proxy rejects leaves the
// old one serving and shows in /metrics until a good file heals it; a file
// that cannot be used keeps everything; SIGTERM leaves nothing running.
func TestCrashRejectAndShutdown(t *testing.T) {
	// A template that HAProxy refuses for a service named "rejected", with
	// the error in the global section: no service is to blame for it (see
	// TestRefusedServiceLeftOut for one that is), so the whole config is
	// refused.
	tmplDir := t.TempDir()
	tmpl, err := os.ReadFile("../haproxy/templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tmpl), "\nglobal\n") {
		t.Fatal("the template has no global section")
	}
	tmpl = []byte(strings.Replace(string(tmpl), "\nglobal\n", "\nglobal\n{{range .Services}}{{if eq (printf \"%.8s\" .Name) \"rejected\"}}    no-such-keyword here\n{{end}}{{end}}", 1))
	if err := os.WriteFile(filepath.Join(tmplDir, "haproxy.cfg.tmpl"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	bs := newBackends(t, 2)
	h := startAgent(t, withHAProxy, tmplDir, nil)
	udpPort := freePort(t)
	udp := services.Service{Name: "dns", Port: udpPort, Protocol: services.UDP, Mode: services.ModeTCP, Servers: []services.Server{bs[0].srv}}
	h.write(service(h.port, bs[0]), udp)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	c := h.client(withHAProxy)
	c.eventually(t, bs[0].name, 10*time.Second)

	// kill -9 the HAProxy master.
	hp := h.a.proxies[0].(*single)
	master := hp.run.Pid()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The condition, not a sleep: a worker can outlive its master for a
	// moment and answer, so traffic alone does not show the restart.
	killed := time.Now()
	testbin.WaitFor(t, "a new HAProxy master", func() bool { pid := hp.run.Pid(); return pid != master && pid != 0 })
	c.eventually(t, bs[0].name, 10*time.Second)
	t.Logf("new master and traffic %v after kill -9 of the HAProxy master", time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(h.metrics(), `proxymatic_proxy_restarts_total{process="haproxy"} 1`) {
		t.Error("/metrics does not count the restart")
	}

	// A config HAProxy rejects: the old one keeps serving.
	bad := service(h.port, bs[1])
	bad.Name = "rejected"
	h.write(bad, udp)
	if err := h.waitApplied(); err == nil {
		t.Fatal("a config HAProxy rejects was applied")
	}
	for range 20 {
		if got, err := c.get(); err != nil || got != bs[0].name {
			t.Fatalf("after a rejected config: %q, %v; want %s still", got, err, bs[0].name)
		}
	}
	live, err := os.ReadFile(filepath.Join(h.cfg.RunDir, "haproxy.cfg"))
	if err != nil || strings.Contains(string(live), "no-such-keyword") {
		t.Fatalf("the rejected config reached the live file (err %v)", err)
	}
	m := h.metrics()
	if !strings.Contains(m, `proxymatic_reload_failures_total{proxy="haproxy"} 1`) || !strings.Contains(m, `proxymatic_reload_proxy_in_sync{proxy="haproxy"} 0`) {
		t.Errorf("/metrics does not show the rejected config:\n%s", grep(m, "proxymatic_reload_"))
	}
	// 200 (still serving), but DEGRADED with the reason, in the body and
	// in the JSON.
	if code, body := h.statusBody(false); code != http.StatusOK || !strings.HasPrefix(body, "DEGRADED\nhaproxy: runs a config older than the services file") {
		t.Errorf("/status %d %q while the old config serves; want 200 DEGRADED with the reason", code, body)
	}
	if code, body := h.statusBody(true); code != http.StatusOK || !strings.Contains(body, `"status":"DEGRADED"`) || !strings.Contains(body, "haproxy: runs a config older") {
		t.Errorf("/status JSON %d %q", code, body)
	}

	// Unparseable, then partly invalid: the invalid service is dropped, the
	// rest applied (here: healing HAProxy).
	h.writeRaw([]byte("version: 1\nservices: [\n"))
	if err := h.waitApplied(); err == nil {
		t.Fatal("an unparseable file was applied")
	}
	if code, body := h.statusBody(false); code != http.StatusOK || !strings.Contains(body, "services file: unusable") {
		t.Errorf("/status %d %q with an unusable file", code, body)
	}
	invalid := service(1, bs[1])
	invalid.Name = "Bad Name!"
	h.write(service(h.port, bs[1]), udp, invalid)
	if err := h.waitApplied(); err != nil {
		t.Fatalf("a file with one invalid service was not applied: %v", err)
	}
	c.eventually(t, bs[1].name, 10*time.Second)
	if code, body := h.statusBody(false); code != http.StatusOK || body != "OK\n" {
		t.Errorf("/status %d %q once every proxy is in step; want OK", code, body)
	}
	m = h.metrics()
	if !strings.Contains(m, "proxymatic_reload_dropped_services 1") || !strings.Contains(m, `proxymatic_reload_proxy_in_sync{proxy="haproxy"} 1`) {
		t.Errorf("/metrics after healing:\n%s", grep(m, "proxymatic_reload_"))
	}

	// The HAProxy stats page through the status endpoint.
	resp, err := http.Get(h.statusAt + "/haproxy")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "web") {
		t.Errorf("/haproxy: %d %.200q", resp.StatusCode, body)
	}

	// Only what changed is reloaded: a change to the UDP service alone
	// reloads pen, not HAProxy; a pen service that goes away is stopped, a
	// new one started.
	hpReloads := metricValue(t, h.metrics(), `proxymatic_reload_reloads_total{proxy="haproxy"}`)
	ps := h.a.proxies[1].(*penSet)
	oldPen := ps.procs[udp.Key()].Pid()
	udp2 := udp
	udp2.Port = freePort(t)
	h.write(service(h.port, bs[1]), udp2)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, h.metrics(), `proxymatic_reload_reloads_total{proxy="haproxy"}`); got != hpReloads {
		t.Errorf("HAProxy reloaded (%v -> %v) for a change that was not its own", hpReloads, got)
	}
	if _, ok := ps.procs[udp.Key()]; ok || syscall.Kill(oldPen, 0) == nil && !zombie(oldPen) {
		t.Errorf("the pen of a removed service is still running (pid %d)", oldPen)
	}
	if p := ps.procs[udp2.Key()]; p == nil || p.Pid() == 0 {
		t.Error("no pen for the new service")
	}

	// SIGTERM (the context's end): 503 at once, then nothing left.
	pids := []int{hp.run.Pid()}
	for _, p := range h.a.proxies[1].(*penSet).procs {
		pids = append(pids, p.Pid())
	}
	h.cancel()
	deadline := time.Now().Add(5 * time.Second)
	for h.statusCode() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/status did not turn 503 after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := c.get(); err != nil || got != bs[1].name {
		t.Errorf("the proxies stopped before the shutdown delay: %q, %v", got, err)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	for _, pid := range pids {
		if pid == 0 || syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("process %d still running after shutdown", pid)
		}
	}
	if out := procsUnder(h.cfg.RunDir); out != "" {
		t.Errorf("proxies left running:\n%s", out)
	}
}

func metricValue(t testing.TB, metrics, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscanf(v, "%g", &f); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// procsUnder lists live processes whose command line names dir.
func procsUnder(dir string) string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || zombie(pid) {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmd), dir) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return strings.Join(out, "\n")
}

// A proxy left running by an earlier agent (its pid file in the run dir) is
// stopped at start so that its port is free for ours.
func TestStaleProxyStopped(t *testing.T) {
	bs := newBackends(t, 2)
	bin := testbin.Require(t, "haproxy")
	runDir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := fmt.Sprintf("defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nlisten old\n  bind 127.0.0.1:%d\n  server s %s\n", port, bs[1].srv.Address())
	// As an earlier agent left it: running this run dir's haproxy.cfg,
	// recorded with its start time.
	if err := os.WriteFile(filepath.Join(runDir, "haproxy.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := exec.Command(bin, "-W", "-f", filepath.Join(runDir, "haproxy.cfg"))
	stale.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stale.Start(); err != nil {
		t.Fatal(err)
	}
	if err := supervise.WritePidFile(filepath.Join(runDir, "haproxy.pid"), stale.Process.Pid); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = stale.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-stale.Process.Pid, syscall.SIGKILL) })
	old := &client{url: fmt.Sprintf("http://127.0.0.1:%d/", port), c: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	old.eventually(t, bs[1].name, 10*time.Second)

	// And a pen of a service the new file no longer has.
	penBin := testbin.Require(t, "pen")
	if err := os.MkdirAll(filepath.Join(runDir, "pen"), 0o755); err != nil {
		t.Fatal(err)
	}
	penCfg := filepath.Join(runDir, "pen", "1-udp.cfg")
	if err := os.WriteFile(penCfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stalePen := exec.Command(penBin, "-f", "-r", "-F", penCfg, "127.0.0.1:"+fmt.Sprint(freePort(t)), bs[1].srv.Address())
	stalePen.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stalePen.Start(); err != nil {
		t.Fatal(err)
	}
	penExited := make(chan struct{})
	go func() { _ = stalePen.Wait(); close(penExited) }()
	t.Cleanup(func() { _ = syscall.Kill(-stalePen.Process.Pid, syscall.SIGKILL) })
	if err := supervise.WritePidFile(filepath.Join(runDir, "pen", "1-udp.pid"), stalePen.Process.Pid); err != nil {
		t.Fatal(err)
	}

	h := startAgentIn(t, withHAProxy, runDir, port)
	h.write(service(port, bs[0]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale HAProxy is still running")
	}
	h.client(withHAProxy).eventually(t, bs[0].name, 10*time.Second)
	select {
	case <-penExited:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale pen is still running")
	}
}

// An agent that stops on its own (its file watcher failed) was not asked to
// drain: serve stops the proxies and returns the error at once rather than
// after the shutdown delay, which the combined image sets to a year, so
// that whatever supervises the process sees it fail and restarts it.
func TestAgentFailureSkipsTheShutdownDelay(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	cfg := config.Reload{
		// A directory that is a link to itself: the watcher cannot watch
		// it (ELOOP), which is no "not there yet" to wait out.
		Services:       filepath.Join(loop, "services.yaml"),
		MaxConnections: 512, PenServers: 8, PenClients: 512, VHostPort: 80,
		RunDir:        filepath.Join(dir, "run"),
		ShutdownDelay: time.Hour, StopTimeout: 5 * time.Second,
	}
	openDir(t, dir)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	st := status.New(nil)
	a, err := newAgent(&cfg, options(&cfg), st, logger, bins{pen: testbin.Require(t, "pen")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := status.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(t.Context(), a, st, ln, cfg.ShutdownDelay, cfg.StopTimeout, nil, logger) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), loop) {
			t.Errorf("serve returned %v, want the watcher's error naming %s", err, loop)
		}
	case <-time.After(30 * time.Second): // a safety net; the delay is an hour
		t.Fatal("serve waited out the shutdown delay after the agent failed on its own")
	}
	if s := st.State(); s != status.Terminating {
		t.Errorf("/status is %s, want TERMINATING", s)
	}
}

// Without a status endpoint (--status-endpoint "") the shutdown delay still
// holds: the proxies serve until it ends or a second signal comes. (The
// missing endpoint used to end it at once.)
func TestShutdownDelayWithoutStatusEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Reload{
		Services:       filepath.Join(dir, "in", "services.yaml"),
		MaxConnections: 512, PenServers: 8, PenClients: 512, VHostPort: 80,
		RunDir:        filepath.Join(dir, "run"),
		ShutdownDelay: time.Hour, StopTimeout: 5 * time.Second,
	}
	openDir(t, dir)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	st := status.New(nil)
	a, err := newAgent(&cfg, options(&cfg), st, logger, bins{pen: testbin.Require(t, "pen")})
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan os.Signal, 1)
	waiting := make(chan struct{})
	again := func() (<-chan os.Signal, func()) { close(waiting); return second, func() {} }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, a, st, nil, cfg.ShutdownDelay, cfg.StopTimeout, again, logger) }()
	cancel()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second): // a safety net
		t.Fatal("serve never started its shutdown delay")
	}
	select {
	case err := <-done:
		t.Fatalf("serve returned (%v) within the hour's delay, without a second signal", err)
	case <-time.After(300 * time.Millisecond):
	}
	second <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a second signal did not end the delay")
	}
}

// Before sync's first write a missing file is waited for, not an error
// (every start of the combined image); once a file has been seen, its
// disappearance is one.
func TestMissingFileBeforeTheFirstWriteIsNoError(t *testing.T) {
	be := newBackends(t, 1)
	h := startAgentWith(t, withHAProxy, "", "", 0, nil, func(a *agent) {
		if err := os.MkdirAll(filepath.Dir(a.watcher.Path), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	before := metricValue(t, h.metrics(), "proxymatic_reload_file_errors_total")
	missing := func(when string) {
		t.Helper()
		select {
		case err := <-h.applied:
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: %v, want the file missing", when, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the missing file was never reported", when)
		}
	}
	missing("at start")
	if got := metricValue(t, h.metrics(), "proxymatic_reload_file_errors_total"); got != before {
		t.Errorf("file errors %v → %v before any file was written, want no error counted", before, got)
	}
	port := freePort(t)
	h.write(service(port, be...))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h.cfg.Services); err != nil {
		t.Fatal(err)
	}
	missing("after removal")
	if got := metricValue(t, h.metrics(), "proxymatic_reload_file_errors_total"); got != before+1 {
		t.Errorf("file errors %v → %v after the file was removed, want one", before, got)
	}
}
