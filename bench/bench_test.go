// Package bench holds the end-to-end performance harness: it builds the two
// binaries, stands in for Marathon on 127.0.0.1 with marathontest, runs the
// binaries as child processes and reports wall time, CPU time and peak RSS
// (from wait4's rusage, through bench/rusage) of each. See docs/performance.md and bench/run.sh.
//
// Everything listens on loopback only and every loop is bounded by the
// benchmark's -benchtime. No test here asserts a duration.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// bins is where TestMain built proxymatic-sync and proxymatic-reload.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxymatic-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Built as the images build them (Dockerfile.*): static, stripped. A
	// cgo build pays the dynamic loader and glibc's start-up on every run.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+"/",
		"github.com/meltwater/proxymatic/cmd/proxymatic-sync",
		"github.com/meltwater/proxymatic/cmd/proxymatic-reload",
		"github.com/meltwater/proxymatic/bench/rusage")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bins = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// usage is what one child process cost.
type usage struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// run runs one of the binaries to completion through bench/rusage, which
// reports its wall time, CPU time and peak RSS.
func run(ctx context.Context, stdout io.Writer, name string, args ...string) (usage, error) {
	bin := name
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(bins, name)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "rusage"), append([]string{bin}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	var u usage
	errOut := stderr.Bytes()
	if i := bytes.LastIndex(errOut, []byte("\nrusage: ")); i >= 0 {
		var r struct {
			WallNS   int64 `json:"wall_ns"`
			CPUNS    int64 `json:"cpu_ns"`
			MaxRSSKB int64 `json:"max_rss_kb"`
		}
		if jerr := json.Unmarshal(bytes.TrimSpace(errOut[i+len("\nrusage: "):]), &r); jerr != nil && err == nil {
			err = jerr
		}
		u = usage{wall: time.Duration(r.WallNS), cpu: time.Duration(r.CPUNS), maxRSS: r.MaxRSSKB * 1024}
		errOut = errOut[:i]
	} else if err == nil {
		err = fmt.Errorf("no rusage line")
	}
	if err != nil {
		return u, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, errOut)
	}
	return u, nil
}

// cluster is marathontest.Generate(n, k) with the 200 agents given as IP
// literals (10.2.0.0/24 …), so the child process needs no DNS.
func cluster(n, k int) []byte {
	apps := marathontest.Generate(n, k)
	for i, a := range apps {
		for j, t := range a.Tasks {
			agent := (i*k + j) % 200
			t.Host = fmt.Sprintf("10.2.%d.%d", agent/256, agent%256)
		}
	}
	return marathontest.AppsJSON(apps)
}

// statsOf keeps the worst peak RSS and the summed CPU over a benchmark.
type statsOf struct {
	name   string
	cpu    time.Duration
	wall   time.Duration
	maxRSS int64
	n      int
}

func (s *statsOf) add(u usage) {
	s.cpu += u.cpu
	s.wall += u.wall
	s.maxRSS = max(s.maxRSS, u.maxRSS)
	s.n++
}

func (s *statsOf) report(b *testing.B) {
	if s.n == 0 {
		return
	}
	b.ReportMetric(float64(s.wall.Milliseconds())/float64(s.n), s.name+"-wall-ms")
	b.ReportMetric(float64(s.cpu.Milliseconds())/float64(s.n), s.name+"-cpu-ms")
	b.ReportMetric(float64(s.maxRSS)/(1<<20), s.name+"-peak-RSS-MB")
}

// BenchmarkOnceDryRun is the end-to-end figure (4): one
// `proxymatic-sync --once --dry-run` against the Marathon stand-in, then
// `proxymatic-reload --dry-run --validate=false --haproxy` on its output.
// both-wall-ms (sync-wall-ms + reload-wall-ms) is the figure held against
// the target; ns/op adds the harness's own work around them (starting each
// through bench/rusage, ~10 ms a process here).
func BenchmarkOnceDryRun(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("apps=%d/tasks=4", n), func(b *testing.B) {
			m := marathontest.New(b)
			body := cluster(n, 4)
			m.SetAppsJSON(body)
			// Generating the body leaves hundreds of megabytes of garbage
			// behind; collect and return it now, so the collector and
			// scavenger of this process (the stand-in) do not compete with
			// the binaries being measured.
			debug.FreeOSMemory()
			dir := tempDir(b)
			file := filepath.Join(dir, "services.yaml")
			ctx := context.Background()
			sync, reload := statsOf{name: "sync"}, statsOf{name: "reload"}
			var size int
			for b.Loop() {
				// As in CI: `proxymatic-sync --once --dry-run > services.yaml`,
				// the child writing straight to the file.
				out, err := os.Create(file)
				if err != nil {
					b.Fatal(err)
				}
				u, err := run(ctx, out, "proxymatic-sync", "--once", "--dry-run", "--marathon", m.URL, "--status-endpoint", "")
				out.Close()
				if err != nil {
					b.Fatal(err)
				}
				sync.add(u)
				if fi, err := os.Stat(file); err == nil {
					size = int(fi.Size())
				}
				u, err = run(ctx, io.Discard, "proxymatic-reload", "--dry-run", "--validate=false", "--haproxy",
					"--services", file, "--output-dir", filepath.Join(dir, "out"), "--run-dir", filepath.Join(dir, "run"), "--status-endpoint", "")
				if err != nil {
					b.Fatal(err)
				}
				reload.add(u)
			}
			b.StopTimer()
			if got := bytes.Count(mustRead(b, file), []byte("\n- name: ")); got != n {
				b.Fatalf("services.yaml has %d services, want %d", got, n)
			}
			if fi, err := os.Stat(filepath.Join(dir, "out", "haproxy.cfg")); err != nil || fi.Size() == 0 {
				b.Fatalf("no haproxy.cfg rendered: %v", err)
			}
			sync.report(b)
			reload.report(b)
			b.ReportMetric(float64((sync.wall+reload.wall).Milliseconds())/float64(sync.n), "both-wall-ms")
			b.ReportMetric(float64(len(body))/(1<<20), "marathon-body-MB")
			b.ReportMetric(float64(size)/(1<<20), "services-yaml-MB")
		})
	}
}

// tempDir is a t.TempDir whose name holds only the characters the reload
// agent accepts in a run directory (benchmark names carry '=').
func tempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "proxymatic-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	// A run dir inside must be reachable by the user the proxies drop to
	// (the agent refuses one that is not).
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// freePort asks the kernel for a free TCP port on all addresses (HAProxy
// binds :port).
func freePort(tb testing.TB) int {
	tb.Helper()
	return testbin.FreePort(tb, "tcp")
}

// stack is the live pipeline: Marathon stand-in → proxymatic-sync (daemon,
// event stream) → services.yaml → proxymatic-reload (daemon) → HAProxy.
type stack struct {
	m            *marathontest.Server
	file         string
	svcPort      int
	backends     [2]int // host ports of the two backends, answering "0" and "1"
	filler       []*marathontest.App
	syncStatus   string
	reloadStatus string
	current      int
}

// target is the app whose one task the benchmark moves between backends.
func (s *stack) apps(backend int) []*marathontest.App {
	a := marathontest.BridgeApp("/bench/target", s.svcPort).WithTask("127.0.0.1", s.backends[backend])
	return append([]*marathontest.App{a}, s.filler...)
}

func startStack(tb testing.TB, fillers int) *stack {
	tb.Helper()
	testbin.Require(tb, "haproxy")
	dir := tempDir(tb)
	s := &stack{m: marathontest.New(tb), file: filepath.Join(dir, "services.yaml"), svcPort: freePort(tb)}
	for i := range s.backends {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, i)
		}))
		tb.Cleanup(srv.Close)
		s.backends[i] = srv.Listener.Addr().(*net.TCPAddr).Port
	}
	// Other apps, so each refresh and reload carries a realistic load; their
	// tasks point at a closed port, which HAProxy does not mind.
	for i := range fillers {
		s.filler = append(s.filler, marathontest.BridgeApp(fmt.Sprintf("/bench/filler%d", i), freePort(tb)).
			WithTask(fmt.Sprintf("10.2.0.%d", i%200+1), 31000+i))
	}
	s.m.SetApps(s.apps(0)...)
	s.syncStatus = fmt.Sprintf("127.0.0.1:%d", freePort(tb))
	s.reloadStatus = fmt.Sprintf("127.0.0.1:%d", freePort(tb))
	ctx, cancel := context.WithCancel(context.Background())
	daemon := func(name string, args ...string) {
		cmd := exec.CommandContext(ctx, filepath.Join(bins, name), args...)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 15 * time.Second
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			cancel()
			cmd.Wait()
			if tb.Failed() {
				tb.Logf("%s output:\n%s", name, logs.Bytes())
			}
		})
	}
	daemon("proxymatic-sync", "--marathon", s.m.URL, "--output", s.file, "--refresh-interval", "3600", "--status-endpoint", s.syncStatus)
	waitFor(tb, 30*time.Second, "services.yaml written", func() bool {
		_, err := os.Stat(s.file)
		return err == nil
	})
	daemon("proxymatic-reload", "--services", s.file, "--haproxy", "--run-dir", filepath.Join(dir, "run"),
		"--status-endpoint", s.reloadStatus, "--shutdown-delay", "0s", "--stop-timeout", "3s",
		// The default 8192 needs more descriptors than this machine allows (20,000).
		"--max-connections", "1000")
	waitFor(tb, 30*time.Second, "HAProxy answering from backend 0", func() bool { return s.answer() == "0" })
	waitFor(tb, 10*time.Second, "event stream attached", func() bool { return s.m.Subscribers() > 0 })
	return s
}

// answer is what the service port answers on a new connection, "" if
// nothing.
func (s *stack) answer() string {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.svcPort))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// move points the target app at the other backend, pushes the event and
// returns how long until HAProxy answers from it.
func (s *stack) move(tb testing.TB) time.Duration {
	s.current = 1 - s.current
	want := fmt.Sprint(s.current)
	s.m.SetApps(s.apps(s.current)...)
	start := time.Now()
	s.m.PushEvent("status_update_event")
	for time.Since(start) < 20*time.Second {
		if s.answer() == want {
			return time.Since(start)
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatalf("HAProxy did not answer from backend %s within 20 s", want)
	return 0
}

func waitFor(tb testing.TB, limit time.Duration, what string, ok func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	tb.Fatalf("timed out waiting for %s", what)
}

// BenchmarkEventToTraffic is the figure (5): Marathon pushes an
// event → proxymatic-sync refreshes and renames services.yaml →
// proxymatic-reload renders and reloads HAProxy → a new connection to the
// service port is answered by the new backend. Reported as p50/p99 over the
// iterations (use -benchtime 100x or more).
func BenchmarkEventToTraffic(b *testing.B) {
	for _, fillers := range []int{0, 99, 999} {
		b.Run(fmt.Sprintf("apps=%d", fillers+1), func(b *testing.B) {
			s := startStack(b, fillers)
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, s.move(b))
			}
			slices.Sort(ds)
			pct := func(p float64) float64 {
				return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// metric reads one unlabelled sample from a /metrics endpoint.
func metric(tb testing.TB, addr, name string) float64 {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum, found := 0.0, false
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		tb.Fatalf("%s not found at %s/metrics", name, addr)
	}
	return sum
}

// TestUnchangedRefreshWritesAndReloadsNothing: the claim in
// docs/performance.md that a refresh which changes nothing costs no write and
// no reload, checked on the live pipeline; and that a change does both.
func TestUnchangedRefreshWritesAndReloadsNothing(t *testing.T) {
	s := startStack(t, 9)
	refreshes := func() float64 { return metric(t, s.syncStatus, "proxymatic_marathon_refreshes_total") }
	writes := func() float64 { return metric(t, s.syncStatus, "proxymatic_sync_file_writes_total") }
	reloads := func() float64 { return metric(t, s.reloadStatus, "proxymatic_reload_reloads_total") }
	// A server-only change is applied through HAProxy's runtime API, which
	// counts as an update, not a reload: either proves the change was applied.
	applied := func() float64 {
		return reloads() + metric(t, s.reloadStatus, "proxymatic_reload_runtime_updates_total")
	}
	// The first read waits for the event stream, so one read covers both.
	waitFor(t, 10*time.Second, "the first read", func() bool { return refreshes() >= 1 })
	time.Sleep(500 * time.Millisecond)
	fi, err := os.Stat(s.file)
	if err != nil {
		t.Fatal(err)
	}
	r0, w0, l0, a0 := refreshes(), writes(), reloads(), applied()
	for range 3 {
		s.m.PushEvent("status_update_event")
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "the pushed events' refreshes", func() bool { return refreshes() > r0 })
	time.Sleep(500 * time.Millisecond)
	if w := writes(); w != w0 {
		t.Errorf("unchanged refreshes wrote services.yaml: writes %v → %v", w0, w)
	}
	if l := reloads(); l != l0 {
		t.Errorf("unchanged refreshes reloaded: reloads %v → %v", l0, l)
	}
	if a := applied(); a != a0 {
		t.Errorf("unchanged refreshes were applied to HAProxy: %v → %v", a0, a)
	}
	if fi2, err := os.Stat(s.file); err != nil || !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("services.yaml replaced by an unchanged refresh")
	}
	// A change is written and reloaded, so the counters above could move.
	s.move(t)
	if w := writes(); w <= w0 {
		t.Errorf("a change was not counted as a write: %v → %v", w0, w)
	}
	waitFor(t, 10*time.Second, "the change applied (reload or runtime update)", func() bool { return applied() > a0 })
}
