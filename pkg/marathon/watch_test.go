package marathon

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// follower runs WatchChanges and keeps the state its deltas build.
type follower struct {
	mu     sync.Mutex
	svcs   map[services.Key]services.Service
	deltas []services.Delta
}

func follow(t *testing.T, s *Source) *follower {
	t.Helper()
	f := &follower{svcs: map[services.Key]services.Service{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.WatchChanges(ctx, func(d services.Delta) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if d.Full {
				clear(f.svcs)
			}
			for _, svc := range d.Services {
				f.svcs[svc.Key()] = svc
			}
			for _, k := range d.Removed {
				delete(f.svcs, k)
			}
			f.deltas = append(f.deltas, d)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchChanges returned %v", err)
		}
	})
	return f
}

func (f *follower) services() []services.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]services.Service, 0, len(f.svcs))
	for _, s := range f.svcs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b services.Service) int { return a.Key().Compare(b.Key()) })
	return out
}

func (f *follower) publishes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.deltas)
}

// wait waits until the followed state summarizes to want (lines joined).
func (f *follower) wait(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := strings.Join(summary(f.services()), "\n")
		if got == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("followed state\n%s\nwant\n%s", got, strings.Join(want, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameAsOnce checks the followed state against a one-shot compile of the
// same Marathon (one more read of /v2/apps).
func sameAsOnce(t *testing.T, f *follower, m *marathontest.Server) {
	t.Helper()
	once, _ := newSource(t, Options{URLs: []string{m.URL}})
	want, err := once.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, summary(want)...)
}

// startFollowing starts a source with an hour's poll on m, waits for its
// first state and its event stream, and returns the full reads so far.
func startFollowing(t *testing.T, m *marathontest.Server, o Options) (*Source, *follower, *testbin.Buffer) {
	t.Helper()
	o.URLs = []string{m.URL}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = time.Hour
	}
	s, logs := newSource(t, o)
	f := follow(t, s)
	waitFor(t, "first state", func() bool { return f.publishes() > 0 })
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	if o.RefreshInterval >= time.Second {
		waitFor(t, "settled", settled(m))
	}
	return s, f, logs
}

func TestEventsAppliedWithoutReadingEverything(t *testing.T) {
	m := marathontest.New(t)
	web := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	m.SetApps(web)
	_, f, logs := startFollowing(t, m, Options{})
	full := m.Requests("/v2/apps")
	if full != 1 {
		t.Errorf("%d full reads at start, want 1", full)
	}
	f.wait(t, "web.prod 10001/tcp tcp:")

	t1 := m.StartTask("/prod/web", false, "10.0.0.1", 31001)
	m.SetHealth("/prod/web", t1.ID, true)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0")
	t2 := m.StartTask("/prod/web", true, "10.0.0.2", 31002)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31002/500/0")
	m.SetHealth("/prod/web", t1.ID, false)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.2@10.0.0.2:31002/500/0")
	m.KillTask("/prod/web", t2.ID)
	f.wait(t, "web.prod 10001/tcp tcp:")
	sameAsOnce(t, f, m)
	full++

	// An app created, changed and deleted: each read alone.
	api := marathontest.BridgeApp("/prod/api", 10002)
	api.AddTask("agent-1", 31003)
	m.AddApp(api)
	f.wait(t, "web.prod 10001/tcp tcp:", "api.prod 10002/tcp tcp: agent-1@10.1.0.1:31003/500/0")
	m.UpdateApp("/prod/api", func(a *marathontest.App) { a.WithLabel(LabelPrefix+"0.weight", "9") })
	m.StartTask("/prod/api", false, "agent-2", 31004)
	// The old task keeps its version's weight; the new one takes 9.
	f.wait(t, "web.prod 10001/tcp tcp:", "api.prod 10002/tcp tcp: agent-1@10.1.0.1:31003/500/0 agent-2@10.1.0.2:31004/9/0")
	sameAsOnce(t, f, m)
	full++
	m.DeleteApp("/prod/api")
	f.wait(t, "web.prod 10001/tcp tcp:")

	if n := m.Requests("/v2/apps"); n != full {
		t.Errorf("events caused %d full reads of /v2/apps\n%s", n-full, logs)
	}
	if m.BytesServed("app") == 0 || m.BytesServed("versions") == 0 {
		t.Errorf("no app or version read: %d and %d bytes", m.BytesServed("app"), m.BytesServed("versions"))
	}
}

func TestHealthBeforeStatusAndDuplicates(t *testing.T) {
	for _, byTaskID := range []bool{false, true} {
		m := marathontest.New(t)
		m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{}))
		m.HealthBeforeStatus(true)
		m.DuplicateEvents(true)
		m.HealthEventsByTaskID(byTaskID)
		_, f, _ := startFollowing(t, m, Options{})
		full := m.Requests("/v2/apps")
		t1 := m.StartTask("/prod/web", true, "10.0.0.1", 31001)
		f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0")
		m.SetHealth("/prod/web", t1.ID, false)
		f.wait(t, "web.prod 10001/tcp tcp:")
		m.KillTask("/prod/web", t1.ID)
		m.StartTask("/prod/web", true, "10.0.0.2", 31002)
		f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.2@10.0.0.2:31002/500/0")
		sameAsOnce(t, f, m)
		if n := m.Requests("/v2/apps"); n != full+1 {
			t.Errorf("by task id %v: %d full reads", byTaskID, n-full)
		}
	}
}

func TestDeployKeepsOldTasksOnTheirVersion(t *testing.T) {
	m := marathontest.New(t)
	a := marathontest.BridgeApp("/prod/web", 10001)
	a.AddTask("10.0.0.1", 31001)
	a.AddTask("10.0.0.2", 31002)
	m.SetApps(a)
	_, f, _ := startFollowing(t, m, Options{})
	// The new version adds a health check: the old tasks, never checked
	// by it, keep serving.
	m.UpdateApp("/prod/web", func(a *marathontest.App) { a.WithHealthCheck(marathontest.HealthCheck{Path: "/health"}) })
	nt := m.StartTask("/prod/web", false, "10.0.0.3", 31003)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31002/500/0")
	m.SetHealth("/prod/web", nt.ID, true)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31002/500/0 10.0.0.3@10.0.0.3:31003/500/0")
	sameAsOnce(t, f, m)
	// A scale gives a new version but the same configuration: no version read.
	before := m.Requests("/v2/apps/prod/web/versions/" + m.App("/prod/web").Version)
	m.ScaleApp("/prod/web")
	m.StartTask("/prod/web", true, "10.0.0.4", 31004)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31002/500/0 10.0.0.3@10.0.0.3:31003/500/0 10.0.0.4@10.0.0.4:31004/500/0")
	sameAsOnce(t, f, m)
	if n := m.Requests("/v2/apps/prod/web/versions/" + m.App("/prod/web").LastConfigChangeAt); n != before {
		t.Errorf("a scale read the current configuration's version %d times", n-before)
	}
}

func TestDoubtfulEventsReadEverything(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001))
	_, f, _ := startFollowing(t, m, Options{})
	for i, ev := range []struct{ typ, data string }{
		{"status_update_event", `{"appId":"/prod/web","taskId":"x","taskStatus":"TASK_RUNNING","host":"evil\nhost","ports":[1]}`},
		{"status_update_event", `{"appId":"/prod/web","taskId":"x","taskStatus":"TASK_RUNNING","host":"h","ports":["1"]}`},
		{"status_update_event", `{"appId":"/prod/web","taskId":"x","taskStatus":"TASK_SOMETHING","host":"h","ports":[1]}`},
		{"status_update_event", `{"appId":"/prod/other","taskId":"x","taskStatus":"TASK_RUNNING","host":"h","ports":[1]}`},
		{"health_status_changed_event", `{"appId":"/prod/web","instanceId":"x"}`},
		{"api_post_event", `{"appDefinition":{"id":"/../../x"}}`},
		{"deployment_success", `{"id":"5ed4c0c5"}`},
		{"some_new_event", `{}`},
		{"status_update_event", `not json`},
	} {
		// Marathon's state changes without an event, so only a full read
		// can bring the second server in: the doubtful event must cause one.
		m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001).WithTask("10.0.0.2", 32000+i))
		n := m.Requests("/v2/apps")
		m.PushRawEvent(ev.typ, ev.data)
		waitFor(t, "a full read after "+ev.typ, func() bool { return m.Requests("/v2/apps") > n })
		f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:"+strconv.Itoa(32000+i)+"/500/0")
	}
}

func TestStreamDroppedMidwayIsReadAgain(t *testing.T) {
	m := marathontest.New(t)
	web := marathontest.BridgeApp("/prod/web", 10001)
	m.SetApps(web)
	_, f, _ := startFollowing(t, m, Options{})
	full := m.Requests("/v2/apps")
	// The stream drops after two of the three tasks' events: the third is
	// missed, and only the read after the reconnect can bring it.
	m.DropStreamAfter(4)
	m.StartTask("/prod/web", false, "10.0.0.1", 31001)
	m.StartTask("/prod/web", false, "10.0.0.2", 31002)
	m.StartTask("/prod/web", false, "10.0.0.3", 31003)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31002/500/0 10.0.0.3@10.0.0.3:31003/500/0")
	if n := m.Requests("/v2/apps"); n <= full {
		t.Error("no full read after the stream dropped")
	}
}

func TestPollReportsDrift(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001))
	_, f, logs := startFollowing(t, m, Options{RefreshInterval: 400 * time.Millisecond})
	before := counterValue(driftTotal)
	// A change without its event: the state drifts until the next poll.
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.2", 31002))
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.2@10.0.0.2:31002/500/0")
	if got := counterValue(driftTotal) - before; got != 1 {
		t.Errorf("drift counted %v apps, want 1", got)
	}
	if !strings.Contains(logs.String(), "/prod/web") || !strings.Contains(logs.String(), "differed from the full read") {
		t.Errorf("drift not logged with the app id:\n%s", logs)
	}
}

// A full read that fails is retried on the backoff, not at the rate of
// events: a /v2/apps that fails late (too large, too slow) would otherwise
// be asked for again after every event, the load on the leader the
// incremental state exists to spare. Both before any state (the first read
// failed) and with one (a later read failed), events that would each ask
// for a full read wait for the retry.
func TestFailedFullReadBacksOffWhileEventsArrive(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001))
	m.CutBody(10) // /v2/apps breaks off; the event stream works
	s, _ := newSource(t, Options{URLs: []string{m.URL}, RefreshInterval: time.Hour})
	f := follow(t, s)
	waitFor(t, "event stream", func() bool { return m.Subscribers() == 1 })
	waitFor(t, "a first read", func() bool { return m.Requests("/v2/apps") >= 1 })

	// events pushes n events of a type this code does not know (each one
	// a full read) one by one, as a busy cluster streams them.
	events := func(n int) {
		for range n {
			seen := counterValue(eventsTotal.WithLabelValues("other"))
			m.PushRawEvent("some_new_event", `{}`)
			waitFor(t, "the event", func() bool { return counterValue(eventsTotal.WithLabelValues("other")) > seen })
			time.Sleep(10 * time.Millisecond) // a pace, not a bound: without backoff each event is one read
		}
	}
	start, reads := time.Now(), m.Requests("/v2/apps")
	events(30)
	// The backoff (1 s doubling, each delay at least half its step) allows
	// a handful of retries in the time taken; one read per event is 30.
	if n := m.Requests("/v2/apps") - reads; n > 6 {
		t.Errorf("30 events after a failed first read caused %d reads of /v2/apps in %s", n, time.Since(start).Round(time.Millisecond))
	}
	m.CutBody(0)
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0")

	// With a state: a read that fails (asked for by SIGHUP) backs off too.
	m.CutBody(10)
	reads = m.Requests("/v2/apps")
	s.ReadAgain()
	waitFor(t, "the failed read", func() bool { return m.Requests("/v2/apps") > reads })
	start, reads = time.Now(), m.Requests("/v2/apps")
	events(30)
	if n := m.Requests("/v2/apps") - reads; n > 6 {
		t.Errorf("30 events after a failed read caused %d reads of /v2/apps in %s", n, time.Since(start).Round(time.Millisecond))
	}
	m.CutBody(0)
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.2", 31002))
	f.wait(t, "web.prod 10001/tcp tcp: 10.0.0.2@10.0.0.2:31002/500/0")
}
