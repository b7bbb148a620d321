package supervise

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func sleepBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && runs(pid, mustExe(pid)) }

func mustExe(pid int) string {
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return exe
}

func TestRestartAfterKillAndStop(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	p := New(Spec{Name: "sleep", Path: sleepBin(t), Args: []string{"60"}, PidFile: pidFile}, Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond, Reset: time.Minute}, nil)
	ctx := t.Context()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := p.Pid()
	if first == 0 {
		t.Fatal("no pid after Start")
	}
	data, err := os.ReadFile(pidFile)
	if err != nil || string(data) != strconv.Itoa(first)+"\n" {
		t.Fatalf("pid file = %q, %v; want %d", data, err, first)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart", func() bool { pid := p.Pid(); return pid != 0 && pid != first })
	second := p.Pid()

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(second) {
		t.Fatalf("pid %d still running after Stop", second)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	time.Sleep(50 * time.Millisecond)
	if pid := p.Pid(); pid != 0 {
		t.Fatalf("restarted after Stop: pid %d", pid)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left after Stop: %v", err)
	}
}

func TestStopKillsAChildIgnoringTheStopSignal(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p := New(Spec{Name: "stubborn", Path: sh, Args: []string{"-c", "trap '' TERM; sleep 60 & wait"}}, DefaultBackoff, nil)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	time.Sleep(100 * time.Millisecond) // let the trap be installed
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err == nil {
		t.Fatal("Stop of a process ignoring SIGTERM returned no error; want the kill reported")
	}
	if groupAlive(pid) {
		t.Fatalf("process group %d still has members", pid)
	}
}

func TestStartFailsForMissingBinary(t *testing.T) {
	p := New(Spec{Name: "missing", Path: filepath.Join(t.TempDir(), "nope")}, DefaultBackoff, nil)
	if err := p.Start(t.Context()); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}

func TestStopStale(t *testing.T) {
	bin := sleepBin(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	pidFile := filepath.Join(dir, "x.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A pid file naming another binary is not ours to stop.
	if err := StopStale(t.Context(), pidFile, "/usr/sbin/haproxy", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Fatal("StopStale stopped a process running another binary")
	case <-time.After(50 * time.Millisecond):
	}

	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := StopStale(ctx, pidFile, bin, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("stale process still running")
	}
}
