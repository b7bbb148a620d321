package marathon

import (
	"net/netip"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// checked is /prod/web with an HTTP health check and three tasks; health
// sets each task's results ("up", "down", "none": no results yet).
var checked = func() *marathontest.App {
	a := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	for i := range 3 {
		a.AddTask("10.0.0.1", 31001+i)
	}
	return a
}()

func checkedApp(health ...string) *marathontest.App {
	a := *checked
	a.Tasks = nil
	for i, h := range health {
		t := *checked.Tasks[i]
		t.Health = []marathontest.HealthResult{{Alive: true}}
		switch h {
		case "down":
			t.Unhealthy("HTTP 500")
		case "none":
			t.Health = nil
		}
		a.Tasks = append(a.Tasks, &t)
	}
	return &a
}

// servedPorts compiles apps with cache hc and lists the served host ports.
func servedPorts(t *testing.T, hc *healthCache, apps ...*marathontest.App) []int {
	t.Helper()
	c := testCompiler(false, 1)
	c.health = hc
	var out []int
	for _, s := range c.compile(decodeAll(t, apps)) {
		for _, srv := range s.Servers {
			out = append(out, srv.Port)
		}
	}
	return out
}

func TestHealthCacheKeepsLastKnownHealth(t *testing.T) {
	hc := newHealthCache(0)
	if got := servedPorts(t, hc, checkedApp("up", "down", "none")); !equalInts(got, 31001) {
		t.Fatalf("first read served %v, want only the healthy task", got)
	}
	// A failover: the new leader has no results for anyone.
	if got := servedPorts(t, hc, checkedApp("none", "none", "none")); !equalInts(got, 31001) {
		t.Errorf("empty results served %v: the task last seen healthy must keep serving, the others wait", got)
	}
	// A result saying it is not alive drops it at once.
	if got := servedPorts(t, hc, checkedApp("down", "none", "none")); len(got) != 0 {
		t.Errorf("served %v after a failing result", got)
	}
	// Last seen failing, then empty: it waits.
	if got := servedPorts(t, hc, checkedApp("none", "none", "none")); len(got) != 0 {
		t.Errorf("served %v: a task last seen failing must wait for a passing result", got)
	}
	if got := servedPorts(t, hc, checkedApp("up", "up", "none")); !equalInts(got, 31001, 31002) {
		t.Errorf("served %v after passing results", got)
	}
	// Without a cache (the one-shot compile) empty results never serve.
	if got := servedPorts(t, nil, checkedApp("none", "none")); len(got) != 0 {
		t.Errorf("without a cache, empty results served %v", got)
	}
}

func TestHealthCacheIsBounded(t *testing.T) {
	hc := newHealthCache(2)
	for _, id := range []string{"a", "b", "c"} {
		hc.note(id, true)
	}
	if _, ok := hc.known("a"); ok {
		t.Error("the least recently used entry was kept beyond the bound")
	}
	if v, ok := hc.known("c"); !ok || !v {
		t.Error("the newest entry was lost")
	}
}

func TestHealthCacheSeededFromPreviousFile(t *testing.T) {
	hc := newHealthCache(0)
	hc.seed([]services.Service{
		{Name: "web.prod", Port: 10001, Protocol: services.TCP, Source: services.SourceMarathon, Servers: []services.Server{
			{IP: netip.MustParseAddr("10.0.0.1"), Port: 31001},
			{Host: "agent-2", IP: netip.MustParseAddr("10.9.9.9"), Port: 31002},
		}},
		{Name: "other", Port: 10002, Protocol: services.TCP, Source: services.SourceRegistrator, Servers: []services.Server{
			{IP: netip.MustParseAddr("10.0.0.1"), Port: 31003},
		}},
	})
	a := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{})
	a.AddTask("10.0.0.1", 31001).Health = nil // matched by address and port
	a.AddTask("Agent-2", 31002).Health = nil  // by host name and port
	a.AddTask("10.0.0.1", 31003).Health = nil // only a registrator server there
	a.AddTask("10.0.0.2", 31001).Health = nil // another host
	if got := servedPorts(t, hc, a); !equalInts(got, 31001, 31002) {
		t.Errorf("seeded compile served %v, want the two tasks the previous file named", got)
	}
	// Once read, the seed is gone but the tasks it matched are remembered.
	hc.dropSeed()
	if got := servedPorts(t, hc, a); !equalInts(got, 31001, 31002) {
		t.Errorf("after the seed, served %v", got)
	}
	// A new task on a seeded host port is another task: it waits.
	c := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{})
	c.AddTask("10.0.0.1", 31001).Health = nil
	if got := servedPorts(t, hc, c); len(got) != 0 {
		t.Errorf("a new task on a port the dropped seed named served %v", got)
	}
}

func TestInstanceOf(t *testing.T) {
	for task, want := range map[string]string{
		"prod_web.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c._app.1": "prod_web.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c",
		"prod_web.c7c311a4-b669-11e6-a48f-0ea4f4b1778c":                 "prod_web.marathon-c7c311a4-b669-11e6-a48f-0ea4f4b1778c",
		"my.app.c7c311a4":            "my.app.marathon-c7c311a4",
		"nodots":                     "nodots",
		"a.marathon-c7c311a4":        "a.marathon-c7c311a4",
		"a.instance-c7c311a4._app.2": "a.instance-c7c311a4",
	} {
		if got := instanceOf(task); got != want {
			t.Errorf("instanceOf(%q) = %q, want %q", task, got, want)
		}
	}
}

func equalInts(got []int, want ...int) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
