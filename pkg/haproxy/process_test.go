package haproxy

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func freePort(t *testing.T) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

// A minimal hand-written config: this file tests process management, the
// rendering has its own tests.
func writeConfig(t *testing.T, runDir string, port int, server string) {
	t.Helper()
	cfg := fmt.Sprintf(`global
  stats socket %s mode 600 level admin expose-fd listeners
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
listen svc
  bind 127.0.0.1:%d
  server s1 %s
`, AdminSocket(runDir), port, server)
	if err := os.WriteFile(ConfigFile(runDir), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMasterStartReloadRestartStop(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	runDir := t.TempDir()
	port := freePort(t)
	a, b := testbin.Backend(t, "a").String(), testbin.Backend(t, "b").String()
	writeConfig(t, runDir, port, a)

	m := NewMaster(bin, runDir, supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(context.Background())
	if got, err := testbin.Get(port); err != nil || got != "a" {
		t.Fatalf("before reload: %q, %v", got, err)
	}

	// Reloads one after the other are each confirmed.
	for i, want := range []string{"b", "a", "b"} {
		before, err := m.ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		writeConfig(t, runDir, port, map[string]string{"a": a, "b": b}[want])
		if err := m.Reload(ctx); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		after, _ := m.ShowProc(ctx)
		if after.MasterReloads != before.MasterReloads+1 {
			t.Fatalf("reload counter %d -> %d", before.MasterReloads, after.MasterReloads)
		}
		if got, err := testbin.Get(port); err != nil || got != want {
			t.Fatalf("after reload %d: %q, %v; want %q", i, got, err, want)
		}
	}

	// The worker's server state was saved for its successor.
	if state, err := os.ReadFile(StateFile(runDir)); err != nil || !strings.Contains(string(state), "svc") {
		t.Errorf("server state file: %q, %v", state, err)
	}

	// A master killed outright comes back, serving.
	master := m.Pid()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := testbin.Get(port)
		if err == nil && got == "b" && m.Pid() != master && m.Pid() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after master kill: %q %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	pid := m.Pid()
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("master %d still running", pid)
	}
	if _, err := testbin.Get(port); err == nil {
		t.Fatal("still serving after Stop")
	}
}

func TestParseShowProc(t *testing.T) {
	out := `#<PID>          <type>          <reloads>       <uptime>        <version>
4110            master          2 [failed: 1]   0d00h00m05s     2.6.12-1+deb12u4
# workers
4150            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
4120            worker          1               0d00h00m03s     2.6.12-1+deb12u4
# programs

`
	p, err := parseShowProc(out)
	if err != nil {
		t.Fatal(err)
	}
	if p.Master != 4110 || p.MasterReloads != 2 || p.FailedReloads != 1 || len(p.Workers) != 1 || p.Workers[0] != 4150 || len(p.OldWorkers) != 1 || p.OldWorkers[0] != 4120 {
		t.Fatalf("parsed %+v", p)
	}
	if _, err := parseShowProc("Unknown command\n"); err == nil {
		t.Fatal("no error for an answer without a master")
	}
}
