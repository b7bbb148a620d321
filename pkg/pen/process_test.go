package pen

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func freePort(t *testing.T) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

func backendServer(t *testing.T, name string) services.Server {
	t.Helper()
	ap := testbin.Backend(t, name)
	return services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: services.DefaultWeight}
}

// runDir returns a run dir pen can read after dropping to nobody.
func runDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestProcessStartReloadRestartStop(t *testing.T) {
	bin := testbin.Require(t, "pen")
	dir := runDir(t)
	port := freePort(t)
	key := services.Key{Port: port, Protocol: services.TCP}
	a, b := backendServer(t, "a"), backendServer(t, "b")
	slots := NewSlots(4)
	write := func(srv services.Server) {
		cfg, err := Render(Params{Servers: 4}, services.Service{Name: "web", Port: port, Protocol: services.TCP, Mode: services.ModeTCP, Servers: []services.Server{srv}}, slots)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ConfigFile(dir, key), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a)
	usr := ""
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("nobody"); err == nil {
			usr = "nobody"
		}
	}
	p := NewProcess(ProcessConfig{Bin: bin, RunDir: dir, Service: key, MaxConn: 100, Clients: 100, User: usr},
		supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if usr != "" {
		// Started as the user, not dropping to it: that is what keeps its
		// parent-death signal (the test of that is in test/fault).
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		u, _ := user.Lookup(usr)
		if !strings.Contains(string(status), "\nUid:\t"+u.Uid+"\t") {
			t.Errorf("pen does not run as %s (uid %s):\n%s", usr, u.Uid, status)
		}
	}
	if got, err := testbin.Get(port); err != nil || got != "a" {
		t.Fatalf("before reload: %q, %v", got, err)
	}

	eventually := func(what, want string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := testbin.Get(port)
			if err == nil && got == want && cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %q, %v; want %q", what, got, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	write(b)
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	eventually("after reload", "b", func() bool { return true })

	first := p.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually("after kill", "b", func() bool { return p.Pid() != first && p.Pid() != 0 })

	pid := p.Pid()
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	if err := p.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("pen %d still running", pid)
	}
	if _, err := testbin.Get(port); err == nil {
		t.Fatal("still serving after Stop")
	}
}
