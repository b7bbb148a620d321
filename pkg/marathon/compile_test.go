package marathon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// fakeResolver answers from a table; anything else does not resolve.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

var testDNS = fakeResolver{
	"agent-1":             {netip.MustParseAddr("10.1.0.1")},
	"agent-2":             {netip.MustParseAddr("10.1.0.2")},
	"Agent-3.Example.COM": {netip.MustParseAddr("2001:db8::3"), netip.MustParseAddr("10.1.0.3")},
}

type compileOpts struct {
	exposeHost bool
	groupSize  int
}

// compileJSON runs the real decode → resolve → compile path on rendered
// Marathon JSON and returns the services and the log.
func compileJSON(t testing.TB, o compileOpts, body []byte) ([]services.Service, string) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	apps, err := decodeApps(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	dns := newDNSCache(testDNS, DefaultDNSTTL, log)
	c := compiler{exposeHost: o.exposeHost, groupSize: o.groupSize, log: log, addrs: dns.resolveAll(context.Background(), taskHosts(apps))}
	out := c.compile(apps)
	f := services.File{Services: out}
	if err := f.Validate(); err != nil {
		t.Fatalf("compiled services do not validate: %v", err)
	}
	return out, logs.String()
}

// summary renders services compactly: "name port/proto mode [hc] [t=c/s]: host@ip:port/weight/maxconn ...".
func summary(svcs []services.Service) []string {
	var out []string
	for _, s := range svcs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s", s.Name, s.Key(), s.Mode)
		if s.HealthCheck != nil {
			fmt.Fprintf(&b, " hc=%s", s.HealthCheck.Path)
			if hc := s.HealthCheck; hc.Interval != 0 || hc.Timeout != 0 || hc.Failures != 0 {
				fmt.Fprintf(&b, "(%s,%s,%d)", hc.Interval, hc.Timeout, hc.Failures)
			}
		}
		if s.Timeouts != nil {
			fmt.Fprintf(&b, " t=%s/%s", s.Timeouts.Client, s.Timeouts.Server)
		}
		if s.Source != services.SourceMarathon {
			fmt.Fprintf(&b, " source=%q", s.Source)
		}
		b.WriteString(":")
		for _, srv := range s.Servers {
			fmt.Fprintf(&b, " %s@%s/%d/%d", srv.Host, srv.Address(), srv.Weight, srv.MaxConn)
		}
		out = append(out, b.String())
	}
	return out
}

type mt = marathontest.App

func TestCompileRules(t *testing.T) {
	const L = LabelPrefix
	tests := []struct {
		name string
		opts compileOpts
		apps func() []*mt
		want []string
		log  []string // substrings the log must hold
	}{
		{
			name: "name reversed, dotted, lowercased; i-th service port to i-th host port",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/Product/System/Service", 10001, 10002)
				a.AddTask("10.0.0.1", 31001, 31002)
				return []*mt{a}
			},
			want: []string{
				"service.system.product 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
				"service.system.product 10002/tcp tcp: 10.0.0.1@10.0.0.1:31002/500/0",
			},
		},
		{
			name: "invalid name skips the app",
			apps: func() []*mt {
				bad := marathontest.BridgeApp("/prod/my app", 10001).WithTask("10.0.0.1", 31001)
				good := marathontest.BridgeApp("/prod/ok", 10002).WithTask("10.0.0.1", 31002)
				return []*mt{bad, good}
			},
			want: []string{"ok.prod 10002/tcp tcp: 10.0.0.1@10.0.0.1:31002/500/0"},
			log:  []string{"app id does not give a valid service name", `app="/prod/my app"`},
		},
		{
			name: "duplicate service port in one task counts once; service port 0 skipped",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/a", 10001, 10001, 0)
				a.AddTask("10.0.0.1", 31001, 31002, 31003)
				return []*mt{a}
			},
			want: []string{"a 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0"},
			log:  []string{"service port 0 skipped"},
		},
		{
			name: "all four port declarations",
			apps: func() []*mt {
				return []*mt{
					marathontest.BridgeApp("/docker", 10001).WithTask("10.0.0.1", 31001),
					marathontest.ContainerApp("/m15", 10002).WithTask("10.0.0.1", 31002),
					marathontest.HostApp("/host", 10003).WithTask("10.0.0.1", 31003),
					marathontest.LegacyApp("/legacy", 10004).WithTask("10.0.0.1", 31004),
				}
			},
			want: []string{
				"docker 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
				"m15 10002/tcp tcp: 10.0.0.1@10.0.0.1:31002/500/0",
				"host 10003/tcp tcp: 10.0.0.1@10.0.0.1:31003/500/0",
				"legacy 10004/tcp tcp: 10.0.0.1@10.0.0.1:31004/500/0",
			},
		},
		{
			name: "only running tasks; no state field counts as running; killing never",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/a", 10001)
				a.AddTask("10.0.0.1", 31001)
				a.AddTask("10.0.0.2", 31001).WithState("TASK_STAGING")
				a.AddTask("10.0.0.3", 31001).WithState("TASK_KILLING")
				a.AddTask("10.0.0.4", 31001).NoState = true
				a.AddTask("10.0.0.5", 31001).WithState("TASK_LOST")
				return []*mt{a}
			},
			want: []string{"a 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.4@10.0.0.4:31001/500/0"},
		},
		{
			name: "health: failing skipped, no result yet skipped when checks defined",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/a", 10001).WithHealthCheck(marathontest.HealthCheck{Protocol: "TCP"})
				a.AddTask("10.0.0.1", 31001)
				a.AddTask("10.0.0.2", 31001).Unhealthy("connection refused")
				a.AddTask("10.0.0.3", 31001).Health = nil
				b := marathontest.BridgeApp("/b", 10002) // no checks: no results needed
				b.AddTask("10.0.0.1", 31002)
				return []*mt{a, b}
			},
			want: []string{
				"a 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
				"b 10002/tcp tcp: 10.0.0.1@10.0.0.1:31002/500/0",
			},
			log: []string{"connection refused", "no health check result yet"},
		},
		{
			name: "weight, maxconn divided by group size (at least 1), mode http with health path, timeouts",
			opts: compileOpts{groupSize: 3},
			apps: func() []*mt {
				a := marathontest.BridgeApp("/web", 10001, 10002).
					WithLabel(L+"0.weight", "250").WithLabel(L+"0.maxconn", "100").
					WithLabel(L+"0.mode", "http").WithLabel(L+"0.timeout.client", "30").
					WithLabel(L+"0.timeout.server", "90").WithLabel(L+"1.maxconn", "2").
					WithHealthCheck(marathontest.HealthCheck{Path: "/tcp-only", PortIndex: 1}).
					WithHealthCheck(marathontest.HealthCheck{Protocol: "MESOS_HTTP", Path: "/health?full=1"})
				a.AddTask("10.0.0.1", 31001, 31002)
				return []*mt{a}
			},
			want: []string{
				"web 10001/tcp http hc=/health?full=1(1m0s,20s,3) t=30s/1m30s: 10.0.0.1@10.0.0.1:31001/250/33",
				"web 10002/tcp tcp: 10.0.0.1@10.0.0.1:31002/500/1",
			},
		},
		{
			name: "the original's app-wide timeout labels, in milliseconds; a port's own label wins",
			apps: func() []*mt {
				const S = ServiceLabelPrefix
				a := marathontest.BridgeApp("/web", 10001, 10002).
					WithLabel(S+"timeoutclient", "0030000").WithLabel(S+"timeoutserver", "1500").
					WithLabel(L+"1.timeout.client", "5")
				a.AddTask("10.0.0.1", 31001, 31002)
				zero := marathontest.BridgeApp("/zero", 10003).WithLabel(S+"timeoutclient", "0").WithTask("10.0.0.1", 31003)
				return []*mt{a, zero}
			},
			want: []string{
				"web 10001/tcp tcp t=30s/1.5s: 10.0.0.1@10.0.0.1:31001/500/0",
				"web 10002/tcp tcp t=5s/1.5s: 10.0.0.1@10.0.0.1:31002/500/0",
				"zero 10003/tcp tcp: 10.0.0.1@10.0.0.1:31003/500/0",
			},
		},
		{
			name: "canary moved by servicePort label joins the main service, main app names it",
			apps: func() []*mt {
				main := marathontest.BridgeApp("/web/main", 10001).WithLabel(L+"0.mode", "http").
					WithTask("10.0.0.1", 31001)
				canary := marathontest.BridgeApp("/web/a-canary", 10099).
					WithLabel(L+"0.servicePort", "10001").WithLabel(L+"0.weight", "10").
					WithLabel(L+"0.mode", "tcp").WithTask("10.0.0.2", 31001)
				return []*mt{main, canary}
			},
			want: []string{"main.web 10001/tcp http: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31001/10/0"},
		},
		{
			name: "apps sharing a port without labels merge; lowest app id names it; duplicate server once",
			apps: func() []*mt {
				return []*mt{
					marathontest.BridgeApp("/z", 10001).WithTask("10.0.0.1", 31001),
					marathontest.BridgeApp("/b", 10001).WithTask("10.0.0.2", 31001).WithTask("10.0.0.1", 31001),
				}
			},
			want: []string{"b 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0 10.0.0.2@10.0.0.2:31001/500/0"},
		},
		{
			name: "protocols: udp, tcp+udp; mode http only on tcp",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/dns", 53, 54).WithProtocol(0, "udp").WithProtocol(1, "tcp,udp").
					WithLabel(L+"1.mode", "http")
				a.AddTask("10.0.0.1", 31053, 31054)
				h := marathontest.HostApp("/syslog", 514).WithProtocol(0, "udp")
				h.AddTask("10.0.0.1", 31514)
				return []*mt{a, h}
			},
			want: []string{
				"dns 53/udp tcp: 10.0.0.1@10.0.0.1:31053/500/0",
				"dns 54/tcp http: 10.0.0.1@10.0.0.1:31054/500/0",
				"dns 54/udp tcp: 10.0.0.1@10.0.0.1:31054/500/0",
				"syslog 514/udp tcp: 10.0.0.1@10.0.0.1:31514/500/0",
			},
		},
		{
			// The syncer drops the whole service (pkg/syncer merge.go): the
			// compiler keeps the server so that the syncer sees it.
			name: "net=host: host port equal to service port kept for the syncer",
			apps: func() []*mt {
				a := marathontest.HostApp("/h", 10001).WithTask("10.0.0.1", 10001).WithTask("10.0.0.2", 31001)
				return []*mt{a}
			},
			want: []string{"h 10001/tcp tcp: 10.0.0.1@10.0.0.1:10001/500/0 10.0.0.2@10.0.0.2:31001/500/0"},
		},
		{
			name: "hosts resolved and lowercased; IPv4 preferred; IPv6 literal gets no host; unresolvable dropped",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/r", 10001)
				a.AddTask("agent-1", 31001)
				a.AddTask("Agent-3.Example.COM", 31001)
				a.AddTask("2001:db8::9", 31001)
				a.AddTask("gone.example.com", 31001)
				return []*mt{a}
			},
			want: []string{"r 10001/tcp tcp: agent-1@10.1.0.1:31001/500/0 agent-3.example.com@10.1.0.3:31001/500/0 @[2001:db8::9]:31001/500/0"},
			log:  []string{"task host does not resolve", "gone.example.com"},
		},
		{
			name: "task without a host port for an index serves the others",
			apps: func() []*mt {
				return []*mt{marathontest.BridgeApp("/p", 10001, 10002).WithTask("10.0.0.1", 31001)}
			},
			want: []string{
				"p 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
				"p 10002/tcp tcp:",
			},
		},
		{
			name: "health check interval, timeout and failures from Marathon; out of range or 0 left to the proxy",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/w", 10001, 10002, 10003).WithLabel(L+"0.mode", "http").
					WithLabel(L+"1.mode", "http").WithLabel(L+"2.mode", "http").
					WithHealthCheck(marathontest.HealthCheck{Path: "/h", IntervalSeconds: 20, TimeoutSeconds: 10, MaxConsecutiveFailures: 5}).
					WithHealthCheck(marathontest.HealthCheck{Path: "/never-kill", PortIndex: 1, MaxConsecutiveFailures: -1}).
					WithHealthCheck(marathontest.HealthCheck{Path: "/slow", PortIndex: 2, IntervalSeconds: 86401, TimeoutSeconds: 86400, MaxConsecutiveFailures: 1001})
				a.AddTask("10.0.0.1", 31001, 31002, 31003)
				return []*mt{a}
			},
			want: []string{
				"w 10001/tcp http hc=/h(20s,10s,5): 10.0.0.1@10.0.0.1:31001/500/0",
				"w 10002/tcp http hc=/never-kill(1m0s,20s,0): 10.0.0.1@10.0.0.1:31002/500/0",
				"w 10003/tcp http hc=/slow(0s,24h0m0s,0): 10.0.0.1@10.0.0.1:31003/500/0",
			},
			log: []string{"intervalSeconds", "maxConsecutiveFailures"},
		},
		{
			name: "servicePort label read as the original: leading zeros, 0 takes the port out",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/z", 10001, 10002, 10003).
					WithLabel(L+"0.servicePort", "020031").WithLabel(L+"1.servicePort", "0").
					WithLabel(L+"2.servicePort", "00")
				a.AddTask("10.0.0.1", 31001, 31002, 31003)
				b := marathontest.BridgeApp("/y", 10005).WithLabel(L+"0.servicePort", "0000000000000000000010006")
				b.AddTask("10.0.0.2", 31005)
				return []*mt{a, b}
			},
			want: []string{
				"y 10006/tcp tcp: 10.0.0.2@10.0.0.2:31005/500/0",
				"z 20031/tcp tcp: 10.0.0.1@10.0.0.1:31001/500/0",
			},
		},
		{
			name: "weight and maxconn read as the original: leading zeros",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/lz", 10001).WithLabel(L+"0.weight", "0250").
					WithLabel(L+"0.maxconn", "007")
				a.AddTask("10.0.0.1", 31001)
				return []*mt{a}
			},
			want: []string{"lz 10001/tcp tcp: 10.0.0.1@10.0.0.1:31001/250/7"},
		},
		{
			name: "health check path that is not valid is ignored",
			apps: func() []*mt {
				a := marathontest.BridgeApp("/w", 10001).WithLabel(L+"0.mode", "http").
					WithHealthCheck(marathontest.HealthCheck{Path: "/x;rm -rf"})
				a.AddTask("10.0.0.1", 31001)
				return []*mt{a}
			},
			want: []string{"w 10001/tcp http: 10.0.0.1@10.0.0.1:31001/500/0"},
			log:  []string{"health check path is not valid"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, logs := compileJSON(t, tt.opts, marathontest.AppsJSON(tt.apps()))
			if s := summary(got); !slices.Equal(s, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s\nlog:\n%s", strings.Join(s, "\n  "), strings.Join(tt.want, "\n  "), logs)
			}
			for _, l := range tt.log {
				if !strings.Contains(logs, l) {
					t.Errorf("log lacks %q:\n%s", l, logs)
				}
			}
		})
	}
}

// TestBadLabelsNeverReachOutput: labels are free text; any value that does
// not parse exactly is logged with app and label and has no effect.
func TestBadLabelsNeverReachOutput(t *testing.T) {
	const L = LabelPrefix
	base := func() *mt { return marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001) }
	want, _ := compileJSON(t, compileOpts{}, marathontest.AppsJSON([]*mt{base()}))
	bad := map[string][]string{
		"servicePort":    {"65536", "065536", "10002\n", " 10002", "10002;", "-1", "+1", "1e4", "0x10", "１", ""},
		"weight":         {"1001", "-1", "50 ", "5\nserver evil 1.2.3.4:1", "half", "0x10"},
		"maxconn":        {"0", "-5", "10;", "ten", "1 0"},
		"mode":           {"HTTP", "http\n", "http ", "tcp; x", "udp", "http\n  option httpchk"},
		"timeout.client": {"5s", "-1", "1.5", "86401", "3 0", "9;"},
		"timeout.server": {"\n", "30\n", "}"},
		"bogus":          {"1"},
	}
	for field, vals := range bad {
		for _, v := range vals {
			key := L + "0." + field
			got, logs := compileJSON(t, compileOpts{}, marathontest.AppsJSON([]*mt{base().WithLabel(key, v)}))
			if !slices.Equal(summary(got), summary(want)) {
				t.Errorf("label %s=%q changed output: %v", field, v, summary(got))
			}
			if !strings.Contains(logs, "invalid label ignored") || !strings.Contains(logs, "/prod/web") || !strings.Contains(logs, field) {
				t.Errorf("label %s=%q not logged with app and label:\n%s", field, v, logs)
			}
		}
	}
	for key, vals := range map[string][]string{
		ServiceLabelPrefix + "timeoutclient": {"30s", "-1", "86400001", "1.5", " 10", "10\n"},
		ServiceLabelPrefix + "timeoutserver": {"", "x"},
		ServiceLabelPrefix + "weight":        {"5"},
	} {
		for _, v := range vals {
			got, logs := compileJSON(t, compileOpts{}, marathontest.AppsJSON([]*mt{base().WithLabel(key, v)}))
			if !slices.Equal(summary(got), summary(want)) || !strings.Contains(logs, "invalid label ignored") || !strings.Contains(logs, key) {
				t.Errorf("label %s=%q: got %v, log:\n%s", key, v, summary(got), logs)
			}
		}
	}
	for _, key := range []string{L + "x.weight", L + "7.weight", L + "-1.weight", L + "01.weight", L + "0"} {
		got, logs := compileJSON(t, compileOpts{}, marathontest.AppsJSON([]*mt{base().WithLabel(key, "5")}))
		if !slices.Equal(summary(got), summary(want)) || !strings.Contains(logs, "invalid label ignored") {
			t.Errorf("label key %q: got %v, log:\n%s", key, summary(got), logs)
		}
	}
}

func TestDecodeRejectsBrokenJSON(t *testing.T) {
	body := marathontest.AppsJSON(marathontest.Generate(3, 2))
	for _, n := range []int{0, 1, 9, len(body) / 2, len(body) - 1} {
		if _, err := decodeApps(bytes.NewReader(body[:n])); err == nil {
			t.Errorf("cut at %d of %d: no error", n, len(body))
		}
	}
	for _, in := range []string{`{}`, `{"apps":{}}`, `[]`, `{"apps":[],"apps":[]}`, `{"apps":[]} x`, `{"apps":[{"id":"/a"}]`} {
		if _, err := decodeApps(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	apps, err := decodeApps(strings.NewReader(`{"before":{"x":[1,2]},"apps":[{"id":"/a"}],"after":null}`))
	if err != nil || len(apps) != 1 || apps[0].ID != "/a" {
		t.Errorf("other keys around apps: %v %v", apps, err)
	}
}

// TestDuplicateServersCountOnce: a service keeps one server per address
// whether its duplicates come from the same app or from another app moved
// onto it, below and above the size where the group switches from scanning
// to a map. The first app (by id) gives the server its weight.
func TestDuplicateServersCountOnce(t *testing.T) {
	const L = LabelPrefix
	for _, n := range []int{3, seenScan, seenScan + 1, 3 * seenScan} {
		a := marathontest.BridgeApp("/dup/a", 10050).WithLabel(L+"0.weight", "7")
		b := marathontest.BridgeApp("/dup/b", 10051).WithLabel(L+"0.servicePort", "10050").WithLabel(L+"0.weight", "9")
		for i := range n {
			host := fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
			a.WithTask(host, 31000).WithTask(host, 31000) // twice in one app
			b.WithTask(host, 31000)                       // and again in another
		}
		b.WithTask("10.9.9.9", 31000) // only b has this one
		out, _ := compileJSON(t, compileOpts{}, marathontest.AppsJSON([]*marathontest.App{b, a}))
		if len(out) != 1 {
			t.Fatalf("n=%d: %d services, want 1: %v", n, len(out), summary(out))
		}
		srvs := out[0].Servers
		if len(srvs) != n+1 {
			t.Fatalf("n=%d: %d servers, want %d: %v", n, len(srvs), n+1, summary(out))
		}
		for _, s := range srvs {
			want := 7
			if s.IP.String() == "10.9.9.9" {
				want = 9
			}
			if s.Weight != want {
				t.Fatalf("n=%d: server %s weight %d, want %d", n, s.Address(), s.Weight, want)
			}
		}
	}
}

// Groups and their owners are settled as apps arrive; whatever order
// Marathon lists the apps in, the services must come out the same: names and
// modes from the owner (own port over a moved one, then the lowest id),
// duplicate servers from the lowest id.
func TestCompileIgnoresAppOrder(t *testing.T) {
	const L = LabelPrefix
	apps := []*mt{
		marathontest.BridgeApp("/web/main", 10001).WithLabel(L+"0.mode", "http").
			WithTask("10.0.0.1", 31000).WithTask("10.0.0.2", 31001),
		marathontest.BridgeApp("/web/canary", 10099).WithLabel(L+"0.servicePort", "10001").
			WithLabel(L+"0.weight", "10").WithTask("10.0.0.3", 31002).WithTask("10.0.0.1", 31000),
		marathontest.BridgeApp("/b/second", 10002).WithLabel(L+"0.weight", "9").WithTask("10.0.1.1", 32000),
		marathontest.BridgeApp("/a/first", 10002).WithLabel(L+"0.weight", "3").
			WithLabel(L+"0.mode", "http").WithTask("10.0.1.1", 32000).WithTask("10.0.1.2", 32001),
	}
	want, _ := compileJSON(t, compileOpts{}, marathontest.AppsJSON(apps))
	order := []int{0, 1, 2, 3}
	var permute func(k int)
	permute = func(k int) {
		if k == len(order) {
			var list []*mt
			for _, i := range order {
				list = append(list, apps[i])
			}
			got, _ := compileJSON(t, compileOpts{}, marathontest.AppsJSON(list))
			if !slices.Equal(summary(got), summary(want)) {
				t.Fatalf("apps in order %v:\n%s\nwant\n%s", order, strings.Join(summary(got), "\n"), strings.Join(summary(want), "\n"))
			}
			return
		}
		for i := k; i < len(order); i++ {
			order[k], order[i] = order[i], order[k]
			permute(k + 1)
			order[k], order[i] = order[i], order[k]
		}
	}
	permute(0)
	if s := strings.Join(summary(want), "\n"); !strings.Contains(s, "main.web 10001/tcp http") || !strings.Contains(s, "first.a 10002/tcp http") {
		t.Fatalf("owners are not the expected apps:\n%s", s)
	}
}

// Addresses that are never a service (0.0.0.0, link-local such as a cloud
// metadata endpoint, broadcast, multicast) are dropped with a warning that
// names the app; the app's other servers are kept.
func TestNeverServiceAddressesDropped(t *testing.T) {
	apps := []*mt{
		marathontest.BridgeApp("/shop/web", 10001).
			WithTask("agent-1", 31001).
			WithTask("169.254.169.254", 31002).
			WithTask("0.0.0.0", 31003).
			WithTask("224.0.0.1", 31004).
			WithTask("255.255.255.255", 31005),
	}
	got, logs := compileJSON(t, compileOpts{}, marathontest.AppsJSON(apps))
	want := []string{"web.shop 10001/tcp tcp: agent-1@10.1.0.1:31001/500/0"}
	if !slices.Equal(summary(got), want) {
		t.Errorf("got %q, want %q", summary(got), want)
	}
	for _, ip := range []string{"169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255"} {
		if !strings.Contains(logs, "never a service") || !strings.Contains(logs, "app=/shop/web host="+ip) {
			t.Errorf("no warning naming the app for %s:\n%s", ip, logs)
		}
	}
	// With link-local allowed, the metadata address is kept, the others not.
	services.AllowLinkLocal(true)
	defer services.AllowLinkLocal(false)
	got, _ = compileJSON(t, compileOpts{}, marathontest.AppsJSON(apps))
	if s := summary(got); len(s) != 1 || !strings.Contains(s[0], "169.254.169.254:31002") || strings.Contains(s[0], "0.0.0.0") {
		t.Errorf("with link-local allowed: %q", s)
	}
}

// Ids and hosts are lowered as ASCII only: a Kelvin sign never becomes 'k'.
func TestASCIIOnlyLowering(t *testing.T) {
	apps := []*mt{
		marathontest.BridgeApp("/\u212Aube", 10001).WithTask("agent-1", 31001),
		marathontest.BridgeApp("/Shop/Web", 10002).WithTask("agent-1", 31001),
	}
	got, logs := compileJSON(t, compileOpts{}, marathontest.AppsJSON(apps))
	want := []string{"web.shop 10002/tcp tcp: agent-1@10.1.0.1:31001/500/0"}
	if !slices.Equal(summary(got), want) {
		t.Errorf("got %q, want %q\n%s", summary(got), want, logs)
	}
}

// A task host whose DNS answer holds the unspecified address beside a real
// one is served on the real one: the address is chosen as registrator's
// host names have theirs chosen (resolve.Pick), lowest IPv4 first, never
// 0.0.0.0 or ::.
func TestTaskHostAnswerSkipsUnspecified(t *testing.T) {
	r := fakeResolver{
		"agent-z": {netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.1.0.9")},
		"agent-6": {netip.MustParseAddr("::"), netip.MustParseAddr("2001:db8::6")},
	}
	dns := newDNSCache(r, DefaultDNSTTL, slog.New(slog.DiscardHandler))
	got := dns.resolveAll(context.Background(), []string{"agent-z", "agent-6"})
	if got["agent-z"] != netip.MustParseAddr("10.1.0.9") || got["agent-6"] != netip.MustParseAddr("2001:db8::6") {
		t.Errorf("resolved %v, want agent-z 10.1.0.9 and agent-6 2001:db8::6", got)
	}
}
