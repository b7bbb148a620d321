package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func server(addr string, weight int) services.Server {
	ap := netip.MustParseAddrPort(addr)
	return services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: weight}
}

func svc(name string, port int, mode services.Mode, check string, srvs ...services.Server) services.Service {
	s := services.Service{Name: name, Port: port, Protocol: services.TCP, Mode: mode, Servers: srvs}
	if check != "" {
		s.HealthCheck = &services.HealthCheck{Path: check}
	}
	return s
}

func TestPlanUpdate(t *testing.T) {
	p := Params{RunDir: "/run", MaxConnections: 100}
	a, b, c := server("10.0.0.1:80", 1000), server("10.0.0.2:80", 1000), server("10.0.0.3:80", 500)
	base := []services.Service{svc("web", 8080, services.ModeHTTP, "/health", a, b), svc("db", 5432, services.ModeTCP, "", c)}
	with := func(f func(s []services.Service)) []services.Service {
		s := slices.Clone(base)
		for i := range s {
			s[i].Servers = slices.Clone(s[i].Servers)
		}
		f(s)
		return s
	}
	cMax := c
	cMax.MaxConn = 9
	bHost := b
	bHost.Host = "node-2"
	for _, tc := range []struct {
		name   string
		new    []services.Service
		reload bool
		want   string
	}{
		{"same", base, false, "0 added, 0 changed, 0 removed servers in 0 services"},
		{"server order only", with(func(s []services.Service) { s[0].Servers = []services.Server{b, a} }), false, "0 added, 0 changed, 0 removed servers in 0 services"},
		{"add", with(func(s []services.Service) { s[1].Servers = append(s[1].Servers, server("10.0.0.4:80", 1)) }), false, "1 added, 0 changed, 0 removed servers in 1 services"},
		{"remove all", with(func(s []services.Service) { s[0].Servers = nil }), false, "0 added, 0 changed, 2 removed servers in 1 services"},
		{"weight", with(func(s []services.Service) { s[0].Servers[1].Weight = 10 }), false, "0 added, 1 changed, 0 removed servers in 1 services"},
		{"maxconn", with(func(s []services.Service) { s[1].Servers = []services.Server{cMax} }), false, "0 added, 1 changed, 0 removed servers in 1 services"},
		{"host renames the server", with(func(s []services.Service) { s[0].Servers[1] = bHost }), false, "1 added, 0 changed, 1 removed servers in 1 services"},
		{"new service", append(slices.Clone(base), svc("x", 9000, services.ModeTCP, "")), true, ""},
		{"removed service", base[:1], true, ""},
		{"mode", with(func(s []services.Service) { s[1].Mode = services.ModeHTTP }), true, ""},
		{"port", with(func(s []services.Service) { s[1].Port = 5433 }), true, ""},
		{"health path", with(func(s []services.Service) { s[0].HealthCheck = &services.HealthCheck{Path: "/other"} }), true, ""},
		{"timeouts", with(func(s []services.Service) { s[1].Timeouts = &services.Timeouts{Client: time.Second} }), true, ""},
		// inter and fall live on the server lines: still a reload.
		{"check interval", with(func(s []services.Service) {
			s[0].HealthCheck = &services.HealthCheck{Path: "/health", Interval: time.Second}
		}), true, ""},
		{"check failures", with(func(s []services.Service) { s[0].HealthCheck = &services.HealthCheck{Path: "/health", Failures: 9} }), true, ""},
		{"check timeout", with(func(s []services.Service) {
			s[0].HealthCheck = &services.HealthCheck{Path: "/health", Timeout: time.Second}
		}), true, ""},
	} {
		u, err := PlanUpdate(p, base, tc.new)
		switch {
		case tc.reload && !errors.Is(err, ErrNeedsReload):
			t.Errorf("%s: %v, %v; want ErrNeedsReload", tc.name, u, err)
		case !tc.reload && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.reload && u.String() != tc.want:
			t.Errorf("%s: %s; want %s", tc.name, u, tc.want)
		}
	}
	// An overriding template may render servers any way: always a reload.
	tp := p
	tp.Template = defaultTemplate
	if _, err := PlanUpdate(tp, base, base); !errors.Is(err, ErrNeedsReload) {
		t.Errorf("with a template: %v", err)
	}
	// Invalid services are refused, not planned.
	bad := with(func(s []services.Service) { s[0].Servers[0].Port = 0 })
	if _, err := PlanUpdate(p, base, bad); err == nil || errors.Is(err, ErrNeedsReload) {
		t.Errorf("invalid server: %v", err)
	}
}

// add server gets exactly the keywords of the server's line on disk.
func TestServerArgsMatchRenderedLine(t *testing.T) {
	s := server("[fd00::7]:31003", 3)
	s.MaxConn = 5
	checked := svc("w2", 2, services.ModeHTTP, "/h", s)
	checked.HealthCheck.Interval, checked.HealthCheck.Failures = 7*time.Second, 4
	v, err := newView(Params{RunDir: "/run", MaxConnections: 1}, []services.Service{svc("w", 1, services.ModeHTTP, "/h", s), checked})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{" check\n", " check inter 7000ms fall 4\n"} {
		sv := v.Services[i].Servers[0]
		line := "    server " + sv.Name() + " " + sv.serverArgs() + "\n"
		if !strings.Contains(string(writeDefault(nil, v)), line) || !strings.HasSuffix(line, want) {
			t.Fatalf("%q (want it to end in %q) not in\n%s", line, want, writeDefault(nil, v))
		}
	}
}

func TestParseServersState(t *testing.T) {
	out := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
		"2 web-18080 7 a_1 127.0.0.1 2 0 128 128 3 15 3 4 6 0 0 1 - 18091 - 0 0 - - 0\n" +
		"2 web-18080 9 fd00::7_31003 fd00::7 0 1 64 64 3 1 0 0 2 0 0 1 - 31003 - 0 0 - - 0\n\n"
	got, err := parseServersState(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerState{
		{Backend: "web-18080", Name: "a_1", ID: 7, Addr: netip.MustParseAddr("127.0.0.1"), Port: 18091, OpState: 2, Weight: 128},
		{Backend: "web-18080", Name: "fd00::7_31003", ID: 9, Addr: netip.MustParseAddr("fd00::7"), Port: 31003, AdminState: 1, Weight: 64},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got[0].Maint() || !got[1].Maint() {
		t.Error("maintenance bits misread")
	}
	if _, err := parseServersState("Unknown command\n"); err == nil {
		t.Error("an error answer parsed")
	}
}

// liveRuntime runs a real HAProxy master on the rendered config of svcs.
type liveRuntime struct {
	t      *testing.T
	m      *Master
	p      Params
	svcs   []services.Service
	port   int
	ctx    context.Context
	before *Procs
}

func startRuntime(t *testing.T, check string, srvs ...services.Server) *liveRuntime {
	t.Helper()
	bin := testbin.Require(t, "haproxy")
	runDir := t.TempDir()
	r := &liveRuntime{t: t, p: Params{RunDir: runDir, MaxConnections: 64}, port: freePort(t)}
	r.svcs = []services.Service{svc("web", r.port, services.ModeHTTP, check, srvs...)}
	if check != "" {
		// Marathon's settings ride on the server lines: HAProxy refusing
		// them in `add server` would fail Apply below.
		r.svcs[0].HealthCheck.Interval, r.svcs[0].HealthCheck.Failures = 500*time.Millisecond, 2
	}
	r.write()
	r.m = NewMaster(bin, runDir, supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	r.ctx = ctx
	if err := r.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.m.Stop(context.Background()) })
	var err error
	if r.before, err = r.m.ShowProc(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *liveRuntime) write() {
	cfg, err := Render(r.p, r.svcs)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(ConfigFile(r.p.RunDir), cfg, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// apply changes the servers at run time and writes the config to disk.
func (r *liveRuntime) apply(srvs ...services.Server) {
	r.t.Helper()
	next := slices.Clone(r.svcs)
	next[0].Servers = srvs
	u, err := PlanUpdate(r.p, r.svcs, next)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.m.Apply(r.ctx, u); err != nil {
		r.t.Fatal(err)
	}
	r.svcs = next
	r.write()
}

func (r *liveRuntime) sameWorkers() {
	r.t.Helper()
	after, err := r.m.ShowProc(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if after.MasterReloads != r.before.MasterReloads || !slices.Equal(after.Workers, r.before.Workers) {
		r.t.Fatalf("HAProxy reloaded: %+v -> %+v", r.before, after)
	}
}

func (r *liveRuntime) state() map[string]ServerState {
	r.t.Helper()
	states, err := r.m.ServerState(r.ctx, fmt.Sprintf("web-%d", r.port))
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]ServerState{}
	for _, s := range states {
		out[s.Name] = s
	}
	return out
}

// Servers added (with an HTTP check), re-weighted and removed through the
// admin socket reach the traffic with the same worker, and a reload of the
// file written afterwards serves the same servers with the same ids.
func TestLiveRuntimeApply(t *testing.T) {
	a, b := server(testbin.Backend(t, "a").String(), 1000), server(testbin.Backend(t, "b").String(), 1000)
	r := startRuntime(t, "/", a)
	waitGet(t, r.port, "a")

	r.apply(a, b)
	seen := map[string]bool{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		got, err := testbin.Get(r.port)
		if err != nil {
			t.Fatal(err)
		}
		seen[got] = true
	}
	if !seen["b"] {
		t.Fatalf("the added server took no traffic: %v", seen)
	}
	st := r.state()
	bName := fmt.Sprintf("%s_%d", b.IP, b.Port)
	if s := st[bName]; s.ID != ServerID(b) || s.OpState != 2 || s.Maint() {
		t.Fatalf("added server: %+v", s)
	}

	b.Weight = 500
	r.apply(a, b)
	if got := r.state()[bName].Weight; got != 128 {
		t.Fatalf("weight %d, want 128", got)
	}

	r.apply(b)
	for range 10 {
		if got, err := testbin.Get(r.port); err != nil || got != "b" {
			t.Fatalf("after removing a: %q %v", got, err)
		}
	}
	if _, ok := r.state()[fmt.Sprintf("%s_%d", a.IP, a.Port)]; ok {
		t.Fatal("removed server still listed")
	}
	r.sameWorkers()

	// The file on disk is what runs: a reload keeps serving b, same id and
	// weight, and the state file carried its health over.
	if err := r.m.Reload(r.ctx); err != nil {
		t.Fatal(err)
	}
	waitGet(t, r.port, "b")
	if s := r.state()[bName]; s.ID != ServerID(b) || s.Weight != 128 || len(r.state()) != 1 {
		t.Fatalf("after reload: %+v", r.state())
	}
}

// A removed server that still has a connection stays in maintenance (no new
// traffic, its connection untouched) and is deleted by a later Apply once
// the connection is gone; adding it back while it drains revives it.
func TestLiveRuntimeDrain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hold <- c
		}
	}()
	slow := server(ln.Addr().String(), 1000)
	a := server(testbin.Backend(t, "a").String(), 1000)
	r := startRuntime(t, "", slow)

	// A request parked on the slow server.
	client, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fmt.Fprintf(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	var upstream net.Conn
	select {
	case upstream = <-hold:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the slow server")
	}

	r.apply(a)
	slowName := fmt.Sprintf("%s_%d", slow.IP, slow.Port)
	if s, ok := r.state()[slowName]; !ok || !s.Maint() {
		t.Fatalf("busy removed server should drain in maintenance: %+v %v", s, ok)
	}
	waitGet(t, r.port, "a")

	// Back while draining: it serves again.
	r.apply(a, slow)
	if s := r.state()[slowName]; s.Maint() {
		t.Fatalf("re-added server still in maintenance: %+v", s)
	}
	r.apply(a)

	// The parked request completes through its old server.
	fmt.Fprint(upstream, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow")
	upstream.Close()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	body, _ := io.ReadAll(client)
	if !strings.HasSuffix(string(body), "slow") {
		t.Fatalf("parked request: %q", body)
	}
	// The next Apply deletes it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.apply(a, server(testbin.Backend(t, "c").String(), 1))
		if _, ok := r.state()[slowName]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drained server never deleted: %+v", r.state())
		}
		time.Sleep(100 * time.Millisecond)
		r.apply(a)
	}
	r.sameWorkers()
}
