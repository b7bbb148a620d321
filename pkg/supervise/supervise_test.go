package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
)

func sleepBin(t *testing.T) string {
	t.Helper()
	return testbin.Require(t, "sleep")
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
	start, serr := startTime(first)
	if err != nil || serr != nil || string(data) != strconv.Itoa(first)+" "+strconv.FormatUint(start, 10)+"\n" {
		t.Fatalf("pid file = %q, %v; want %d and its start time %d (%v)", data, err, first, start, serr)
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
	sh := testbin.Require(t, "sh")
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

// stale starts a shell whose command line names config, as a proxy's names
// its config file, and returns its pid and a channel closed when it exits.
func stale(t *testing.T, config string) (int, string, <-chan struct{}) {
	t.Helper()
	sh := testbin.Require(t, "sh")
	cmd := exec.Command(sh, "-c", "sleep 60; :", config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd.Process.Pid, sh, exited
}

func stillRuns(t *testing.T, exited <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-exited:
		t.Fatal(what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestStopStale(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "haproxy.cfg")
	pidFile := filepath.Join(dir, "x.pid")
	pid, sh, exited := stale(t, config)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	write := func(data string) {
		t.Helper()
		if err := os.WriteFile(pidFile, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	record := fmt.Sprintf("%d %d\n", pid, start)

	// Each of these is not ours to stop: it is left alone, the file removed.
	for name, c := range map[string]struct{ data, binary, config string }{
		"another binary":               {record, "/usr/sbin/haproxy", config},
		"a pid reused (another start)": {fmt.Sprintf("%d %d\n", pid, start+1), sh, config},
		"another run dir's config":     {record, sh, filepath.Join(t.TempDir(), "haproxy.cfg")},
		"no start time (old format)":   {fmt.Sprintf("%d\n", pid), sh, config},
	} {
		write(c.data)
		if err := StopStale(ctx, pidFile, c.binary, c.config, nil); err != nil {
			t.Fatal(err)
		}
		stillRuns(t, exited, "StopStale stopped a process that is not ours: "+name)
		if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
			t.Errorf("%s: pid file left: %v", name, err)
		}
	}

	// The record WritePidFile wrote, for a process naming this config.
	if err := WritePidFile(pidFile, pid); err != nil {
		t.Fatal(err)
	}
	if err := StopStale(ctx, pidFile, sh, config, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("stale process still running")
	}
}

// A link planted at the pid file's temporary or final name is never
// written through.
func TestWritePidFileNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "1-udp.pid")
	for _, name := range []string{pidFile + ".tmp", pidFile} {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := WritePidFile(pidFile, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep\n" {
		t.Errorf("link target written: %q", got)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o600 {
		t.Errorf("link target chmod'ed: %v", st.Mode())
	}
	if st, _ := os.Lstat(pidFile); !st.Mode().IsRegular() {
		t.Errorf("pid file is %v, want a regular file", st.Mode())
	}
}

// An agent killed outright (SIGKILL, no chance to stop anything) must take
// its proxies with it: the child test process below supervises a sleep and is
// killed; the sleep must die with it (Pdeathsig).
func TestChildDiesWithAgent(t *testing.T) {
	if os.Getenv("SUPERVISE_HELPER") == "1" {
		p := New(Spec{Name: "sleep", Path: os.Getenv("SUPERVISE_SLEEP"), Args: []string{"60"}, PidFile: os.Getenv("SUPERVISE_PIDFILE")}, DefaultBackoff, nil)
		if err := p.Start(context.Background()); err != nil {
			os.Exit(3)
		}
		// Let the Go scheduler move things around, as a real agent would.
		for range 50 {
			go func() { time.Sleep(time.Millisecond) }()
		}
		select {}
	}
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	helper := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithAgent$")
	helper.Env = append(os.Environ(), "SUPERVISE_HELPER=1", "SUPERVISE_SLEEP="+sleepBin(t), "SUPERVISE_PIDFILE="+pidFile)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, "the helper's child", func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		rec, ok := parsePidFile(data)
		pid = rec.pid
		return ok
	})
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, "the child to die with its agent", func() bool { return !groupAlive(pid) })
}
