package registrator

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
)

// waitLimit bounds every wait for a state: a test that reaches it has failed
// to see the state at all, it is not a performance limit.
const waitLimit = 20 * time.Second

// store writes registrations to one of etcd's keyspaces.
type store interface {
	scheme() string
	put(t testing.TB, key, value string)
	del(t testing.TB, key string)
	// refresh re-writes a key with its current value, as registrator's TTL
	// refresh does.
	refresh(t testing.TB, key, value string)
	// putAsync is put for goroutines (no t).
	putAsync(key, value string) error
}

type v2Store struct{ e *etcdtest.Etcd }

func (s v2Store) scheme() string                      { return "etcd" }
func (s v2Store) put(t testing.TB, key, value string) { s.e.V2Put(t, key, value) }
func (s v2Store) del(t testing.TB, key string)        { s.e.V2Delete(t, key, false) }
func (s v2Store) putAsync(key, value string) error {
	_, err := s.e.V2Do("PUT", key, url.Values{"value": {value}})
	return err
}
func (s v2Store) refresh(t testing.TB, key, value string) {
	t.Helper()
	if _, err := s.e.V2Do("PUT", key, url.Values{"value": {value}, "ttl": {"120"}}); err != nil {
		t.Fatal(err)
	}
}

type v3Store struct{ e *etcdtest.Etcd }

func (s v3Store) scheme() string                          { return "etcd3" }
func (s v3Store) put(t testing.TB, key, value string)     { s.e.Put(t, key, value) }
func (s v3Store) del(t testing.TB, key string)            { s.e.Delete(t, key) }
func (s v3Store) refresh(t testing.TB, key, value string) { s.e.Put(t, key, value) }
func (s v3Store) putAsync(key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.e.Client().Put(ctx, key, value)
	return err
}

// recorder collects what Watch publishes.
type recorder struct {
	mu     sync.Mutex
	states [][]services.Service
	times  []time.Time
	notify chan struct{}
}

func (r *recorder) publish(s []services.Service) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.times = append(r.times, time.Now())
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}

// waitFor waits until the latest published state satisfies ok and returns
// it with the time it was published.
func (r *recorder) waitFor(t testing.TB, what string, ok func([]services.Service) bool) ([]services.Service, time.Time) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		if n := len(r.states); n > 0 && ok(r.states[n-1]) {
			s, at := r.states[n-1], r.times[n-1]
			r.mu.Unlock()
			return s, at
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			var last []services.Service
			if n := len(r.states); n > 0 {
				last = r.states[n-1]
			}
			t.Fatalf("no published state with %s after %s (%d publishes, last %s)", what, waitLimit, len(r.states), render(last))
		}
	}
}

type harness struct {
	src  *Source
	rec  *recorder
	logs *testbin.Buffer
}

func newSource(t testing.TB, opts Options) (*Source, *testbin.Buffer) {
	t.Helper()
	logs := &testbin.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 200 * time.Millisecond
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = time.Second
	}
	src, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", logs.String())
		}
	})
	return src, logs
}

// watch starts Watch until the test ends and checks it returns nil.
func watch(t testing.TB, src *Source) *recorder {
	t.Helper()
	rec := &recorder{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, rec.publish) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v after cancel", err)
		}
	})
	return rec
}

func start(t testing.TB, opts Options) harness {
	t.Helper()
	src, logs := newSource(t, opts)
	return harness{src: src, rec: watch(t, src), logs: logs}
}

// render prints a state compactly for failure messages.
func render(ss []services.Service) string {
	var parts []string
	for _, s := range ss {
		var srvs []string
		for _, v := range s.Servers {
			srvs = append(srvs, v.Host+"="+v.Address())
		}
		parts = append(parts, fmt.Sprintf("%s@%s[%s]", s.Name, s.Key(), strings.Join(srvs, ",")))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func servers(ss []services.Service) int {
	n := 0
	for _, s := range ss {
		n += len(s.Servers)
	}
	return n
}

func hasRender(want string) func([]services.Service) bool {
	return func(ss []services.Service) bool { return render(ss) == want }
}

func TestV2(t *testing.T) {
	e := etcdtest.Start(t)
	st := v2Store{e}
	runSuite(t, e, st)
	t.Run("IndexCleared", func(t *testing.T) {
		prefix := "/cleared"
		u := "etcd://" + e.Endpoint + prefix
		src, _ := newSource(t, Options{URL: u})
		var once sync.Once
		// Between the read and the watch, more than etcd v2's 1000-event
		// history is written elsewhere: the watch's waitIndex is then gone.
		src.afterList = func() {
			once.Do(func() {
				// This runs on the source's goroutine: report, never t.Fatal.
				if err := st.putAsync(prefix+"/late/h:late:80", "10.9.0.1:1"); err != nil {
					t.Error(err)
				}
				if err := writeMany(st, "/noise", 1100, "10.0.0.1:1"); err != nil {
					t.Error(err)
				}
			})
		}
		before := value(rereads.WithLabelValues(e.Endpoint))
		rec := watch(t, src)
		rec.waitFor(t, "the key written before the history was cleared", hasRender("{late@80/tcp[h=10.9.0.1:1]}"))
		if got := value(rereads.WithLabelValues(e.Endpoint)) - before; got < 1 {
			t.Errorf("rereads went up by %v, want a full re-read after errorCode 401", got)
		}
		st.put(t, prefix+"/late/h:late2:80", "10.9.0.2:1")
		rec.waitFor(t, "a change after the re-read", func(ss []services.Service) bool { return servers(ss) == 2 })
	})
	restartSuite(t, e, st)
}

func TestV3(t *testing.T) {
	e := etcdtest.Start(t)
	st := v3Store{e}
	runSuite(t, e, st)
	t.Run("Compaction", func(t *testing.T) {
		prefix := "/compacted"
		src, _ := newSource(t, Options{URL: "etcd3://" + e.Endpoint + prefix})
		var once sync.Once
		src.afterList = func() {
			once.Do(func() {
				// This runs on the source's goroutine: report, never t.Fatal.
				if err := st.putAsync(prefix+"/late/h:late:80", "10.9.0.1:1"); err != nil {
					t.Error(err)
				}
				// A later write, so the compaction revision is past the one the
				// watch asks for (compacting exactly at it would still allow it).
				if err := st.putAsync("/noise/after", "x"); err != nil {
					t.Error(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r, err := e.Client().Get(ctx, "x")
				if err == nil {
					_, err = e.Client().Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical())
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
		before := value(rereads.WithLabelValues(e.Endpoint))
		rec := watch(t, src)
		rec.waitFor(t, "the key written before the compaction", hasRender("{late@80/tcp[h=10.9.0.1:1]}"))
		if got := value(rereads.WithLabelValues(e.Endpoint)) - before; got < 1 {
			t.Errorf("rereads went up by %v, want a full re-read after the compaction", got)
		}
		st.put(t, prefix+"/late/h:late2:80", "10.9.0.2:1")
		rec.waitFor(t, "a change after the re-read", func(ss []services.Service) bool { return servers(ss) == 2 })
	})
	t.Run("Failover", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", etcdtest.FreePort(t))
		st.put(t, "/failover/web/h:web:80", "10.0.0.1:1")
		before := value(failures.WithLabelValues(dead))
		h := start(t, Options{URL: "etcd3://" + dead + "," + e.Endpoint + "/failover", RequestTimeout: 500 * time.Millisecond})
		h.rec.waitFor(t, "the state read through the second endpoint", hasRender("{web@80/tcp[h=10.0.0.1:1]}"))
		if value(failures.WithLabelValues(dead)) <= before {
			t.Error("no failure counted for the dead first endpoint")
		}
	})
	restartSuite(t, e, st)
}

// runSuite holds the cases both APIs share; each uses its own prefix on the
// one etcd of its test.
func runSuite(t *testing.T, e *etcdtest.Etcd, st store) {
	url := func(prefix string) string { return st.scheme() + "://" + e.Endpoint + prefix }

	t.Run("Live", func(t *testing.T) {
		prefix := "/live"
		src, _ := newSource(t, Options{URL: url(prefix)})
		// A prefix that does not exist yet is an empty state.
		if ss, err := src.Fetch(context.Background()); err != nil || len(ss) != 0 {
			t.Fatalf("Fetch of a missing prefix = %v, %v; want empty, nil", ss, err)
		}
		rec := watch(t, src)
		rec.waitFor(t, "the first (empty) state", func(ss []services.Service) bool { return len(ss) == 0 })

		var delays []time.Duration
		for i := 1; i <= 10; i++ {
			put := time.Now()
			st.put(t, fmt.Sprintf("%s/web/host%d:web_%d:80", prefix, i, i), fmt.Sprintf("10.1.0.%d:31000", i))
			_, at := rec.waitFor(t, fmt.Sprintf("%d servers", i), func(ss []services.Service) bool { return servers(ss) == i })
			delays = append(delays, at.Sub(put))
		}
		slices.Sort(delays)
		t.Logf("%s put -> publish delay over %d changes: min %s, median %s, max %s (coalesce window %s)",
			st.scheme(), len(delays), delays[0], delays[len(delays)/2], delays[len(delays)-1], defaultCoalesce)

		st.del(t, prefix+"/web/host1:web_1:80")
		rec.waitFor(t, "the deleted server gone", func(ss []services.Service) bool { return servers(ss) == 9 })
		for i := 2; i <= 10; i++ {
			st.del(t, fmt.Sprintf("%s/web/host%d:web_%d:80", prefix, i, i))
		}
		rec.waitFor(t, "an empty state again", func(ss []services.Service) bool { return len(ss) == 0 })
	})

	t.Run("MalformedAndInjection", func(t *testing.T) {
		prefix := "/mixed"
		good := map[string]string{
			"/web/h1:web_1:80":        "10.2.0.1:31000",
			"/web/h2:web_2:80":        "[2001:db8::2]:31000",
			"/web/h1:web_1:443":       "10.2.0.1:31443", // same name, second port
			"/dns/h1:dns:53:udp":      "10.2.0.1:31053",
			"/api@9000/H1.Corp:api:8": "10.2.0.3:31008", // @port override, hostname lowercased
			"/zzz/h9:zzz:80":          "10.2.0.9:1",     // merged into port 80's "web"
		}
		bad := map[string]string{
			"/web\nbackend evil/h:c:81": "10.2.0.1:1",
			"/web evil/h:c:82":          "10.2.0.1:1",
			"/web;evil/h:c:83":          "10.2.0.1:1",
			"/web{evil/h:c:84":          "10.2.0.1:1",
			"/W\u00e9b/h:c:85":          "10.2.0.1:1",
			"/web/h:c:86":               "10.2.0.1:86\n  server evil 6.6.6.6:1",
			"/web/h:c:87":               "not-an-address",
			"/web/h:c:notaport":         "10.2.0.1:1",
			"/web/justonefield":         "10.2.0.1:1",
			"/web@70000/h:c:88":         "10.2.0.1:1",
		}
		for k, v := range good {
			st.put(t, prefix+k, v)
		}
		for k, v := range bad {
			st.put(t, prefix+k, v)
		}
		want := "{dns@53/udp[h1=10.2.0.1:31053] web@80/tcp[h1=10.2.0.1:31000,h9=10.2.0.9:1,h2=[2001:db8::2]:31000] web@443/tcp[h1=10.2.0.1:31443] api@9000/tcp[h1.corp=10.2.0.3:31008]}"
		src, logs := newSource(t, Options{URL: url(prefix)})
		ss, err := src.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := render(ss); got != want {
			t.Errorf("Fetch = %s\nwant    %s", got, want)
		}
		if err := (&services.File{Services: ss}).Validate(); err != nil {
			t.Errorf("Fetch returned services the contract rejects: %v", err)
		}
		if n := strings.Count(logs.String(), "skipping key"); n != len(bad) {
			t.Errorf("logged %d skipped keys, want %d:\n%s", n, len(bad), logs.String())
		}
		if !strings.Contains(logs.String(), "merged under the lowest name") {
			t.Error("the merge of web and zzz on one port was not logged")
		}
		rec := watch(t, src)
		rec.waitFor(t, "the valid registrations only", hasRender(want))
		// A bad key written while watching is skipped too, and the rest stays.
		st.put(t, prefix+"/x;y/h:c:99", "10.2.0.1:1")
		st.put(t, prefix+"/late/h:late:99", "10.2.0.7:1")
		rec.waitFor(t, "the valid late key", func(ss []services.Service) bool { return strings.Contains(render(ss), "late@99/tcp") })
	})

	t.Run("HostNames", func(t *testing.T) {
		// Values naming a host, as the original resolved them: localhost
		// resolves (the IPv4 loopback is preferred), a name under .invalid
		// never does and leaves its server out, the rest stays.
		prefix := "/names"
		st.put(t, prefix+"/web/h1:web_1:80", "localhost:31001")
		st.put(t, prefix+"/web/h2:web_2:80", "no-such-host.invalid:31002")
		st.put(t, prefix+"/web/h3:web_3:80", "10.4.0.3:31003")
		src, logs := newSource(t, Options{URL: url(prefix)})
		want := "{web@80/tcp[h3=10.4.0.3:31003,h1=127.0.0.1:31001]}"
		ss, err := src.Fetch(context.Background())
		if err != nil || render(ss) != want {
			t.Fatalf("Fetch = %s, %v; want %s", render(ss), err, want)
		}
		if !strings.Contains(logs.String(), "no-such-host.invalid") {
			t.Errorf("the unresolvable name is not logged:\n%s", logs.String())
		}
		rec := watch(t, src)
		rec.waitFor(t, "localhost resolved", hasRender(want))
		// The next change resolves again: a key moved to a name.
		st.put(t, prefix+"/web/h3:web_3:80", "LocalHost.:31003")
		rec.waitFor(t, "the changed key resolved", hasRender("{web@80/tcp[h1=127.0.0.1:31001,h3=127.0.0.1:31003]}"))
	})

	t.Run("TTLRefreshDoesNotPublish", func(t *testing.T) {
		prefix := "/ttl"
		keys := map[string]string{}
		for i := 1; i <= 20; i++ {
			keys[fmt.Sprintf("%s/web/h%d:web:80", prefix, i)] = fmt.Sprintf("10.3.0.%d:31000", i)
		}
		for k, v := range keys {
			st.put(t, k, v)
		}
		h := start(t, Options{URL: url(prefix)})
		h.rec.waitFor(t, "20 servers", func(ss []services.Service) bool { return servers(ss) == 20 })
		base := h.rec.count()
		events := value(watchEvents.WithLabelValues(e.Endpoint))
		for k, v := range keys {
			st.refresh(t, k, v)
		}
		// Once the watch has delivered every refresh, give the coalescing
		// window ample time to (wrongly) publish.
		deadline := time.Now().Add(waitLimit)
		for value(watchEvents.WithLabelValues(e.Endpoint)) < events+20 {
			if time.Now().After(deadline) {
				t.Fatal("the watch never delivered the refreshes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(5 * defaultCoalesce)
		if got := h.rec.count(); got != base {
			t.Errorf("re-writing 20 unchanged keys published %d times, want 0", got-base)
		}
		st.put(t, prefix+"/web/h21:web:80", "10.3.0.21:31000")
		h.rec.waitFor(t, "21 servers", func(ss []services.Service) bool { return servers(ss) == 21 })
		if got := h.rec.count(); got != base+1 {
			t.Errorf("one real change after the refreshes published %d times, want 1", got-base)
		}
	})

	t.Run("BurstIsCoalesced", func(t *testing.T) {
		prefix := "/burst"
		const n = 300
		h := start(t, Options{URL: url(prefix)})
		h.rec.waitFor(t, "the first (empty) state", func(ss []services.Service) bool { return len(ss) == 0 })
		base := h.rec.count()
		began := time.Now()
		if err := writeMany(st, prefix+"/app", n, ""); err != nil {
			t.Fatal(err)
		}
		took := time.Since(began)
		h.rec.waitFor(t, fmt.Sprintf("%d servers", n), func(ss []services.Service) bool { return servers(ss) == n })
		pubs := h.rec.count() - base
		t.Logf("%s: %d registrations written in %s reached the daemon in %d publishes", st.scheme(), n, took.Round(time.Millisecond), pubs)
		if pubs > n/10 {
			t.Errorf("%d registrations caused %d publishes, want them coalesced (at most %d)", n, pubs, n/10)
		}
	})
}

// restartSuite kills etcd under a live watch: the last state is kept (no
// publish), the source reconnects once etcd is back, and later changes arrive.
func restartSuite(t *testing.T, e *etcdtest.Etcd, st store) {
	t.Run("EtcdRestart", func(t *testing.T) {
		prefix := "/restart"
		st.put(t, prefix+"/web/h1:web:80", "10.4.0.1:1")
		h := start(t, Options{URL: st.scheme() + "://" + e.Endpoint + prefix})
		h.rec.waitFor(t, "the first state", hasRender("{web@80/tcp[h1=10.4.0.1:1]}"))
		base := h.rec.count()
		fails := value(failures.WithLabelValues(e.Endpoint))

		e.Stop()
		deadline := time.Now().Add(waitLimit)
		for value(failures.WithLabelValues(e.Endpoint)) < fails+2 {
			if time.Now().After(deadline) {
				t.Fatal("the outage was never noticed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := h.rec.count(); got != base {
			t.Fatalf("the outage published %d states, want none (keep the last good state)", got-base)
		}
		down := time.Now()
		e.Restart()
		restarted := time.Now()
		st.put(t, prefix+"/web/h2:web:80", "10.4.0.2:1")
		_, at := h.rec.waitFor(t, "the change made after the restart", hasRender("{web@80/tcp[h1=10.4.0.1:1,h2=10.4.0.2:1]}"))
		t.Logf("%s: etcd down %s; first change after restart published %s after etcd was healthy",
			st.scheme(), restarted.Sub(down).Round(time.Millisecond), at.Sub(restarted).Round(time.Millisecond))
		if got := h.rec.count(); got != base+1 {
			t.Errorf("outage + recovery + one change published %d states, want 1 (the re-read of an unchanged state must not publish)", got-base)
		}
		if !strings.Contains(h.logs.String(), "keeping the last state") {
			t.Error("the outage was not logged")
		}
	})
}

// writeMany writes n keys below prefix from 16 goroutines.
func writeMany(st store, prefix string, n int, value string) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				v := value
				if v == "" {
					v = fmt.Sprintf("10.5.%d.%d:31000", i/250, i%250+1)
				}
				if err := st.putAsync(fmt.Sprintf("%s/h%d:c%d:80", prefix, i, i), v); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// value reads a counter (prometheus/testutil would need another module).
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
