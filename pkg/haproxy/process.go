package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// MasterSocket is the master CLI socket (-S): reload and show proc go there.
func MasterSocket(runDir string) string { return runDir + "/haproxy-master.sock" }

// PidFile is where the agent records the master's pid and start time
// (supervise.WritePidFile). HAProxy is not given -p: its own file would
// hold the pid alone, which a later agent cannot tell from a reused one.
func PidFile(runDir string) string { return runDir + "/haproxy.pid" }

// ConfigFile is the live haproxy.cfg in the run dir.
func ConfigFile(runDir string) string { return runDir + "/haproxy.cfg" }

// Master runs HAProxy in master-worker mode and reloads it through the master
// CLI. Reloads are serialised and each is confirmed with show proc before the
// next is sent: signals or commands sent in a burst collapse into one.
type Master struct {
	bin, runDir string
	log         *slog.Logger
	proc        *supervise.Process

	mu sync.Mutex
	// draining are servers ("backend/server") removed at run time that
	// still had connections: in maintenance, deleted once they are idle.
	draining map[string]bool
}

// NewMaster prepares (does not start) HAProxy for the config in
// ConfigFile(runDir).
func NewMaster(bin, runDir string, backoff supervise.Backoff, logger *slog.Logger) *Master {
	if logger == nil {
		logger = slog.Default()
	}
	spec := supervise.Spec{
		Name: "haproxy",
		Path: bin,
		// No -D: the master stays in the foreground, supervised. The
		// master passes the listening sockets to each new worker itself,
		// so reloads are seamless without -x.
		Args:       []string{"-W", "-f", ConfigFile(runDir), "-S", MasterSocket(runDir) + ",mode,600"},
		Dir:        runDir,
		PidFile:    PidFile(runDir),
		StopSignal: syscall.SIGUSR1, // soft stop: finish the connections in flight
		LogLevel:   logLevel,
	}
	return &Master{bin: bin, runDir: runDir, log: logger, proc: supervise.New(spec, backoff, logger)}
}

// Start starts the master and waits until it has a worker. The master CLI
// socket of an earlier run is removed first so a stale one is never dialled.
func (m *Master) Start(ctx context.Context) error {
	_ = supervise.StopStale(ctx, PidFile(m.runDir), m.bin, ConfigFile(m.runDir), m.log)
	_ = removeSocket(MasterSocket(m.runDir))
	// The config loads server state from this file; before the first save
	// an empty state (just the format version) keeps HAProxy from warning
	// that it cannot open it on every first start.
	if path := StateFile(m.runDir); !exists(path) {
		_, _ = atomicfile.New(path, 0o600).Write([]byte("1\n"))
	}
	if err := m.proc.Start(ctx); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	for {
		procs, err := m.ShowProc(ctx)
		if err == nil && len(procs.Workers) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: waiting for the first worker: %w (last error: %v)", ctx.Err(), err)
		case <-m.proc.Done():
			return errors.New("haproxy: exited while starting")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is the master's pid, 0 when it is not running.
func (m *Master) Pid() int { return m.proc.Pid() }

// Reload asks the master to reload its config and waits until show proc
// lists a worker that did not exist before. A reload HAProxy refuses (the
// master keeps its old workers) ends as an error when ctx does.
func (m *Master) Reload(ctx context.Context) error {
	before, err := m.ShowProc(ctx)
	if err != nil {
		return fmt.Errorf("haproxy reload: %w", err)
	}
	m.saveServerState(ctx)
	// HAProxy 2.6's master answers nothing to reload and closes the
	// connection while it re-executes itself; success shows in show proc.
	if err := m.command(ctx, "reload"); err != nil {
		m.log.Warn("master CLI reload failed; sending SIGUSR2", "err", err)
		if err := m.proc.Signal(syscall.SIGUSR2); err != nil {
			return fmt.Errorf("haproxy reload: %w", err)
		}
	}
	for {
		after, err := m.ShowProc(ctx)
		if err == nil && after.FailedReloads > before.FailedReloads {
			return fmt.Errorf("haproxy refused the new config (show proc counts %d failed reloads); the old workers keep serving", after.FailedReloads)
		}
		if err == nil && after.MasterReloads > before.MasterReloads {
			for _, w := range after.Workers {
				if !slices.Contains(before.Workers, w) {
					// The new worker has no server the config lacks.
					m.mu.Lock()
					clear(m.draining)
					m.mu.Unlock()
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy reload not confirmed (no new worker): %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// saveServerState writes the running worker's server state (health, weights
// changed at run time) where the next worker loads it from (the config's
// load-server-state-from-file), so a reload does not reset it. Failing to
// save only costs that state: the reload goes ahead.
func (m *Master) saveServerState(ctx context.Context) {
	state, err := queryUnix(ctx, AdminSocket(m.runDir), "show servers state")
	if err != nil || !strings.HasPrefix(state, "1\n") {
		m.log.Debug("server state not saved", "err", err)
		return
	}
	// A new file created exclusively, then renamed: never written through
	// a link left in the run dir.
	if _, err := atomicfile.New(StateFile(m.runDir), 0o600).Write([]byte(state)); err != nil {
		m.log.Debug("server state not saved", "err", err)
	}
}

// Stop soft-stops HAProxy (SIGUSR1: stop listening, finish connections) and
// kills what is left when ctx ends.
func (m *Master) Stop(ctx context.Context) error { return m.proc.Stop(ctx) }

// Procs is what show proc reports.
type Procs struct {
	Master        int
	MasterReloads int
	FailedReloads int   // HAProxy 2.6+ reports it as "[failed: N]"
	Workers       []int // current workers
	OldWorkers    []int // workers of earlier configs still draining
}

// ShowProc asks the master for its processes.
func (m *Master) ShowProc(ctx context.Context) (*Procs, error) {
	out, err := m.query(ctx, "show proc")
	if err != nil {
		return nil, err
	}
	return parseShowProc(out)
}

func parseShowProc(out string) (*Procs, error) {
	p := &Procs{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			switch {
			case strings.Contains(line, "old workers"):
				section = "old"
			case strings.Contains(line, "workers"):
				section = "workers"
			case strings.Contains(line, "programs"):
				section = "programs"
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case f[1] == "master":
			p.Master = pid
			p.MasterReloads, _ = strconv.Atoi(f[2])
			if i := strings.Index(line, "[failed:"); i >= 0 {
				rest := strings.TrimSpace(line[i+len("[failed:"):])
				if j := strings.IndexByte(rest, ']'); j >= 0 {
					p.FailedReloads, _ = strconv.Atoi(strings.TrimSpace(rest[:j]))
				}
			}
		case f[1] == "worker" && section == "old":
			p.OldWorkers = append(p.OldWorkers, pid)
		case f[1] == "worker":
			p.Workers = append(p.Workers, pid)
		}
	}
	if p.Master == 0 {
		return nil, fmt.Errorf("haproxy show proc: no master in %q", clip(out))
	}
	return p, nil
}

func (m *Master) command(ctx context.Context, cmd string) error {
	_, err := m.query(ctx, cmd)
	return err
}

// query sends one command to the master CLI and reads the answer up to the
// connection's end.
func (m *Master) query(ctx context.Context, cmd string) (string, error) {
	return queryUnix(ctx, MasterSocket(m.runDir), cmd)
}

// queryUnix sends one command to an HAProxy CLI socket and returns the
// whole answer.
func queryUnix(ctx context.Context, socket, cmd string) (string, error) {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fmt.Errorf("haproxy master CLI: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	// The master CLI keeps the connection open after an answer; quit
	// makes it close, so the answer's end is the connection's end.
	if _, err := conn.Write([]byte(cmd + "; quit\n")); err != nil {
		return "", fmt.Errorf("haproxy master CLI %q: %w", cmd, err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				return b.String(), nil
			}
			return b.String(), fmt.Errorf("haproxy master CLI %q: %w", cmd, err)
		}
	}
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) }

// removeSocket removes a unix socket left by an earlier run, and only a socket.
func removeSocket(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return nil
	}
	return os.Remove(path)
}

// logLevel maps HAProxy's message prefixes to log levels.
func logLevel(line string) slog.Level {
	switch {
	case strings.Contains(line, "[ALERT]"), strings.Contains(line, "[EMERG]"):
		return slog.LevelError
	case strings.Contains(line, "[WARNING]"):
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
