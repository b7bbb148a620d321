package syncer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeSource is a discovery source driven by the test: each state sent on
// states is published as one good read; a failed read publishes nothing.
type fakeSource struct {
	name     string
	states   chan []services.Service
	watchErr error         // returned at once by Watch when set
	hold     chan struct{} // when set, Watch ignores ctx until it is closed
	fetch    func(context.Context) ([]services.Service, error)
}

func newFake(name string) *fakeSource {
	return &fakeSource{name: name, states: make(chan []services.Service)}
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Fetch(ctx context.Context) ([]services.Service, error) {
	return f.fetch(ctx)
}

func (f *fakeSource) Watch(ctx context.Context, publish func([]services.Service)) error {
	if f.watchErr != nil {
		return f.watchErr
	}
	if f.hold != nil {
		<-f.hold
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-f.states:
			publish(s)
		}
	}
}

func svc(name string, port int, src services.Source, addrs ...string) services.Service {
	s := services.Service{Name: name, Port: port, Protocol: services.TCP, Mode: services.ModeTCP, Source: src}
	for _, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		s.Servers = append(s.Servers, services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: services.DefaultWeight})
	}
	return s
}

type logBuffer struct{ testbin.Buffer }

func (l *logBuffer) count(sub string) int { return strings.Count(l.String(), sub) }

type harness struct {
	t       *testing.T
	d       *Daemon
	path    string
	logs    *logBuffer
	updated chan struct{}
	stop    func() error
}

// newHarness builds a daemon over the given sources writing a real file
// with atomicfile in a temporary directory.
func newHarness(t *testing.T, sources ...Source) *harness {
	t.Helper()
	h := &harness{t: t, logs: &logBuffer{}, updated: make(chan struct{}, 100)}
	h.path = filepath.Join(t.TempDir(), "run", "services.yaml")
	h.d = &Daemon{
		Sources:     sources,
		Sink:        atomicfile.New(h.path, FileMode),
		Logger:      slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StopTimeout: 10 * time.Second,
		InitialWait: time.Hour, // tests of the initial wait set their own
		onUpdate:    func() { h.updated <- struct{}{} },
	}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Run(ctx) }()
	h.stop = func() error {
		cancel()
		return <-done
	}
	h.t.Cleanup(func() {
		if h.stop != nil {
			_ = h.stop()
		}
	})
}

func (h *harness) shutdown() error {
	err := h.stop()
	h.stop = nil
	return err
}

// push publishes a good read from src and waits until the daemon handled it.
func (h *harness) push(src *fakeSource, svcs ...services.Service) {
	h.t.Helper()
	src.states <- svcs
	select {
	case <-h.updated:
	case <-time.After(30 * time.Second):
		h.t.Fatal("the daemon did not handle the update (hang guard)")
	}
}

func (h *harness) file() []byte {
	h.t.Helper()
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.t.Fatalf("services.yaml: %v", err)
	}
	return data
}

func (h *harness) decoded() *services.File {
	h.t.Helper()
	f, _, err := services.Decode(h.file())
	if err != nil {
		h.t.Fatalf("services.yaml does not decode: %v", err)
	}
	return f
}

func (h *harness) inode() uint64 {
	h.t.Helper()
	st, err := os.Stat(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func names(f *services.File) string {
	var out []string
	for _, s := range f.Services {
		out = append(out, s.Name+":"+s.Key().String()+":"+string(s.Source))
	}
	return strings.Join(out, " ")
}

func TestNothingWrittenUntilEverySourceRead(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.start()

	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if _, err := os.Stat(h.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("services.yaml exists with only marathon read (err %v): a partial set was published", err)
	}
	if st.State() != status.Initializing {
		t.Fatalf("status %s before every source was read, want INITIALIZING", st.State())
	}

	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.2:31432"))
	if got, want := names(h.decoded()), "db:5432/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}
	if st.State() != status.OK {
		t.Errorf("status %s after every source was read, want OK", st.State())
	}
}

func TestMarathonWinsOverRegistrator(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.start()

	m := svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000")
	r := svc("web-reg", 10001, services.SourceRegistrator, "10.0.0.9:8080")
	udp := svc("dns", 10001, services.SourceRegistrator, "10.0.0.9:53")
	udp.Protocol = services.UDP
	h.push(mar, m)
	h.push(reg, r, udp)
	f := h.decoded()
	if got, want := names(f), "web:10001/tcp:marathon dns:10001/udp:registrator"; got != want {
		t.Fatalf("services = %q, want %q (marathon wins 10001/tcp; udp is another key)", got, want)
	}
	if got := f.Services[0].Servers[0].Address(); got != "10.0.0.1:31000" {
		t.Errorf("10001/tcp server %s, want marathon's 10.0.0.1:31000", got)
	}
	if n := value(mergeCollisions); n != 1 {
		t.Errorf("merge collisions gauge = %v, want 1", n)
	}

	// More refreshes with the same collision: logged once.
	h.push(reg, r, udp)
	h.push(mar, m)
	if n := h.logs.count("port claimed by two sources"); n != 1 {
		t.Errorf("collision logged %d times, want once:\n%s", n, h.logs)
	}

	// The collision ends, then returns: it is logged again.
	h.push(reg, udp)
	if n := value(mergeCollisions); n != 0 {
		t.Errorf("merge collisions gauge = %v after it ended, want 0", n)
	}
	h.push(reg, r, udp)
	if n := h.logs.count("port claimed by two sources"); n != 2 {
		t.Errorf("collision logged %d times after it came back, want 2", n)
	}
}

func TestOutageKeepsLastGoodState(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.start()
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000", "10.0.0.2:31000"))
	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"))
	before, inode := h.file(), h.inode()
	writes := value(fileWrites)

	// Marathon is down from here on: it publishes nothing. Registrator's
	// polls go on with the same state: the file is not touched.
	for range 3 {
		h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"))
	}
	if after := h.file(); !bytes.Equal(before, after) {
		t.Fatalf("file changed during marathon's outage:\n%s\nwas:\n%s", after, before)
	}
	if h.inode() != inode {
		t.Error("file replaced (new inode) although its bytes did not change")
	}
	if got := value(fileWrites); got != writes {
		t.Errorf("%v writes counted for an unchanged state", got-writes)
	}

	// A registrator change during the outage: marathon's last state stays.
	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432", "10.0.0.4:31432"))
	f := h.decoded()
	if got, want := names(f), "db:5432/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Fatalf("services = %q, want %q", got, want)
	}
	if n := len(f.Services[1].Servers); n != 2 {
		t.Errorf("web has %d servers during the outage, want its last good 2", n)
	}
}

func TestEmptyReadIsAGoodRead(t *testing.T) {
	// An empty state from a successful read is the truth (every app
	// deleted) and is published; only a failed read keeps the old state.
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.start()
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	h.push(reg)
	h.push(mar)
	if got := names(h.decoded()); got != "" {
		t.Errorf("services = %q after marathon read no apps, want none", got)
	}
}

func TestChangesAreLogged(t *testing.T) {
	src := newFake("marathon")
	h := newHarness(t, src)
	h.start()
	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"), svc("api", 10002, services.SourceMarathon, "10.0.0.5:31000"))
	for _, want := range []string{
		`msg=Added service=web port=10001/tcp mode=tcp source=marathon servers=1`,
		`msg=Added service=api port=10002/tcp mode=tcp source=marathon servers=1`,
	} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logs)
		}
	}
	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000", "10.0.0.2:31000"))
	for _, want := range []string{
		`msg=Modified service=web port=10001/tcp mode=tcp source=marathon servers=2 was="web:10001/tcp -> [10.0.0.1:31000]"`,
		`msg=Removed service=api port=10002/tcp`,
	} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logs)
		}
	}
	// An unchanged state logs no change.
	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.2:31000", "10.0.0.1:31000"))
	if n := h.logs.count("msg=Modified"); n != 1 {
		t.Errorf("%d Modified lines, want 1 (server order is not a change)", n)
	}
	if got := value(servicesPublished); got != 1 {
		t.Errorf("services gauge = %v, want 1", got)
	}
	if got := value(serversPublished); got != 2 {
		t.Errorf("servers gauge = %v, want 2", got)
	}
}

func TestRestartLogsAgainstPreviousFile(t *testing.T) {
	src := newFake("marathon")
	h := newHarness(t, src)
	h.d.Previous = []services.Service{svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000")}
	h.start()
	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if n := h.logs.count("msg=Added"); n != 0 {
		t.Errorf("a service already in the previous file was logged as Added:\n%s", h.logs)
	}
}

func TestInvalidServicesAreDropped(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.start()
	evil := svc("web\n  servers: []\nx", 10001, services.SourceMarathon, "10.0.0.1:31000")
	h.push(mar, evil, svc("ok", 10002, services.SourceMarathon, "10.0.0.1:31001"))
	// A valid registrator service on the port of marathon's invalid one is
	// published: the invalid one is dropped before precedence applies.
	h.push(reg, svc("web", 10001, services.SourceRegistrator, "10.0.0.2:8080"))
	if got, want := names(h.decoded()), "web:10001/tcp:registrator ok:10002/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}
	if strings.Contains(string(h.file()), "10.0.0.1:31000") || strings.Contains(string(h.file()), "31000") {
		t.Errorf("the invalid service's server reached the file:\n%s", h.file())
	}
	h.push(mar, evil, svc("ok", 10002, services.SourceMarathon, "10.0.0.1:31001"))
	if n := h.logs.count("invalid service dropped"); n != 1 {
		t.Errorf("invalid service logged %d times, want once", n)
	}
	if got := value(rejectedServices.WithLabelValues("marathon")); got != 1 {
		t.Errorf("rejected gauge = %v, want 1", got)
	}
}

// failingSink fails while fail is set, then writes through.
type failingSink struct {
	mu   sync.Mutex
	fail bool
	next Sink
}

func (s *failingSink) Write(data []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return false, errors.New("write /x/services.yaml: no space left on device")
	}
	return s.next.Write(data)
}

func (s *failingSink) set(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

func TestWriteErrorKeepsInitializingAndRetries(t *testing.T) {
	src := newFake("marathon")
	h := newHarness(t, src)
	sink := &failingSink{fail: true, next: h.d.Sink}
	h.d.Sink = sink
	st := status.New(nil)
	h.d.Status = st
	h.start()
	errs := value(fileWriteErrors)

	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if st.State() != status.Initializing {
		t.Errorf("status %s with the file not written, want INITIALIZING", st.State())
	}
	if got := value(fileWriteErrors) - errs; got != 1 {
		t.Errorf("%v write errors counted, want 1", got)
	}
	if !strings.Contains(h.logs.String(), "no space left on device") {
		t.Errorf("write error not logged:\n%s", h.logs)
	}
	// The next poll of the same state succeeds: published, and logged as
	// Added then (not when the write failed).
	sink.set(false)
	h.push(src, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if st.State() != status.OK {
		t.Errorf("status %s after the write succeeded, want OK", st.State())
	}
	if names(h.decoded()) != "web:10001/tcp:marathon" {
		t.Errorf("file: %s", h.file())
	}
	if n := h.logs.count("msg=Added"); n != 1 {
		t.Errorf("Added logged %d times, want once", n)
	}
}

func TestStatusTransitions(t *testing.T) {
	src := newFake("registrator")
	h := newHarness(t, src)
	st := status.New(nil)
	h.d.Status = st
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		st.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	h.start()
	if code, body := get(); code != 503 || body != "INITIALIZING" {
		t.Errorf("before a read: %d %s, want 503 INITIALIZING", code, body)
	}
	h.push(src, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"))
	if code, body := get(); code != 200 || body != "OK" {
		t.Errorf("after a read: %d %s, want 200 OK", code, body)
	}
	if err := h.shutdown(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 503 || body != "TERMINATING" {
		t.Errorf("after shutdown: %d %s, want 503 TERMINATING", code, body)
	}
}

func TestShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.d.WaitWarning = time.Millisecond // the warning ticker runs too
	h.start()
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if err := h.shutdown(); err != nil {
		t.Fatalf("Run = %v, want a clean stop", err)
	}
	// Goroutines that have returned may take a moment to be accounted.
	var now int
	for range 200 {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines after shutdown, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
}

func TestSourceThatDoesNotStopIsReported(t *testing.T) {
	stuck := newFake("marathon")
	stuck.hold = make(chan struct{})
	defer close(stuck.hold)
	h := newHarness(t, stuck)
	h.d.StopTimeout = 50 * time.Millisecond
	h.start()
	err := h.shutdown()
	if err == nil || !strings.Contains(err.Error(), "did not stop within 50ms") {
		t.Fatalf("Run = %v, want a report that the source did not stop", err)
	}
}

func TestSourceConfigErrorStopsDaemon(t *testing.T) {
	ok, bad := newFake("marathon"), newFake("registrator")
	bad.watchErr = errors.New("etcd: bad prefix")
	h := newHarness(t, ok, bad)
	err := h.d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "source registrator: etcd: bad prefix") {
		t.Fatalf("Run = %v, want the source's configuration error", err)
	}
}

func fetchOf(svcs []services.Service, err error) func(context.Context) ([]services.Service, error) {
	return func(context.Context) ([]services.Service, error) { return svcs, err }
}

func TestOnceWritesMergedState(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	mar.fetch = fetchOf([]services.Service{svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000")}, nil)
	reg.fetch = fetchOf([]services.Service{svc("other", 10001, services.SourceRegistrator, "10.0.0.9:1"), svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432")}, nil)
	h := newHarness(t, mar, reg)
	if err := h.d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := names(h.decoded()), "db:5432/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}
}

func TestOnceWritesNothingWhenASourceFails(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	mar.fetch = fetchOf([]services.Service{svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000")}, nil)
	reg.fetch = fetchOf(nil, errors.New("etcd 127.0.0.1:2379: connection refused"))
	h := newHarness(t, mar, reg)
	old := []byte("# left by an earlier run\nversion: 1\nservices: []\n")
	if err := os.MkdirAll(filepath.Dir(h.path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	err := h.d.Once(context.Background())
	if err == nil || !strings.Contains(err.Error(), "source registrator: etcd 127.0.0.1:2379: connection refused") {
		t.Fatalf("Once = %v, want the source's error", err)
	}
	if !bytes.Equal(h.file(), old) {
		t.Errorf("file changed although a source failed:\n%s", h.file())
	}
}

func TestOnceDryRunPrints(t *testing.T) {
	src := newFake("marathon")
	src.fetch = fetchOf([]services.Service{svc("web", 10001, services.SourceMarathon, "10.0.0.2:31000", "10.0.0.1:31000")}, nil)
	h := newHarness(t, src)
	var out bytes.Buffer
	h.d.Sink = printer{&out}
	if err := h.d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := services.File{Services: []services.Service{svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000", "10.0.0.2:31000")}}
	want.Normalize()
	if out.String() != string(want.Encode()) {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want.Encode())
	}
	if _, err := os.Stat(h.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--dry-run wrote %s", h.path)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestLargeChangeLogsASummary(t *testing.T) {
	var buf bytes.Buffer
	m := &merger{logger: slog.New(slog.NewTextHandler(&buf, nil))}
	var f services.File
	for i := 0; i < maxChangeLines+1; i++ {
		f.Services = append(f.Services, services.Service{Name: "s", Port: 1000 + i, Protocol: services.TCP, Mode: services.ModeTCP})
	}
	m.commit(f)
	out := buf.String()
	if strings.Count(out, "msg=Added") != 0 || !strings.Contains(out, "added=101") {
		t.Fatalf("want one summary line, got:\n%s", out)
	}
	buf.Reset()
	f.Services = f.Services[:3]
	m.commit(f)
	if n := strings.Count(buf.String(), "msg=Removed"); n != maxChangeLines+1-3 {
		t.Fatalf("98 removals: want a line each, got %d:\n%s", n, buf.String())
	}
	buf.Reset()
	f.Services = f.Services[:1]
	m.commit(f)
	if n := strings.Count(buf.String(), "msg=Removed"); n != 2 {
		t.Fatalf("small change: want 2 Removed lines, got:\n%s", buf.String())
	}
}

func TestDiffWalksSortedLists(t *testing.T) {
	svc := func(name string, port int, proto services.Protocol) services.Service {
		return services.Service{Name: name, Port: port, Protocol: proto, Mode: services.ModeTCP}
	}
	old := []services.Service{svc("a", 1, services.TCP), svc("b", 2, services.TCP), svc("c", 2, services.UDP), svc("e", 5, services.TCP)}
	next := []services.Service{svc("a", 1, services.TCP), svc("c2", 2, services.UDP), svc("d", 3, services.TCP), svc("f", 6, services.TCP)}
	var got []string
	diff(old, next, func(c change, s, was *services.Service) {
		line := c.String() + " " + s.Name
		if was != nil {
			line += " was " + was.Name
		}
		got = append(got, line)
	})
	want := []string{"Modified c2 was c", "Added d", "Added f", "Removed b", "Removed e"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("diff = %q, want %q", got, want)
	}
	diff(next, next, func(c change, s, _ *services.Service) { t.Errorf("no change expected, got %s %s", c, s.Name) })
}

// A refresh (SIGHUP) reads every source with Fetch beside its Watch and
// publishes what it read; one asked for while another runs follows it,
// so a change made after the running one read its source is not lost. A
// source whose refresh fails keeps its last state.
func TestRefreshReadsEverySource(t *testing.T) {
	m, r := newFake("marathon"), newFake("registrator")
	var mu sync.Mutex
	mState := []services.Service{svc("web", 1000, services.SourceMarathon, "10.0.0.1:80")}
	gate, fetched := make(chan struct{}, 10), make(chan struct{}, 10)
	// Fetch reads the state, then is held: a change made while it is held
	// is only seen by a later refresh.
	m.fetch = func(context.Context) ([]services.Service, error) {
		mu.Lock()
		read := slices.Clone(mState)
		mu.Unlock()
		fetched <- struct{}{}
		<-gate
		return read, nil
	}
	r.fetch = func(context.Context) ([]services.Service, error) { return nil, errors.New("etcd down") }
	h := newHarness(t, m, r)
	refresh := make(chan struct{}, 1)
	h.d.Refresh = refresh
	h.start()
	h.push(m, svc("web", 1000, services.SourceMarathon, "10.0.0.1:80"))
	h.push(r, svc("db", 2000, services.SourceRegistrator, "10.0.1.1:5432"))

	refresh <- struct{}{}
	waitLog := func(sub string, n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for h.logs.count(sub) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (x%d) in:\n%s", sub, n, h.logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLog("reading every source now", 1)
	// Asked again while the first is held inside Fetch (it read the old
	// state), then the state changes: only the refresh that follows sees it.
	<-fetched
	refresh <- struct{}{}
	waitLog("another follows it", 1)
	mu.Lock()
	mState = []services.Service{svc("web", 1000, services.SourceMarathon, "10.0.0.2:80")}
	mu.Unlock()
	gate <- struct{}{}
	gate <- struct{}{}
	deadline := time.Now().Add(30 * time.Second)
	for !bytes.Contains(h.file(), []byte("10.0.0.2")) {
		if time.Now().After(deadline) {
			t.Fatalf("the refreshed state was not published:\n%s\n%s", h.file(), h.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Contains(h.file(), []byte("10.0.1.1")) {
		t.Errorf("a source whose refresh failed lost its state:\n%s", h.file())
	}
	waitLog("refresh (SIGHUP) failed; the source keeps its last good state", 1)
}
