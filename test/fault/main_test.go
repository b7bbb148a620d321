// Package fault is proxymatic's fault and abuse suite: it breaks the
// sources, the disk, the services file, the proxies and the agent on
// purpose, and asserts that nothing is lost — the file keeps its last good
// bytes, the proxies keep answering, and everything recovers by itself once
// the fault is gone. It drives the real binaries, built once in TestMain,
// against real etcd, HAProxy, nginx and pen on 127.0.0.1 and the Marathon
// stand-in. docs/reliability.md tabulates each fault and the test proving it.
package fault

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
)

// Paths of the binaries under test, built by TestMain.
var binSync, binReload string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxymatic-fault-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The proxies drop to nobody and exec nothing from here, but the agent
	// runs as another user in one test.
	os.Chmod(dir, 0o755)
	binSync = filepath.Join(dir, "proxymatic-sync")
	binReload = filepath.Join(dir, "proxymatic-reload")
	for bin, pkg := range map[string]string{binSync: "./cmd/proxymatic-sync", binReload: "./cmd/proxymatic-reload"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuf collects a process's output, safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one binary under test.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  *logBuf
	done chan struct{}
	err  error // valid after done
}

// start runs bin with args; extraEnv is added to a minimal environment.
// The process gets SIGTERM (then SIGKILL after 15 s) when the test ends.
func start(t testing.TB, bin string, args []string, extraEnv ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(bin, args...), extraEnv...)
}

func startCmd(t testing.TB, cmd *exec.Cmd, extraEnv ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: filepath.Base(cmd.Path), cmd: cmd, log: &logBuf{}, done: make(chan struct{})}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/tmp", "LOG_FORMAT=text"}, extraEnv...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output (last 6 KiB):\n%s", p.name, tail(p.log.String(), 6<<10))
		}
	})
	return p
}

// stop sends SIGTERM and waits, killing after 15 s. It returns the exit error.
func (p *proc) stop() error {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.t.Errorf("%s did not stop within 15 s of SIGTERM; killing it", p.name)
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.err
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive fails the test when the process has ended.
func (p *proc) alive(t testing.TB) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log.String(), 4<<10))
	}
}

// waitExit waits (bounded) for the process to end on its own.
func (p *proc) waitExit(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		t.Fatalf("%s still running after %v", p.name, within)
		return nil
	}
}

// waitLog waits until the output contains s.
func (p *proc) waitLog(t testing.TB, s string, within time.Duration) {
	t.Helper()
	eventually(t, within, "log line "+strconv.Quote(s), func() bool { return strings.Contains(p.log.String(), s) })
}

// eventually polls cond every 20 ms until it holds, failing after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	d, ok := poll(within, cond)
	if !ok {
		t.Fatalf("not within %v: %s", within, what)
	}
	return d
}

// poll checks cond every 20 ms until it holds (true, and how long it took)
// or within has passed (false).
func poll(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// never checks cond stays false for d (a fault that must change nothing).
func never(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			t.Fatalf("unexpected: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

var httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get returns the status code and body of GET url (code 0 on a transport error).
func get(url string) (int, string) {
	return do("GET", url, "")
}

func do(method, url, host string) (int, string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if host != "" {
		req.Host = host
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric sums the samples of name whose labels contain every labels entry
// ("k=\"v\"" form), in the Prometheus text at base/metrics. -1 when absent.
func metric(t testing.TB, base, name string, labels ...string) float64 {
	t.Helper()
	code, body := get(base + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", base, code, body)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileEquals(path string, want []byte) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Equal(b, want)
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ctxT is a context ended with the test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
