package marathon

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// stateAddrs resolves the hosts randomApps uses; "lost.example" does not.
var stateAddrs = map[string]netip.Addr{
	"10.0.0.1": netip.MustParseAddr("10.0.0.1"),
	"10.0.0.2": netip.MustParseAddr("10.0.0.2"),
	"agent-1":  netip.MustParseAddr("10.1.0.1"),
	"Agent-2":  netip.MustParseAddr("10.1.0.2"),
	"alias-1":  netip.MustParseAddr("10.1.0.1"), // the same address as agent-1
}

// randomApp is an app drawn from a small space, so that apps collide on
// service ports, move onto each other's ports, share hosts and servers.
func randomApp(r *rand.Rand, id string) *marathontest.App {
	const L = LabelPrefix
	ports := []int{10001, 10002, 10003, 53}
	var a *marathontest.App
	n := 1 + r.IntN(2)
	sp := make([]int, n)
	for i := range sp {
		sp[i] = ports[r.IntN(len(ports))]
	}
	switch r.IntN(3) {
	case 0:
		a = marathontest.BridgeApp(id, sp...)
	case 1:
		a = marathontest.HostApp(id, sp...)
	default:
		a = marathontest.ContainerApp(id, sp...)
	}
	if r.IntN(3) == 0 {
		a.WithProtocol(0, []string{"udp", "tcp,udp", "tcp"}[r.IntN(3)])
	}
	if r.IntN(3) == 0 {
		a.WithLabel(L+"0.servicePort", fmt.Sprint(ports[r.IntN(len(ports))]))
	}
	if r.IntN(3) == 0 {
		a.WithLabel(L+"0.weight", []string{"0", "7", "1000", "x"}[r.IntN(4)])
	}
	if r.IntN(3) == 0 {
		a.WithLabel(L+"0.mode", "http")
	}
	if r.IntN(4) == 0 {
		a.WithLabel(L+"0.maxconn", "100")
	}
	if r.IntN(4) == 0 {
		a.WithLabel(L+"0.timeout.client", "30")
	}
	if r.IntN(3) == 0 {
		a.WithHealthCheck(marathontest.HealthCheck{Path: []string{"/", "/health", ""}[r.IntN(3)]})
	}
	hosts := []string{"10.0.0.1", "10.0.0.2", "agent-1", "Agent-2", "alias-1", "lost.example"}
	for range r.IntN(4) {
		hp := make([]int, r.IntN(n+1))
		for i := range hp {
			hp[i] = []int{31000, 31001, 31002, 10001}[r.IntN(4)]
		}
		t := a.AddTask(hosts[r.IntN(len(hosts))], hp...)
		switch r.IntN(6) {
		case 0:
			t.Unhealthy("down")
		case 1:
			t.Health = nil
		case 2:
			t.WithState([]string{"TASK_STAGING", "TASK_KILLING"}[r.IntN(2)])
		}
	}
	return a
}

func decodeAll(t testing.TB, apps []*marathontest.App) []app {
	t.Helper()
	out, err := decodeApps(bytes.NewReader(marathontest.AppsJSON(apps)))
	if err != nil {
		t.Fatal(err)
	}
	normalize(out)
	return out
}

func testCompiler(exposeHost bool, group int) compiler {
	return compiler{exposeHost: exposeHost, groupSize: group, log: slog.New(slog.DiscardHandler), addrs: stateAddrs}
}

// liveOf builds a live state from apps and settles it.
func liveOf(c compiler, apps []app) *live {
	l := newLive(c)
	for i := range apps {
		l.setApp(&apps[i])
	}
	l.resolved(l.newHosts(), stateAddrs)
	l.settle()
	return l
}

// TestLiveCompileMatchesFullCompile: the state compiled app by app and
// merged service by service is the full compile, for random clusters.
func TestLiveCompileMatchesFullCompile(t *testing.T) {
	for seed := range uint64(150) {
		r := rand.New(rand.NewPCG(seed, 1))
		var apps []*marathontest.App
		for i := range 1 + r.IntN(8) {
			apps = append(apps, randomApp(r, fmt.Sprintf("/g%d/app%d", i%3, i)))
		}
		exposeHost, group := r.IntN(2) == 0, 1+r.IntN(3)
		decoded := decodeAll(t, apps)
		c := testCompiler(exposeHost, group)
		want := c.compile(slices.Clone(decoded))
		got := liveOf(testCompiler(exposeHost, group), decoded).services()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: live\n%s\nfull compile\n%s", seed, summary(got), summary(want))
		}
	}
}

// TestLiveIncrementalMatchesFullCompile: after any sequence of app
// changes, removals and additions, settling only what changed gives the
// full compile of the resulting cluster, and reports exactly the services
// that changed.
func TestLiveIncrementalMatchesFullCompile(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 2))
		ids := []string{"/a", "/b", "/c/x", "/c/y", "/d"}
		current := map[string]*marathontest.App{}
		l := newLive(testCompiler(false, 1))
		prev := map[services.Key]services.Service{}
		for step := range 30 {
			id := ids[r.IntN(len(ids))]
			if r.IntN(4) == 0 {
				delete(current, id)
				l.deleteApp(id)
			} else {
				a := randomApp(r, id)
				current[id] = a
				l.setApp(&decodeAll(t, []*marathontest.App{a})[0])
			}
			l.resolved(l.newHosts(), stateAddrs)
			changed, _ := l.settle()
			var all []*marathontest.App
			for _, a := range current {
				all = append(all, a)
			}
			c := testCompiler(false, 1)
			want := c.compile(decodeAll(t, all))
			got := l.services()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: live\n%s\nfull compile\n%s", seed, step, summary(got), summary(want))
			}
			var wantChanged []services.Key
			next := map[services.Key]services.Service{}
			for _, s := range want {
				next[s.Key()] = s
				if old, ok := prev[s.Key()]; !ok || !old.Equal(&s) {
					wantChanged = append(wantChanged, s.Key())
				}
			}
			for k := range prev {
				if _, ok := next[k]; !ok {
					wantChanged = append(wantChanged, k)
				}
			}
			slices.SortFunc(wantChanged, services.Key.Compare)
			if !slices.Equal(changed, wantChanged) {
				t.Fatalf("seed %d step %d: changed %v, want %v", seed, step, changed, wantChanged)
			}
			prev = next
		}
	}
}

// FuzzLiveMatchesCompile: any /v2/apps answer, put into the state app by
// app (each settled, some apps put twice or deleted and put back), compiles
// to what the full compile gives for it.
func FuzzLiveMatchesCompile(f *testing.F) {
	f.Add([]byte(`{"apps":[{"id":"/a","labels":{"com.meltwater.proxymatic.port.0.servicePort":"80"},"portDefinitions":[{"port":80,"protocol":"udp,tcp"}],"tasks":[{"id":"t1","host":"10.0.0.1","ports":[81]}]},{"id":"/b","container":{"portMappings":[{"servicePort":80,"protocol":"sctp"}]},"tasks":[{"id":"t2","host":"10.0.0.1","ports":[81]},{"id":"t3","host":"lost.example","ports":[82]}]}]}`), uint8(3))
	f.Add([]byte(`{"apps":[{"id":"/z","ports":[80,80],"tasks":[{"id":"b","host":"agent-1","ports":[1,2]},{"id":"a","host":"alias-1","ports":[1,2]}]},{"id":"/y","ports":[80],"labels":{"com.meltwater.proxymatic.port.0.mode":"http"},"healthChecks":[{"protocol":"HTTP","path":"/x"}],"tasks":[{"id":"c","host":"10.0.0.2","ports":[3],"healthCheckResults":[{"alive":true}]}]}]}`), uint8(0))
	f.Add(marathontest.AppsJSON(marathontest.Generate(4, 3)), uint8(255))
	// Ids Marathon never repeats, repeated: an app id, a task id in one app.
	f.Add([]byte(`{"apps":[{"id":"/a","ports":[80],"tasks":[{"id":"t","host":"10.0.0.2","ports":[1]},{"id":"t","host":"10.0.0.1","ports":[1]}]},{"id":"/a","ports":[80,81],"labels":{"com.meltwater.proxymatic.port.0.mode":"http"},"tasks":[{"id":"u","host":"10.0.0.2","ports":[1,2]}]},{"id":"/0","ports":[80],"tasks":[{"id":"v","host":"10.0.0.2","ports":[1]}]}]}`), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, order uint8) {
		apps, err := decodeApps(bytes.NewReader(data))
		if err != nil {
			return
		}
		normalize(apps)
		c := testCompiler(false, 1)
		want := c.compile(slices.Clone(apps))
		l := newLive(testCompiler(false, 1))
		ids := map[string]int{}
		for _, a := range apps {
			ids[a.ID]++
		}
		unique := len(ids) == len(apps)
		dups := 0
		for i := range apps {
			j := i
			if order&1 == 1 && unique {
				// Apps put in another order. (A second app with one id
				// must come after the first, as in a full read.)
				j = len(apps) - 1 - i
			}
			l.addListed(&apps[j], &dups)
			if order&2 == 2 && i > 0 && ids[apps[j].ID] == 1 {
				// An app deleted and put back in the next batch.
				l.deleteApp(apps[j].ID)
				l.resolved(l.newHosts(), stateAddrs)
				l.settle()
				l.setApp(&apps[j])
			}
			l.resolved(l.newHosts(), stateAddrs)
			l.settle()
		}
		if got := l.services(); !reflect.DeepEqual(got, want) {
			t.Fatalf("live\n%s\nfull compile\n%s", summary(got), summary(want))
		}
	})
}

// Events cannot grow the state without bound between two full reads (a
// replica streaming TASK_RUNNING for ever new task ids, or naming ever new
// apps): past the bound an event that would add more asks for a full read
// instead, and the state stays as it was.
func TestEventGrowthIsBounded(t *testing.T) {
	apps := decodeAll(t, []*marathontest.App{marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001)})
	l := liveOf(testCompiler(false, 1), apps)
	l.growthLimit = 50
	var p plan
	for i := range 200 {
		ev := event{kind: evStatus, typ: "status_update_event", appID: "/prod/web", taskID: fmt.Sprintf("web.%d", i),
			status: "TASK_RUNNING", host: "10.0.0.2", ports: []int{32000 + i}}
		l.apply(&ev, &p, nil)
	}
	if p.full != "overflow" {
		t.Errorf("200 new tasks past a bound of 50: full read %q, want overflow", p.full)
	}
	if n := len(l.apps["/prod/web"].tasks); n != 1+50 {
		t.Errorf("the app holds %d tasks, want 51 (1 read, 50 from events)", n)
	}
	// An app read alone counts too; one read again in place of itself
	// counts only what it adds.
	big := marathontest.BridgeApp("/prod/big", 10002)
	for i := range 10 {
		big.AddTask("10.0.0.3", 33000+i)
	}
	read := decodeAll(t, []*marathontest.App{big})
	if l.installApp("/prod/big", cloneApp(&read[0]), false) {
		t.Error("an app of 10 tasks was taken past the bound")
	}
	if _, ok := l.apps["/prod/big"]; ok {
		t.Error("the refused app is in the state")
	}
	web := decodeAll(t, []*marathontest.App{marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001)})
	if !l.installApp("/prod/web", cloneApp(&web[0]), false) {
		t.Error("an app read again with fewer tasks was refused")
	}
	// A full read starts a new state with its own bound.
	if fresh := newLive(testCompiler(false, 1)); fresh.growthLimit != maxEventGrowth || fresh.grown != 0 {
		t.Errorf("a new state: grown %d, limit %d", fresh.grown, fresh.growthLimit)
	}
}

// A task host that did not resolve is asked for again when its app is
// recompiled (an event), not only at the next full read; one that
// resolved is not asked for again.
func TestLiveRetriesUnresolvedHosts(t *testing.T) {
	a := marathontest.BridgeApp("/web", 10001).WithTask("node-late", 31001).WithTask("10.0.0.1", 31002)
	l := newLive(testCompiler(false, 1))
	l.setApp(&decodeAll(t, []*marathontest.App{a})[0])
	hosts := l.newHosts()
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"10.0.0.1", "node-late"}) {
		t.Fatalf("first lookup asks for %v", hosts)
	}
	l.resolved(hosts, map[string]netip.Addr{"10.0.0.1": netip.MustParseAddr("10.0.0.1")}) // node-late fails
	l.settle()
	if got := summary(l.services()); len(got) != 1 || strings.Contains(got[0], "31001") {
		t.Fatalf("served %v", got)
	}
	// An event makes the app dirty again: node-late is asked for, 10.0.0.1 is not.
	l.setApp(&decodeAll(t, []*marathontest.App{a})[0])
	if hosts := l.newHosts(); !slices.Equal(hosts, []string{"node-late"}) {
		t.Fatalf("after an event, asks for %v; want the unresolved host alone", hosts)
	}
	l.resolved([]string{"node-late"}, map[string]netip.Addr{"node-late": netip.MustParseAddr("10.0.0.9")})
	l.settle()
	if got := summary(l.services()); len(got) != 1 || !strings.Contains(got[0], "10.0.0.9") {
		t.Errorf("after the host resolves, served %v", got)
	}
}
