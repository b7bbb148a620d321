package marathon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func newSource(t *testing.T, o Options) (*Source, *testbin.Buffer) {
	t.Helper()
	logs := &testbin.Buffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.Resolver == nil {
		o.Resolver = testDNS
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// deadURL is a local address nothing listens on: connection refused.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func webApp(hostPorts ...int) *marathontest.App {
	a := marathontest.BridgeApp("/prod/web", 10001)
	for _, p := range hostPorts {
		a.AddTask("10.0.0.1", p)
	}
	return a
}

func TestNewValidates(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	for _, o := range []Options{
		{},
		{URLs: []string{"ftp://user:s3cret@m:8080"}},
		{URLs: []string{"http://user:s3cret@"}},
		{URLs: []string{"http://user:s3cret@m:8080/?x=1"}},
		{URLs: []string{"http://user:s3cret@m:80%zz"}},
		{URLs: []string{"http://m:8080"}, GroupSize: -1},
		{URLs: []string{"http://m:8080"}, RefreshInterval: -time.Second},
		{URLs: []string{"http://m:8080"}, CACertFile: ca},
		{URLs: []string{"http://m:8080"}, CACertFile: ca + ".missing"},
	} {
		_, err := New(o)
		if err == nil {
			t.Errorf("%+v: no error", o)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	s, err := New(Options{URLs: []string{"https://u:p@m1:8080/", "http://m2:8080/marathon"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "marathon" || s.opts.GroupSize != 1 || s.opts.RefreshInterval != DefaultRefreshInterval {
		t.Errorf("defaults not applied: %+v", s.opts)
	}
	if s.client.replicas[0].name != "https://m1:8080" || s.client.replicas[1].name != "http://m2:8080/marathon" {
		t.Errorf("replica names %q %q", s.client.replicas[0].name, s.client.replicas[1].name)
	}
}

func TestFetchOneRequest(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001, 31002), marathontest.BridgeApp("/prod/api", 10002).WithTask("agent-1", 31003))
	s, _ := newSource(t, Options{URLs: []string{m.URL}})
	got, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.1@10.0.0.1:31002/500/0",
		"api.prod 10002/tcp tcp: agent-1@10.1.0.1:31003/500/0",
	}
	if g := summary(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q", g)
	}
	if n := m.Requests("/v2/apps"); n != 1 {
		t.Errorf("%d requests for one refresh", n)
	}
	if q := m.Queries("/v2/apps"); len(q) != 1 || q[0] != "embed=apps.tasks" {
		t.Errorf("query %q", q)
	}
}

func TestFailover(t *testing.T) {
	cases := map[string]func(t *testing.T, bad *marathontest.Server) string{
		"connection refused": func(t *testing.T, _ *marathontest.Server) string { return deadURL(t) },
		"5xx": func(t *testing.T, bad *marathontest.Server) string {
			bad.Fail(http.StatusServiceUnavailable)
			return bad.URL
		},
		"timeout": func(t *testing.T, bad *marathontest.Server) string {
			bad.Delay(5 * time.Second)
			return bad.URL
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			bad, good := marathontest.New(t), marathontest.New(t)
			good.SetApps(webApp(31001))
			badURL := setup(t, bad)
			s, logs := newSource(t, Options{URLs: []string{badURL, good.URL}, ReadTimeout: 200 * time.Millisecond})
			for i := range 3 {
				got, err := s.Fetch(context.Background())
				if err != nil || len(got) != 1 || len(got[0].Servers) != 1 {
					t.Fatalf("fetch %d: %v %v\n%s", i, summary(got), err, logs)
				}
			}
			// Each request starts at the replica that last answered.
			if n := bad.Requests("/v2/apps"); n > 1 {
				t.Errorf("failed replica asked %d times; want once, then the good one first", n)
			}
			if n := good.Requests("/v2/apps"); n != 3 {
				t.Errorf("good replica asked %d times, want 3", n)
			}
			if !strings.Contains(logs.String(), "replica failed, trying the next") {
				t.Errorf("failover not logged:\n%s", logs)
			}
		})
	}
}

func TestAllReplicasFail(t *testing.T) {
	a, b := marathontest.New(t), marathontest.New(t)
	a.Fail(500)
	b.Fail(502)
	s, _ := newSource(t, Options{URLs: []string{a.URL, b.URL}})
	if _, err := s.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("err = %v", err)
	}
}

// Any non-2xx answer is that replica's failure: a 401 from a replica with
// stale credentials, a proxy's 403 or 404 in front of one, a follower that
// is not ready. The next replica is asked and the failing one is not first
// next time.
func TestNon2xxFailsOver(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			a, b := marathontest.New(t), marathontest.New(t)
			if code == http.StatusUnauthorized {
				a.RequireAuth("u", "right")
			} else {
				a.Fail(code)
			}
			b.SetApps(webApp(31001))
			s, _ := newSource(t, Options{URLs: []string{"http://u:wrong@" + strings.TrimPrefix(a.URL, "http://"), b.URL}})
			for range 2 {
				got, err := s.Fetch(context.Background())
				if err != nil || len(got) != 1 {
					t.Fatalf("%v %v", summary(got), err)
				}
			}
			if n := a.Requests("/v2/apps"); n != 1 {
				t.Errorf("failing replica asked %d times, want once", n)
			}
			if n := b.Requests("/v2/apps"); n != 2 {
				t.Errorf("good replica asked %d times, want 2", n)
			}
		})
	}
	// Every replica failing: the error names each, without the password.
	a := marathontest.New(t)
	a.RequireAuth("u", "right")
	s, _ := newSource(t, Options{URLs: []string{"http://u:wrong@" + strings.TrimPrefix(a.URL, "http://")}})
	_, err := s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedirectToLeaderWithAuth(t *testing.T) {
	follower, leader := marathontest.New(t), marathontest.New(t)
	leader.SetApps(webApp(31001))
	leader.RequireAuth("admin", "pa55word")
	follower.RequireAuth("admin", "pa55word")
	follower.RedirectTo(leader.URL)
	withAuth := func(u string) string { return "http://admin:pa55word@" + strings.TrimPrefix(u, "http://") }
	// The leader is another configured replica: the credentials follow.
	s, logs := newSource(t, Options{URLs: []string{withAuth(follower.URL), withAuth(leader.URL)}})
	got, err := s.Fetch(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", summary(got), err)
	}
	if follower.Requests("/v2/apps") != 1 || leader.Requests("/v2/apps") != 1 {
		t.Errorf("requests: follower %d leader %d", follower.Requests("/v2/apps"), leader.Requests("/v2/apps"))
	}
	if strings.Contains(logs.String(), "pa55word") {
		t.Errorf("password logged:\n%s", logs)
	}
}

// A redirect anywhere but a configured replica's scheme, host and port is
// followed without the credentials: not to another port of the same host
// (which Go alone would send them to), not to a host that only resembles
// a replica.
func TestRedirectNeverCarriesAuthElsewhere(t *testing.T) {
	for name, target := range map[string]func(t *testing.T, other *marathontest.Server) string{
		"same host, other port": func(_ *testing.T, other *marathontest.Server) string { return other.URL },
		"other host name": func(_ *testing.T, other *marathontest.Server) string {
			return strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			follower, other := marathontest.New(t), marathontest.New(t)
			other.SetApps(webApp(31001))
			follower.RequireAuth("admin", "pa55word")
			follower.RedirectTo(target(t, other))
			s, _ := newSource(t, Options{URLs: []string{"http://admin:pa55word@" + strings.TrimPrefix(follower.URL, "http://")}})
			if _, err := s.Fetch(context.Background()); err != nil {
				t.Fatal(err)
			}
			seen := other.Authorization()
			if len(seen) == 0 {
				t.Fatal("the redirect was not followed")
			}
			for _, a := range seen {
				if a != "" {
					t.Errorf("credentials sent to a host that is not a configured replica: %q", a)
				}
			}
		})
	}
}

// TestAuthNeverLogged drives every path that logs or returns errors with a
// password in the URL and looks for it everywhere.
func TestAuthNeverLogged(t *testing.T) {
	const pass = "Sup3rSecretPw"
	good, bad := marathontest.New(t), marathontest.New(t)
	good.RequireAuth("svc", pass)
	bad.RequireAuth("svc", pass)
	good.SetApps(webApp(31001))
	bad.Fail(503)
	withAuth := func(u string) string { return "http://svc:" + pass + "@" + strings.TrimPrefix(u, "http://") }
	s, logs := newSource(t, Options{
		URLs:              []string{withAuth(deadURL(t)), withAuth(bad.URL), withAuth(good.URL)},
		StreamIdleTimeout: 200 * time.Millisecond, RefreshInterval: time.Hour,
	})
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	good.Fail(500)
	_, err := s.Fetch(context.Background())
	if err == nil {
		t.Fatal("want an error with every replica failing")
	}
	good.Fail(0)
	good.StallEvents(true)
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan struct{}, 10)
	done := make(chan error)
	go func() { done <- s.Watch(ctx, func([]services.Service) { published <- struct{}{} }) }()
	<-published
	waitFor(t, "stalled stream noticed", func() bool { return strings.Contains(logs.String(), "event stream lost") })
	cancel()
	<-done
	auth := good.Authorization()
	if len(auth) == 0 || !strings.HasPrefix(auth[0], "Basic ") {
		t.Fatalf("no basic auth sent: %q", auth)
	}
	for _, where := range []string{logs.String(), err.Error()} {
		if strings.Contains(where, pass) {
			t.Errorf("password leaked:\n%s", where)
		}
	}
}

func TestCutResponseIsAnError(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.Generate(50, 2)...)
	m.CutBody(3000)
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour})
	if got, err := s.Fetch(context.Background()); err == nil {
		t.Fatalf("cut body gave %d services and no error", len(got))
	}
	// Watch retries (backoff from 1 s) and must publish nothing meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	publishes := 0
	done := make(chan error)
	go func() {
		done <- s.Watch(ctx, func([]services.Service) { mu.Lock(); publishes++; mu.Unlock() })
	}()
	waitFor(t, "two refresh attempts", func() bool { return m.Requests("/v2/apps") >= 3 })
	mu.Lock()
	n := publishes
	mu.Unlock()
	if n != 0 {
		t.Errorf("published %d times from a cut response", n)
	}
	m.CutBody(0)
	waitFor(t, "publish after recovery", func() bool { mu.Lock(); defer mu.Unlock(); return publishes > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watcher runs Watch and hands out each published state.
type watcher struct {
	states chan []services.Service
	cancel context.CancelFunc
	done   chan error
}

func startWatch(t *testing.T, s *Source) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{states: make(chan []services.Service, 100), cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- s.Watch(ctx, func(svcs []services.Service) { w.states <- svcs }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			t.Errorf("Watch returned %v", err)
		}
	})
	return w
}

// next waits for a published state with n servers on the first service.
func (w *watcher) waitServers(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case svcs := <-w.states:
			if len(svcs) == 1 && len(svcs[0].Servers) == n {
				return
			}
		case <-timeout:
			t.Fatalf("no publish with %d servers", n)
		}
	}
}

func TestEventTriggersRefresh(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Minute})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	if q := m.Queries("/v2/events"); len(q) == 0 || !strings.Contains(q[0], "event_type=status_update_event") {
		t.Errorf("no server-side event filter: %q", q)
	}
	plan := `{"id":"p","steps":[{"actions":[{"action":"ScaleApplication","app":"/prod/web"}]}]}`
	for i, ev := range []struct{ typ, data string }{
		// An app the state does not know: everything is read again.
		{"status_update_event", `{"appId":"/prod/other","taskId":"t","taskStatus":"TASK_RUNNING","host":"h","ports":[1]}`},
		{"health_status_changed_event", `{"appId":"/prod/other","instanceId":"i","alive":true}`},
		// Events naming the app: it is read alone.
		{"api_post_event", `{"uri":"/v2/apps/prod/web","appDefinition":{"id":"/prod/web"}}`},
		{"app_terminated_event", `{"appId":"/prod/web"}`},
		{"deployment_step_success", `{"plan":` + plan + `,"currentStep":{"actions":[]}}`},
		{"deployment_success", `{"id":"p","plan":` + plan + `}`},
		{"deployment_failed", `{"id":"p","plan":` + plan + `}`},
		// Not asked for, and without the fields that would tell: read again.
		{"instance_changed_event", `{}`},
	} {
		hostPorts := make([]int, i+2)
		for j := range hostPorts {
			hostPorts[j] = 32000 + j
		}
		m.SetApps(webApp(hostPorts...))
		m.PushRawEvent(ev.typ, ev.data)
		// The poll is a minute away: only the event can bring this state.
		w.waitServers(t, i+2)
	}
}

func TestIgnoredEventsDoNotRefresh(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	// Let the refresh the stream's attach asked for finish.
	waitFor(t, "settled", settled(m))
	before := m.Requests("/v2/apps")
	seen := counterValue(eventsTotal.WithLabelValues("framework_message_event"))
	m.PushEvent("framework_message_event")
	waitFor(t, "event received", func() bool {
		return counterValue(eventsTotal.WithLabelValues("framework_message_event")) > seen
	})
	waitFor(t, "settled", settled(m))
	if n := m.Requests("/v2/apps"); n != before {
		t.Errorf("an ignored event caused %d refreshes", n-before)
	}
}

// settled reports true once /v2/apps saw no request for 500 ms.
func settled(m *marathontest.Server) func() bool {
	last, since := -1, time.Now()
	return func() bool {
		if n := m.Requests("/v2/apps"); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 500*time.Millisecond
	}
}

func TestBurstCoalesces(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	waitFor(t, "settled", settled(m))
	m.Delay(200 * time.Millisecond)
	before := m.Requests("/v2/apps")
	seen := counterValue(eventsTotal.WithLabelValues("status_update_event"))
	for range 50 {
		m.PushEvent("status_update_event")
	}
	waitFor(t, "burst received", func() bool {
		return counterValue(eventsTotal.WithLabelValues("status_update_event")) >= seen+50
	})
	waitFor(t, "settled", settled(m))
	// One refresh in flight plus one queued, whatever the burst size.
	if n := m.Requests("/v2/apps") - before; n < 1 || n > 2 {
		t.Errorf("50 events gave %d refreshes, want 1 or 2", n)
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	m.DropEvents()
	waitFor(t, "reconnect", func() bool { return m.Requests("/v2/events") == 2 && m.Subscribers() == 1 })
	m.SetApps(webApp(31001, 31002))
	m.PushEvent("status_update_event")
	w.waitServers(t, 2)
}

func TestEventStreamFailsOver(t *testing.T) {
	a, b := marathontest.New(t), marathontest.New(t)
	a.SetApps(webApp(31001))
	b.SetApps(webApp(31001))
	s, _ := newSource(t, Options{URLs: []string{a.URL, b.URL}, RefreshInterval: time.Hour})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "stream on a", func() bool { return a.Subscribers() == 1 })
	a.Fail(503)
	a.DropEvents()
	waitFor(t, "stream on b", func() bool { return b.Subscribers() == 1 })
	b.SetApps(webApp(31001, 31002))
	b.PushEvent("status_update_event")
	w.waitServers(t, 2)
}

func TestStalledStreamDetected(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	m.StallEvents(true)
	s, logs := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour, StreamIdleTimeout: 300 * time.Millisecond})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "stalled stream replaced", func() bool { return m.Requests("/v2/events") >= 2 })
	if !strings.Contains(logs.String(), "read timeout") {
		t.Errorf("stall not reported as a read timeout:\n%s", logs)
	}
	m.StallEvents(false)
	n := m.Requests("/v2/events")
	waitFor(t, "fresh stream", func() bool { return m.Requests("/v2/events") > n && m.Subscribers() == 1 })
	m.SetApps(webApp(31001, 31002))
	m.PushEvent("status_update_event")
	w.waitServers(t, 2)
}

func TestKeepAliveKeepsStream(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(31001))
	m.KeepAlive(100 * time.Millisecond)
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour, StreamIdleTimeout: 400 * time.Millisecond})
	w := startWatch(t, s)
	w.waitServers(t, 1)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	time.Sleep(1500 * time.Millisecond)
	if n := m.Requests("/v2/events"); n != 1 {
		t.Errorf("stream with keep-alives reconnected: %d connects", n)
	}
}

func TestReadEvents(t *testing.T) {
	in := ": keep-alive\r\n\r\n" +
		"event: event_stream_attached\r\ndata: {\"eventType\":\"event_stream_attached\"}\r\n\r\n" +
		"data: {\"timestamp\":\"x\", \"eventType\" : \"status_update_event\"}\n\n" +
		"event: deployment_info\ndata: " + strings.Repeat("x", 200000) + "\n\n" +
		"event: api_post_event\n\n"
	var got []string
	var cut []bool
	err := readEvents(strings.NewReader(in), func(typ string, data []byte, truncated bool) {
		got = append(got, typ)
		cut = append(cut, truncated)
	})
	want := "event_stream_attached status_update_event deployment_info api_post_event"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q", got)
	}
	if !slices.Equal(cut, []bool{false, false, false, false}) {
		t.Errorf("truncated %v", cut)
	}
	if err == nil {
		t.Error("end of stream is not an error for a stream that should stay open")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// malformedBody is a /v2/apps answer from the stand-in with four kinds of
// malformed app (issue 15 part 2) among good ones.
func malformedBody() []byte {
	const L = LabelPrefix
	body := string(marathontest.AppsJSON([]*marathontest.App{
		marathontest.BridgeApp("/prod/good", 10001).WithTask("10.0.0.1", 31001),
		// The original's own README example: a weight given as a number.
		marathontest.BridgeApp("/prod/weighted", 10002).WithLabel(L+"0.weight", "WEIGHT").WithTask("10.0.0.2", 31002),
		marathontest.BridgeApp("/prod/noid", 10003).WithTask("10.0.0.3", 31003),
		marathontest.BridgeApp("/prod/halftasks", 10004).WithTask("10.0.0.4", 31004).WithTask("10.0.0.5", 31005),
		marathontest.BridgeApp("/prod/float", 10005).WithLabel(L+"0.weight", "FLOAT").WithTask("10.0.0.6", 31006),
	}))
	for _, r := range [][2]string{
		{`"WEIGHT"`, `100`},
		{`"FLOAT"`, `100.0`},
		{`"id":"/prod/noid"`, `"id":{"path":"/prod/noid"}`},
		{`"host":"10.0.0.5"`, `"host":["10.0.0.5"]`},
	} {
		if !strings.Contains(body, r[0]) {
			panic("stand-in body changed: no " + r[0])
		}
		body = strings.Replace(body, r[0], r[1], 1)
	}
	return []byte(body)
}

// One malformed app, task or label takes out only itself (logged with the
// app, counted); the rest is published. A body that is not JSON still
// fails the refresh.
func TestFetchMalformedAppsSkipOnlyThemselves(t *testing.T) {
	m := marathontest.New(t)
	m.SetAppsJSON(malformedBody())
	s, logs := newSource(t, Options{URLs: []string{m.URL}})
	before := map[string]float64{}
	for _, sc := range []string{"field", "task", "app"} {
		before[sc] = counterValue(malformedTotal.WithLabelValues(sc))
	}
	got, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"good.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
		"weighted.prod 10002/tcp tcp: 10.0.0.2@10.0.0.2:31002/100/0",
		"halftasks.prod 10004/tcp tcp: 10.0.0.4@10.0.0.4:31004/500/0",
		// "100.0", as the original read it, is not a valid weight: ignored.
		"float.prod 10005/tcp tcp: 10.0.0.6@10.0.0.6:31006/500/0",
	}
	if g := summary(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	out := logs.String()
	for _, line := range []string{
		`msg="malformed app skipped" source=marathon app="apps[2] \"\""`,
		`msg="malformed tasks skipped" source=marathon app=/prod/halftasks`,
		`details="tasks[1].host: want string, got array"`,
		`msg="invalid label ignored" source=marathon app=/prod/float label=com.meltwater.proxymatic.port.0.weight value=100.0`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %s:\n%s", line, out)
		}
	}
	for sc, n := range map[string]float64{"field": 0, "task": 1, "app": 1} {
		if got := counterValue(malformedTotal.WithLabelValues(sc)) - before[sc]; got != n {
			t.Errorf("malformed{skipped=%q} counted %v, want %v", sc, got, n)
		}
	}

	for _, body := range []string{"<html>502 Bad Gateway</html>", `{"apps":[]} trailing`, `{"apps":[{"id":"/a"}`} {
		m.SetAppsJSON([]byte(body))
		if svcs, err := s.Fetch(context.Background()); err == nil {
			t.Errorf("%q: no error, %d services", body, len(svcs))
		}
	}
}

// A malformed value that takes out only itself is logged for what it is:
// an app's version of the wrong type is not a label (issue 15 part 2: the
// warning names the app and the value).
func TestMalformedFieldLoggedForWhatItIs(t *testing.T) {
	const L = LabelPrefix
	a := marathontest.BridgeApp("/prod/v", 10001).WithTask("10.0.0.1", 31001)
	a.Version = "VERSION"
	a.Tasks[0].Version = v1
	b := marathontest.BridgeApp("/prod/l", 10002).WithLabel(L+"0.mode", "MODE").WithTask("10.0.0.2", 31002)
	body := string(marathontest.AppsJSON([]*marathontest.App{a, b}))
	body = strings.Replace(body, `"version":"VERSION"`, `"version":5`, 1)
	body = strings.Replace(body, `"MODE"`, `true`, 1)
	m := marathontest.New(t)
	m.SetAppsJSON([]byte(body))
	s, logs := newSource(t, Options{URLs: []string{m.URL}})
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, line := range []string{
		`msg="malformed values ignored" source=marathon app=/prod/v malformed=1 details="version: want string, got number"`,
		`msg="malformed label values ignored" source=marathon app=/prod/l malformed=1`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %s:\n%s", line, out)
		}
	}
}

// One event of endless data lines from a hostile replica: the newline that
// joins two data lines counted against nothing, so once maxData was full
// every further line still added a byte, without bound (a replica sending
// "data:\n" forever took sync past 700 MB). What is kept of one event
// stays within maxData, newlines included, and the event reads as cut.
func TestReadEventsDataLinesBounded(t *testing.T) {
	var in strings.Builder
	in.WriteString("event: status_update_event\n")
	chunk := "data: " + strings.Repeat("x", 1<<10) + "\n"
	for range maxData/(1<<10) + 1 {
		in.WriteString(chunk)
	}
	for range 1 << 20 {
		in.WriteString("data:\n")
	}
	in.WriteString("\n")
	var size int
	var cut bool
	_ = readEvents(strings.NewReader(in.String()), func(typ string, data []byte, truncated bool) {
		size, cut = len(data), truncated
	})
	if size > maxData || !cut {
		t.Errorf("kept %d bytes of one event (bound %d), truncated %v", size, maxData, cut)
	}
}
