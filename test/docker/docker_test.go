package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// root is the repository: the images' build context.
const root = "../.."

// waitLimit bounds every wait for a state: reaching it means the state never
// came. It is generous because CI runs packages side by side on two busy
// cores, and a container's HEALTHCHECK runs every 10 s.
const waitLimit = 3 * time.Minute

// The images under test and the stand-ins' images.
const (
	syncImage   = "proxymatic-sync:latest"
	reloadImage = "proxymatic:latest"
	stubImage   = "proxymatic-e2e-stub:latest"
	etcdImage   = "proxymatic-e2e-etcd:latest"
)

// requireDocker skips the test when no Docker engine answers, or fails it
// where CI=true (testbin.Missing): CI never goes green by skipping the
// images.
func requireDocker(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err == nil {
		return
	}
	testbin.Missing(t, "no Docker engine answers (docker version: %v: %s)", err, bytes.TrimSpace(out))
}

// run runs a command from the repository root and returns its output;
// the error carries the output.
func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func must(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

var built struct {
	once sync.Once
	err  error
	log  string
	took time.Duration
}

// images builds the two images with scripts/images.sh (what `make images`
// runs) and the stand-ins' images, once per test binary.
func images(t *testing.T) {
	t.Helper()
	requireDocker(t)
	first := false
	built.once.Do(func() {
		first = true
		start := time.Now()
		built.err = buildImages()
		built.took = time.Since(start)
	})
	if first {
		t.Logf("images built in %s:\n%s", built.took.Round(time.Second), built.log)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
}

func buildImages() error {
	out, err := run("./scripts/images.sh")
	built.log = out
	if err != nil {
		return err
	}
	// The stand-ins: static binaries built here, on the images' base.
	dir, err := os.MkdirTemp("", "proxymatic-e2e-stub-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+"/", "./test/docker/marathonstub", "./deploy/demo/backend")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the stand-ins: %v\n%s", err, out)
	}
	df, err := os.ReadFile("testdata/stub.Dockerfile")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	if _, err := run("docker", "build", "-q", "-t", stubImage, dir); err != nil {
		return err
	}
	_, err = run("docker", "build", "-q", "-t", etcdImage, "-f", "test/docker/testdata/etcd.Dockerfile", "test/docker/testdata")
	return err
}

// eventually waits until ok holds, failing the test after waitLimit.
func eventually(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", waitLimit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// target is one way into a proxy: a port on the host's loopback, and the
// Host header nginx picks the virtual host by ("" for HAProxy).
type target struct {
	port int
	host string
}

func (tg target) String() string {
	if tg.host == "" {
		return fmt.Sprintf("127.0.0.1:%d", tg.port)
	}
	return fmt.Sprintf("%s on 127.0.0.1:%d", tg.host, tg.port)
}

// client opens a new connection per request: HAProxy in TCP mode balances
// connections, not requests.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// backendRE finds who answered in the demo backend's reply.
var backendRE = regexp.MustCompile(`^hello from (\S+) `)

// get sends GET path to tg and returns the backend that answered.
func get(tg target, path string) (string, error) {
	req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", tg.port, path), nil)
	if err != nil {
		return "", err
	}
	if tg.host != "" {
		req.Host = tg.host
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s: reading the answer: %w", tg, err)
	}
	m := backendRE.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", fmt.Errorf("%s: HTTP %d %q", tg, resp.StatusCode, b)
	}
	return string(m[1]), nil
}

// servedBy sends a few requests to tg and returns the backends that
// answered, sorted; nil if any request failed.
func servedBy(tg target) []string {
	var seen []string
	for range 8 {
		b, err := get(tg, "/")
		if err != nil {
			return nil
		}
		if !slices.Contains(seen, b) {
			seen = append(seen, b)
		}
	}
	slices.Sort(seen)
	return seen
}

// follows waits until every target is served by exactly the backends want.
func follows(t testing.TB, what string, want []string, targets ...target) {
	t.Helper()
	slices.Sort(want)
	for _, tg := range targets {
		deadline := time.Now().Add(waitLimit)
		for {
			last := servedBy(tg)
			if slices.Equal(last, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: waited %s for %s to be served by %v; the last requests reached %v (nil: one failed)", what, waitLimit, tg, want, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// status returns the HTTP status and body of GET /status on port.
func status(port int) (int, string) {
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// health is a container's HEALTHCHECK state: starting, healthy, unhealthy.
func health(t testing.TB, id string) string {
	t.Helper()
	return must(t, "docker", "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
}

// setApps makes the stand-in Marathon on port serve apps, announced by an
// event as Marathon announces a scale.
func setApps(port int, apps ...*marathontest.App) error {
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/stub/apps", port), "application/json", bytes.NewReader(marathontest.AppsJSON(apps)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST /stub/apps: HTTP %d %s", resp.StatusCode, b)
	}
	return nil
}

// load keeps a few clients sending slow requests (the backend answers after
// 200 ms, so that requests are in flight whenever something stops) through
// the proxies, and sorts every outcome.
type load struct {
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup

	mu sync.Mutex
	// stopping: from now on a refused connection is expected (nothing
	// listens any more); anything else that is not an answer is a loss.
	stopping bool
	ok       int
	okAfter  int // answers once stopping
	refused  int
	lost     []loss
	last     time.Time // of the last answer
}

// loss is a request that got no answer, though the proxy took it (or, before
// stopping, any request that got no answer).
type loss struct {
	at  time.Time
	err string
}

func (x loss) String() string { return x.at.Format("15:04:05.000") + " " + x.err }

// lostBefore counts the losses before t and returns the first few.
func (l *load) lostBefore(t time.Time) (int, []loss) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int
	var first []loss
	for _, x := range l.lost {
		if x.at.Before(t) {
			n++
			if len(first) < 5 {
				first = append(first, x)
			}
		}
	}
	return n, first
}

// answered is the number of answers so far.
func (l *load) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// loadFor bounds a load that nobody stops: it ends by itself.
const loadFor = 10 * time.Minute

func startLoad(workers int, path string, targets ...target) *load {
	l := &load{stop: make(chan struct{})}
	deadline := time.Now().Add(loadFor)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				tg := targets[i%len(targets)]
				_, err := get(tg, path)
				l.record(tg, err)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *load) record(tg target, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var op *net.OpError
	switch {
	case err == nil:
		l.ok++
		l.last = time.Now()
		if l.stopping {
			l.okAfter++
		}
	case l.stopping && errors.As(err, &op) && op.Op == "dial":
		l.refused++
	default:
		l.lost = append(l.lost, loss{time.Now(), fmt.Sprintf("%s: %v", tg, err)})
	}
}

func (l *load) markStopping() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
}

// end stops the load and waits for the requests under way.
func (l *load) end() {
	l.stopped.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d answered (%d while stopping), %d refused while stopping, %d lost", l.ok, l.okAfter, l.refused, len(l.lost))
}
