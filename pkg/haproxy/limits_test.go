package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func TestMaxConnsCappedByFDLimit(t *testing.T) {
	for _, c := range []struct {
		fd, maxConn, listeners, global, perListen int
	}{
		{0, 8192, 10, 16384, 8192},              // no cap
		{20000, 8192, 10, 9867, 8192},           // (20000-10-256)/2
		{20000, 4096, 10, 8192, 4096},           // fits: untouched
		{2000, 4096, 4, 870, 870},               // each listen capped to the global one
		{1 << 20, 100000, 1000, 200000, 100000}, // a big limit does not cap
	} {
		p := Params{RunDir: "/run", MaxConnections: c.maxConn, FDLimit: c.fd}
		g, l, err := p.maxConns(c.listeners)
		if err != nil || g != c.global || l != c.perListen {
			t.Errorf("fd %d maxconn %d listeners %d: global %d listen %d (%v); want %d, %d", c.fd, c.maxConn, c.listeners, g, l, err, c.global, c.perListen)
		}
	}
	p := Params{RunDir: "/run", MaxConnections: 10, FDLimit: 200}
	if _, _, err := p.maxConns(3); err == nil {
		t.Error("an fd limit below the reserve rendered a config")
	}
}

func TestRenderRefusesBadUser(t *testing.T) {
	for _, u := range []string{"root\n    daemon", "a b", "Haproxy", "../x"} {
		if _, err := Render(Params{RunDir: "/run", MaxConnections: 1, User: u}, nil); err == nil {
			t.Errorf("user %q rendered", u)
		}
	}
}

// The default --max-connections 8192 asks for more descriptors than this
// machine's hard limit (20000) allows uncapped; the capped config starts a
// real HAProxy (which `haproxy -c` alone would not prove), and as root its
// workers run as the haproxy user, serving and reloading with the state
// file.
func TestLiveFDLimitAndUser(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < 20000 {
		testbin.Missing(t, "hard fd limit %d is below 20000 (ulimit -Hn)", rl.Max)
	}
	// Children inherit the soft limit; HAProxy raises it up to the hard one.
	p := Params{MaxConnections: 8192, FDLimit: 20000}
	asUser := false
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("haproxy"); err == nil {
			p.User, p.Group, asUser = "haproxy", "haproxy", true
		}
	}
	runDir := t.TempDir()
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.RunDir = runDir
	port := freePort(t)
	ap := testbin.Backend(t, "a")
	svcs := []services.Service{{Name: "web", Port: port, Protocol: services.TCP, Mode: services.ModeHTTP,
		HealthCheck: &services.HealthCheck{Path: "/"},
		Servers:     []services.Server{{IP: ap.Addr(), Port: int(ap.Port()), Weight: 1000}}}}
	cfg, err := Render(p, svcs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "\n    maxconn 9870\n") || !strings.Contains(string(cfg), "\n    maxconn 8192\n") {
		t.Fatalf("maxconn not capped as expected:\n%s", cfg)
	}
	if err := os.WriteFile(ConfigFile(runDir), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	m := NewMaster(bin, runDir, supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(context.Background())
	waitGet(t, port, "a")
	// A reload saves the state file and the new worker starts from it.
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	waitGet(t, port, "a")
	procs, err := m.ShowProc(ctx)
	if err != nil || len(procs.Workers) != 1 {
		t.Fatalf("show proc: %+v %v", procs, err)
	}
	if asUser {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", procs.Workers[0]))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := user.Lookup("haproxy")
		if !strings.Contains(string(status), "\nUid:\t"+u.Uid+"\t") {
			t.Errorf("worker does not run as haproxy (uid %s):\n%s", u.Uid, status)
		}
		// The admin socket still answers the (root) agent.
		if out, err := queryUnix(ctx, AdminSocket(runDir), "show servers state"); err != nil || !strings.Contains(out, "web-") {
			t.Errorf("admin socket after dropping privileges: %q %v", out, err)
		}
	}
}

func waitGet(t *testing.T, port int, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := testbin.Get(port)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("through haproxy: %q, %v; want %q", got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// millis never wraps: the largest Duration used to round up into a negative
// number of milliseconds.
func TestMillisSaturates(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                  "",
		-time.Second:                       "",
		time.Nanosecond:                    "1ms",
		1500 * time.Microsecond:            "2ms",
		services.MaxTimeout:                "2147483647ms",
		services.MaxTimeout + 1:            "2147483647ms",
		time.Duration(math.MaxInt64):       "2147483647ms",
		time.Duration(math.MaxInt64 - 1e6): "2147483647ms",
	} {
		if got := millis(d); got != want {
			t.Errorf("millis(%d) = %q, want %q", int64(d), got, want)
		}
	}
}

// longName is a valid name (DNS labels of at most 63) at the longest a
// name may be.
var longName = strings.Repeat(strings.Repeat("a", 62)+"b.", 3) + strings.Repeat("c", services.MaxNameLen-3*64)

// Every value at the largest services.Validate accepts passes the real
// `haproxy -c`; one over the timeout limit would not, and Validate refuses
// it. (maxconn one over is accepted by `haproxy -c` and silently wraps, so
// only Validate can catch it.)
func TestLimitsAcceptedByProxy(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	edge := services.Server{Host: longName, IP: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Port: 65535,
		Weight: services.MaxWeight, MaxConn: services.MaxServerConns}
	svcs := []services.Service{
		{Name: longName, Port: 65535, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/" + strings.Repeat("p", services.MaxPathLen-1)},
			Timeouts:    &services.Timeouts{Client: services.MaxTimeout, Server: services.MaxTimeout - time.Nanosecond},
			Servers: []services.Server{edge,
				{IP: netip.MustParseAddr("10.0.0.1"), Port: 1, Weight: 1, MaxConn: 1},
				{IP: netip.MustParseAddr("10.0.0.2"), Port: 1, Weight: 0}}},
		{Name: "a", Port: 1, Protocol: services.TCP, Mode: services.ModeTCP,
			Timeouts: &services.Timeouts{Client: time.Nanosecond}},
	}
	f := services.File{Version: services.Version, Services: svcs}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Render(Params{RunDir: "/run/proxymatic", MaxConnections: 1}, svcs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timeout client 2147483647ms", "timeout server 2147483647ms", "weight 256 maxconn 2147483647", "weight 1 maxconn 1", "weight 0", "bind :65535", "timeout client 1ms"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %q", want)
		}
	}
	check := func(cfg []byte) error {
		path := t.TempDir() + "/haproxy.cfg"
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		return Check(context.Background(), bin, path)
	}
	if err := check(cfg); err != nil {
		t.Fatalf("haproxy refuses values Validate accepts: %v", err)
	}
	// The limit is HAProxy's own: one millisecond more is refused by the
	// proxy, and one nanosecond more by Validate.
	over := bytes.Replace(cfg, []byte("timeout client 2147483647ms"), []byte("timeout client 2147483648ms"), 1)
	if err := check(over); err == nil || !strings.Contains(err.Error(), "timer overflow") {
		t.Errorf("haproxy accepted a timeout over its limit: %v", err)
	}
	svcs[0].Timeouts.Client = services.MaxTimeout + time.Nanosecond
	if _, err := Render(Params{RunDir: "/run/proxymatic", MaxConnections: 1}, svcs); err == nil || !strings.Contains(err.Error(), "timeouts.client") {
		t.Errorf("rendered a timeout over the limit: %v", err)
	}
}
