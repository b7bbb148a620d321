package syncer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	m.StartTask("/prod/web", false, "10.0.0.3", 31003) // and a new task: it waits
	m.KillTask("/prod/web", m.App("/prod/web").Tasks[2].ID)
	time.Sleep(200 * time.Millisecond)
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
	runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, Output: out}, &logs)
	waitSubscribed(t, m)
	time.Sleep(300 * time.Millisecond)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, good) {
		t.Fatalf("a restart during the failover changed the file:\n%s\nwas\n%s", got, good)
	}
	// --once has no history: it compiles Marathon's answer as it is.
	if once := onceFile(t, m); bytes.Contains(once, []byte("10.0.0.1")) {
		t.Errorf("--once served a task without results:\n%s", once)
	}
}
