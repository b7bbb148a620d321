package marathon

import (
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

const (
	v0 = "2024-03-01T08:00:00.000Z"
	v1 = "2024-03-01T09:00:00.000Z"
	v2 = "2024-03-01T10:00:00.000Z"
	v3 = "2024-03-01T11:00:00.000Z"
	v4 = "2024-03-01T12:00:00.000Z"
)

// deployApps is /prod/web mid-deploy: v2 added a health check and weight
// 7 to what v1 served with weight 3; v3 only scaled it.
func deployApps(t testing.TB) (current *marathontest.App, defs map[string]*app) {
	a := marathontest.BridgeApp("/prod/web", 10001).WithLabel(LabelPrefix+"0.weight", "7").
		WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	a.Version, a.LastConfigChangeAt = v3, v2
	task := func(port int, version string, healthy bool) {
		tk := a.AddTask("10.0.0.1", port)
		tk.Version = version
		if !healthy {
			tk.Health = nil
		}
	}
	task(31001, v1, false) // old version, no checks then: serves with weight 3
	task(31002, v2, true)  // current configuration
	task(31003, v3, false) // current, not checked yet: waits
	task(31004, v0, true)  // a version Marathon no longer has: current rules
	task(31005, v4, false) // newer than the app as read: its own definition
	old := marathontest.BridgeApp("/prod/web", 10001).WithLabel(LabelPrefix+"0.weight", "3")
	old.Version = v1
	next := marathontest.BridgeApp("/prod/web", 10001).WithLabel(LabelPrefix+"0.weight", "9")
	next.Version = v4
	d := decodeAll(t, []*marathontest.App{old, next})
	return a, map[string]*app{v1: &d[0], v0: nil, v4: &d[1]}
}

func TestTasksTakeTheirVersionsRules(t *testing.T) {
	a, defs := deployApps(t)
	c := testCompiler(false, 1)
	var asked []string
	c.versions = func(id, version string) (*app, bool) {
		asked = append(asked, id+"@"+version)
		def, ok := defs[version]
		return def, ok
	}
	got := summary(c.compile(decodeAll(t, []*marathontest.App{a})))
	want := "web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/3/0 10.0.0.1@10.0.0.1:31002/7/0 10.0.0.1@10.0.0.1:31004/7/0 10.0.0.1@10.0.0.1:31005/9/0"
	if strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	if strings.Join(asked, " ") != "/prod/web@"+v0+" /prod/web@"+v1+" /prod/web@"+v4 {
		t.Errorf("asked for %v: only the versions not covered by the current configuration", asked)
	}
	// The live state compiles the same.
	l := newLive(testCompiler(false, 1))
	l.c.versions = c.versions
	d := decodeAll(t, []*marathontest.App{a})
	l.setApp(&d[0])
	if m := l.missingVersions(); len(m) != 0 {
		t.Fatalf("missing %v with every definition known", m)
	}
	l.resolved(l.newHosts(), stateAddrs)
	l.settle()
	if got := summary(l.services()); strings.Join(got, "\n") != want {
		t.Errorf("live state compiled\n%s", strings.Join(got, "\n"))
	}
}

func TestUnknownVersionsAreDeferred(t *testing.T) {
	a, _ := deployApps(t)
	c := testCompiler(false, 1)
	c.versions = func(string, string) (*app, bool) { return nil, false }
	var cm compilation
	for _, x := range decodeAll(t, []*marathontest.App{a}) {
		c.add(&cm, &x)
	}
	if len(cm.deferred) != 1 || len(cm.missing) != 3 || len(cm.apps) != 0 {
		t.Fatalf("deferred %d apps, missing %v, compiled %d", len(cm.deferred), cm.missing, len(cm.apps))
	}
}

func TestRunsCurrent(t *testing.T) {
	a := &app{Version: v3, VersionInfo: versionInfo{LastConfigChangeAt: v2}}
	for v, want := range map[string]bool{"": true, v3: true, v2: true, "2024-03-01T10:30:00.000Z": true, v1: false, v4: false} {
		if got := runsCurrent(a, &task{Version: v}); got != want {
			t.Errorf("task version %q: runsCurrent %v, want %v", v, got, want)
		}
	}
	if !runsCurrent(&app{}, &task{Version: v1}) {
		t.Error("an app without a version must take every task as current")
	}
}

func TestAppPath(t *testing.T) {
	for id, want := range map[string]string{
		"/prod/web":                    "/v2/apps/prod/web",
		"/a b/c?d#e":                   "/v2/apps/a%20b/c%3Fd%23e",
		"/":                            "",
		"prod":                         "",
		"/a//b":                        "",
		"/a/../b":                      "",
		"/a/./b":                       "",
		"/a/%2e%2e":                    "/v2/apps/a/%252e%252e",
		"/" + strings.Repeat("x", 600): "",
	} {
		got, ok := appPath(id)
		if ok != (want != "") || got != want {
			t.Errorf("appPath(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
}

// A past version's definition is part of its app: one whose labels are not
// an object (from whatever answers in Marathon's place) leaves its
// servicePort, weight and mode unknown, so its tasks must not be served
// with the defaults (README.md, "Malformed apps") — in the one-shot compile
// and in the live state alike. A malformed value that only takes out a
// field (a label of the wrong type) leaves the rest of the definition.
func TestMalformedVersionDefinition(t *testing.T) {
	def := func(labels string) *app {
		t.Helper()
		d, err := decodeAppVersion(strings.NewReader(`{"id":"/prod/web","version":"` + v1 + `","labels":` + labels +
			`,"container":{"type":"DOCKER","docker":{"network":"BRIDGE","portMappings":[{"containerPort":80,"hostPort":0,"servicePort":10001,"protocol":"tcp"}]}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name, labels, want string
	}{
		{"labels not an object", `["x"]`,
			"web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31002/7/0 10.0.0.1@10.0.0.1:31004/7/0 10.0.0.1@10.0.0.1:31005/9/0"},
		{"one label of the wrong type", `{"` + LabelPrefix + `0.weight":"3","` + LabelPrefix + `0.mode":true}`,
			"web.prod 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/3/0 10.0.0.1@10.0.0.1:31002/7/0 10.0.0.1@10.0.0.1:31004/7/0 10.0.0.1@10.0.0.1:31005/9/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, defs := deployApps(t)
			defs[v1] = def(tc.labels)
			lookup := func(_, version string) (*app, bool) {
				d, ok := defs[version]
				return d, ok
			}
			c := testCompiler(false, 1)
			c.versions = lookup
			if got := summary(c.compile(decodeAll(t, []*marathontest.App{a}))); strings.Join(got, "\n") != tc.want {
				t.Errorf("compiled\n%s\nwant\n%s", strings.Join(got, "\n"), tc.want)
			}
			l := newLive(testCompiler(false, 1))
			l.c.versions = lookup
			d := decodeAll(t, []*marathontest.App{a})
			l.setApp(&d[0])
			l.resolved(l.newHosts(), stateAddrs)
			l.settle()
			if got := summary(l.services()); strings.Join(got, "\n") != tc.want {
				t.Errorf("live state compiled\n%s\nwant\n%s", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}
