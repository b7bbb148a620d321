package supervise

import (
	"bytes"
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

// StopStale ends a proxy left behind by an earlier agent: when pidFile
// (written by WritePidFile) names a live process that is still the one
// recorded — same start time, running binary, with a command line naming
// config (this run dir's config file) — it gets SIGTERM, then SIGKILL when
// ctx ends, so that its ports are free for the new one. Anything else is
// left alone and logged: a pid reused by an unrelated process (even another
// HAProxy), a file without a start time. The pid file is removed.
func StopStale(ctx context.Context, pidFile, binary, config string, logger *slog.Logger) error {
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
	rec, ok := parsePidFile(data)
	if !ok {
		logger.Warn("stale pid file without a pid and a start time; nothing signalled", "pid_file", pidFile)
		return nil
	}
	if why := rec.notOurs(binary, config); why != "" {
		if why != errGone {
			logger.Warn("stale pid file names another process; left alone", "pid_file", pidFile, "pid", rec.pid, "reason", why)
		}
		return nil
	}
	logger.Warn("stopping a proxy left behind by an earlier run", "pid", rec.pid, "binary", binary, "pid_file", pidFile)
	// Its workers, found now: once the master is gone they are reparented.
	workers := children(rec.pid, binary)
	_ = syscall.Kill(rec.pid, syscall.SIGTERM)
	for rec.alive(binary) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-rec.pid, syscall.SIGKILL)
			_ = syscall.Kill(rec.pid, syscall.SIGKILL)
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Its workers, when it led a group of its own, and those found above.
	_ = syscall.Kill(-rec.pid, syscall.SIGKILL)
	for _, w := range workers {
		if runs(w, binary) {
			_ = syscall.Kill(w, syscall.SIGKILL)
		}
	}
	// The caller binds the same ports next: return only once every one of
	// them is gone (a process's sockets are closed by the time it is a
	// zombie). A SIGKILL is delivered, not awaited, and returning before
	// was the cause of a new HAProxy finding its port still held.
	for groupAlive(rec.pid) || slices.ContainsFunc(workers, func(w int) bool { return !gone(w) && (runs(w, binary) || !hasExe(w)) }) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stale proxy %d: its workers are still running: %w", rec.pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// pidRecord is what a pid file holds: the pid and the process's start time
// (clock ticks since boot, /proc/<pid>/stat field 22), which a reused pid
// does not share.
type pidRecord struct {
	pid   int
	start uint64
}

func parsePidFile(data []byte) (pidRecord, bool) {
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return pidRecord{}, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 1 {
		return pidRecord{}, false
	}
	return pidRecord{pid, start}, true
}

const errGone = "not running"

// notOurs says why the recorded process is not (any more) the proxy the
// record was written for, "" when it is.
func (r pidRecord) notOurs(binary, config string) string {
	if !runs(r.pid, binary) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(r.pid)); err == nil {
			return "runs another binary than " + binary
		}
		return errGone
	}
	if st, err := startTime(r.pid); err != nil || st != r.start {
		return "started at another time (its pid was reused)"
	}
	if !namesFile(r.pid, config) {
		return "its command line does not name " + config
	}
	return ""
}

// alive reports whether the recorded process still runs (same start time).
func (r pidRecord) alive(binary string) bool {
	st, err := startTime(r.pid)
	return err == nil && st == r.start && runs(r.pid, binary)
}

// startTime reads field 22 of /proc/<pid>/stat: when the process started,
// in clock ticks after boot.
func startTime(pid int) (uint64, error) {
	f, err := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	const field = 22 - 3
	if len(f) <= field {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[field], 10, 64)
}

// namesFile reports whether pid's command line has path as one of its
// words. nginx's master rewrites its title ("nginx: master process
// /usr/sbin/nginx ... -c /run/proxymatic/nginx.conf"), so words are split
// on spaces as well as NULs.
func namesFile(pid int, path string) bool {
	proc := "/proc/" + strconv.Itoa(pid) + "/cmdline"
	cmdline, err := os.ReadFile(proc)
	// An HAProxy master re-executes itself once its workers are up, and
	// while it does its command line reads empty: look again for a moment
	// rather than take it for another process.
	for tries := 0; err == nil && len(cmdline) == 0 && tries < 100; tries++ {
		time.Sleep(20 * time.Millisecond)
		cmdline, err = os.ReadFile(proc)
	}
	if err != nil {
		return false
	}
	for _, w := range strings.FieldsFunc(string(cmdline), func(r rune) bool { return r == 0 || r == ' ' }) {
		if w == path {
			return true
		}
	}
	return false
}

// WritePidFile records pid with its start time at path, replacing the file
// without following a link left at its name: the record is written to a
// new file created exclusively in the same directory, then renamed over.
func WritePidFile(path string, pid int) error {
	start, err := startTime(pid)
	if err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	_, werr := fmt.Fprintf(tmp, "%d %d\n", pid, start)
	merr := tmp.Chmod(0o644)
	cerr := tmp.Close()
	if err := errors.Join(werr, merr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
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
	f, err := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && len(f) > 0 && f[0] != "Z"
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
		f, err := statFields("/proc/" + e.Name() + "/stat")
		if err != nil || len(f) < 3 || (f[0] == "Z" && gone(pid)) {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid && pid > 0 {
			return true
		}
	}
	return false
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
		f, err := statFields("/proc/" + e.Name() + "/stat")
		if err == nil && len(f) >= 2 && f[1] == strconv.Itoa(pid) && runs(c, binary) {
			out = append(out, c)
		}
	}
	return out
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
		f, err := statFields("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/stat")
		if err != nil {
			continue // exited since the listing
		}
		if len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			return false
		}
	}
	return true
}

// statFields reads a /proc stat file and returns its fields after the
// parenthesised command name (which may hold spaces and parentheses): f[0]
// is the state (field 3), f[1] the parent, f[2] the process group, f[19]
// the start time (field 22).
func statFields(path string) ([]string, error) {
	stat, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("%s: no command name", path)
	}
	return strings.Fields(string(stat[i+1:])), nil
}

// hasExe reports whether pid's executable can still be read: it cannot once
// an exiting process has released its memory, before its files are closed.
func hasExe(pid int) bool {
	_, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil
}
