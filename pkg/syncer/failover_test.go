package syncer

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// checkedWeb is /prod/web with a health check and two healthy tasks.
func checkedWeb() (*marathontest.App, []*marathontest.Task) {
	a := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	return a, []*marathontest.Task{a.AddTask("10.0.0.1", 31001), a.AddTask("10.0.0.2", 31002)}
}

// TestLeaderFailoverKeepsHealthyServers (issue 15.1): after a leader
// election Marathon lists every task without health results; the servers
// last seen healthy stay in the file, a result saying a task is not alive
// drops it at once, and a new task waits for its first result.
func TestLeaderFailoverKeepsHealthyServers(t *testing.T) {
	m := marathontest.New(t)
	web, tasks := checkedWeb()
	m.SetApps(web)
	out := filepath.Join(t.TempDir(), "services.yaml")
	fw := watchFile(t, out)
	var logs logBuffer
	runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, HealthCacheSize: 100, Output: out}, &logs)
	good := fw.waitFor(t, contains("10.0.0.2"))
	waitSubscribed(t, m)
	reads := m.Requests("/v2/apps")

	m.Failover()
	deadline := time.Now().Add(hangGuard)
	for m.Requests("/v2/apps") == reads || m.Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no read after the stream dropped")
		}
		time.Sleep(time.Millisecond)
	}
	waitSubscribed(t, m)
	// The read after the failover saw no results at all: nothing changes.
	// Nor do the four events of a new task that starts without a result
	// (it waits) and is killed: the file is compared once they are applied,
	// so that a slow daemon cannot pass for a correct one.
	applied := counter(t, "proxymatic_marathon_events_applied_total")
	m.StartTask("/prod/web", false, "10.0.0.3", 31003)
	m.KillTask("/prod/web", m.App("/prod/web").Tasks[2].ID)
	for deadline := time.Now().Add(hangGuard); counter(t, "proxymatic_marathon_events_applied_total") < applied+4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the task's events were not applied")
		}
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, good) {
		t.Fatalf("the failover changed the file:\n%s", got)
	}
	m.SetHealth("/prod/web", tasks[0].ID, false)
	fw.waitFor(t, func(b []byte) bool {
		return !bytes.Contains(b, []byte("10.0.0.1")) && bytes.Contains(b, []byte("10.0.0.2"))
	})
	nt := m.StartTask("/prod/web", false, "10.0.0.4", 31004)
	m.SetHealth("/prod/web", nt.ID, true)
	fw.waitFor(t, contains("10.0.0.4"))
}

// TestRestartDuringFailoverKeepsPreviousServers: a sync started while
// Marathon has no health results yet keeps the servers the previous
// services.yaml held, and only those.
func TestRestartDuringFailoverKeepsPreviousServers(t *testing.T) {
	m := marathontest.New(t)
	web, _ := checkedWeb()
	m.SetApps(web)
	out := filepath.Join(t.TempDir(), "services.yaml")
	var logs logBuffer
	stop := runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, Output: out}, &logs)
	fw := watchFile(t, out)
	good := fw.waitFor(t, contains("10.0.0.2"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The leader changes while sync is down: no results for anyone, and a
	// task that never passed a check is listed too.
	web.AddTask("10.0.0.3", 31003)
	for _, tk := range web.Tasks {
		tk.Health = nil
	}
	m.SetApps(web)
	reads, wrote := m.Requests("/v2/apps"), value(lastWrite)
	runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, Output: out}, &logs)
	waitSubscribed(t, m)
	// Compared once the restarted daemon has read Marathon and published
	// what it compiled (a publish that changes nothing still sets the
	// last-write time), not after a guess at how long that takes.
	for deadline := time.Now().Add(hangGuard); m.Requests("/v2/apps") == reads || value(lastWrite) == wrote; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the restarted daemon did not read Marathon and publish")
		}
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, good) {
		t.Fatalf("a restart during the failover changed the file:\n%s\nwas\n%s", got, good)
	}
	// --once has no history: it compiles Marathon's answer as it is.
	if once := onceFile(t, m); bytes.Contains(once, []byte("10.0.0.1")) {
		t.Errorf("--once served a task without results:\n%s", once)
	}
}

// counter sums a counter of the default registry (the sources' metrics).
func counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestNoOpEventsWriteNothing: events that change nothing served (duplicate
// events, a task that never served ending, a task without a result yet)
// are applied and write nothing.
func TestNoOpEventsWriteNothing(t *testing.T) {
	m := marathontest.New(t)
	web, tasks := checkedWeb()
	m.SetApps(web)
	out := filepath.Join(t.TempDir(), "services.yaml")
	fw := watchFile(t, out)
	var logs logBuffer
	w0 := value(fileWrites)
	runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, Output: out}, &logs)
	fw.waitFor(t, contains("10.0.0.2"))
	waitSubscribed(t, m)
	for deadline := time.Now().Add(hangGuard); value(fileWrites) < w0+1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first write was not counted")
		}
	}
	st, _ := os.Stat(out)
	writes, applied := value(fileWrites), counter(t, "proxymatic_marathon_events_applied_total")

	m.DuplicateEvents(true)
	m.SetHealth("/prod/web", tasks[0].ID, true) // already healthy: no event at all
	tk := m.StartTask("/prod/web", false, "10.0.0.3", 31003)
	m.KillTask("/prod/web", tk.ID) // never served
	waitEvents := time.Now().Add(hangGuard)
	for counter(t, "proxymatic_marathon_events_applied_total") < applied+8 {
		if time.Now().After(waitEvents) {
			t.Fatal("the events were not applied")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if st2, _ := os.Stat(out); !os.SameFile(st, st2) || value(fileWrites) != writes {
		t.Fatalf("events that change nothing served wrote services.yaml (%v writes)\n%s", value(fileWrites)-writes, logs.String())
	}
	if n := m.Requests("/v2/apps"); n != 1 {
		t.Errorf("%d full reads", n)
	}
	if m.BytesServed("app") != 0 {
		t.Errorf("a task's events read its app")
	}

	// 20 tasks started: 60 events, of which only the health results change
	// what is served (TASK_STAGING and a TASK_RUNNING without a result yet
	// change nothing): at most 20 writes, fewer when they coalesce.
	m.DuplicateEvents(false)
	for i := range 20 {
		m.StartTask("/prod/web", true, "10.0.1."+strconv.Itoa(i+1), 31100+i)
	}
	fw.waitFor(t, contains("10.0.1.20\n"))
	for deadline := time.Now().Add(hangGuard); value(fileWrites) == writes; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write was not counted")
		}
	}
	if w := value(fileWrites) - writes; w > 20 {
		t.Errorf("20 changes gave %v writes", w)
	}
}
