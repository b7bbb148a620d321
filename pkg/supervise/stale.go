package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopStale ends a proxy left behind by an earlier agent: when pidFile names
// a live process running binary, it gets SIGTERM, then SIGKILL when ctx ends,
// so that its ports are free for the new one. A pid that was reused by an
// unrelated program is left alone. The pid file is removed.
func StopStale(ctx context.Context, pidFile, binary string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stale pid file %s: %w", pidFile, err)
	}
	defer os.Remove(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return nil
	}
	if !runs(pid, binary) {
		return nil
	}
	logger.Warn("stopping a proxy left behind by an earlier run", "pid", pid, "binary", binary, "pid_file", pidFile)
	// Its workers, found now: once the master is gone they are reparented.
	workers := children(pid, binary)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for runs(pid, binary) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Its workers, when it led a group of its own, and those found above.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, w := range workers {
		if runs(w, binary) {
			_ = syscall.Kill(w, syscall.SIGKILL)
		}
	}
	// The caller binds the same ports next: return only once every one of
	// them is gone (a process's sockets are closed by the time it is a
	// zombie). A SIGKILL is delivered, not awaited, and returning before
	// was the cause of a new HAProxy finding its port still held.
	for groupAlive(pid) || slices.ContainsFunc(workers, func(w int) bool { return !gone(w) && (runs(w, binary) || !hasExe(w)) }) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stale proxy %d: its workers are still running: %w", pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// children lists the live processes running binary whose parent is pid.
func children(pid int, binary string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		// Fields after the name: state ppid ...
		if f := strings.Fields(string(stat[i+1:])); len(f) >= 2 && f[1] == strconv.Itoa(pid) && runs(c, binary) {
			out = append(out, c)
		}
	}
	return out
}

// runs reports whether pid is a live (not zombie) process executing binary.
func runs(pid int, binary string) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	want := binary
	if r, err := filepath.EvalSymlinks(binary); err == nil {
		want = r
	}
	if strings.TrimSuffix(exe, " (deleted)") != want {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// groupAlive reports whether any live (not zombie) process is in process
// group pgid. kill(-pgid, 0) is not enough: an orphaned worker killed a moment
// ago stays a zombie until init reaps it, and some container inits never do.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		// Fields after the name: state ppid pgrp ...
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || (f[0] == "Z" && gone(pid)) {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid && pid > 0 {
			return true
		}
	}
	return false
}

// gone reports whether pid has finished exiting: no such process, or a
// zombie none of whose threads is still running. The main thread of a
// multi-threaded proxy (HAProxy) shows as a zombie while its other threads
// are still exiting, and they hold its sockets until the last one is done:
// a port is free only once every thread is.
func gone(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return true
	}
	for _, t := range tasks {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/stat")
		if err != nil {
			continue // exited since the listing
		}
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X' {
			return false
		}
	}
	return true
}

// hasExe reports whether pid's executable can still be read: it cannot once
// an exiting process has released its memory, before its files are closed.
func hasExe(pid int) bool {
	_, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil
}
