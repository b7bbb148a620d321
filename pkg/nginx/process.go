package nginx

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/pkg/supervise"
)

// AgentPidFile is where the agent records nginx's master pid and start time
// (supervise.WritePidFile), beside nginx's own pid file (PidFile), which
// holds the pid alone: a later agent could not tell it from a reused pid.
func AgentPidFile(runDir string) string { return runDir + "/nginx-agent.pid" }

// ConfigFile is the live nginx.conf under nginx's prefix.
func ConfigFile(prefix string) string { return prefix + "/nginx.conf" }

// Server runs nginx in the foreground (the config says daemon off) with its
// own prefix, and reloads it with SIGHUP.
type Server struct {
	bin, prefix string
	log         *slog.Logger
	proc        *supervise.Process
}

// NewServer prepares (does not start) nginx for ConfigFile(prefix).
func NewServer(bin, prefix string, backoff supervise.Backoff, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	spec := supervise.Spec{
		Name: "nginx",
		Path: bin,
		// -e stderr: the compiled-in error log is opened before the config
		// is read, and may be a system path.
		Args:       []string{"-e", "stderr", "-p", prefix + "/", "-c", ConfigFile(prefix)},
		Dir:        prefix,
		StopSignal: syscall.SIGQUIT, // graceful: finish the requests in flight
		LogLevel:   logLevel,
		PidFile:    AgentPidFile(prefix),
	}
	return &Server{bin: bin, prefix: prefix, log: logger, proc: supervise.New(spec, backoff, logger)}
}

// Start starts nginx, first stopping one an earlier agent left running on
// the same prefix, and waits until its workers are up.
func (s *Server) Start(ctx context.Context) error {
	_ = supervise.StopStale(ctx, AgentPidFile(s.prefix), s.bin, ConfigFile(s.prefix), s.log)
	if err := s.proc.Start(ctx); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	for {
		if pid := s.proc.Pid(); pid != 0 && len(children(pid)) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx: waiting for workers: %w", ctx.Err())
		case <-s.proc.Done():
			return fmt.Errorf("nginx: exited while starting")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is the master's pid, 0 when it is not running.
func (s *Server) Pid() int { return s.proc.Pid() }

// Reload sends SIGHUP and waits until the master has started a worker that
// did not exist before and every old worker has stopped accepting (it is
// gone or titled "shutting down"): from then on only the new config serves. nginx refusing
// the config keeps its old workers, and the reload ends as an error when ctx
// does.
func (s *Server) Reload(ctx context.Context) error {
	pid := s.proc.Pid()
	if pid == 0 {
		return fmt.Errorf("nginx reload: %w", supervise.ErrNotRunning)
	}
	before := children(pid)
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("nginx reload: %w", err)
	}
	for {
		if reloaded(before, children(pid)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx reload not confirmed (no new worker): %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop asks nginx to quit gracefully (SIGQUIT) and kills it when ctx ends.
func (s *Server) Stop(ctx context.Context) error { return s.proc.Stop(ctx) }

// children lists pid's child processes.
func children(pid int) []int {
	p := strconv.Itoa(pid)
	data, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// reloaded reports whether now holds a worker not in before, and every worker
// of before still running is only finishing its requests.
func reloaded(before, now []int) bool {
	fresh := false
	for _, c := range now {
		if !slices.Contains(before, c) {
			fresh = true
			continue
		}
		title, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline")
		if err == nil && !strings.Contains(string(title), "shutting down") {
			return false
		}
	}
	return fresh
}

// logLevel maps nginx's error log levels to log levels. Only the tag where
// nginx puts it counts ("2024/05/01 10:00:00 [error] ..." in the error log,
// "nginx: [emerg] ..." before it is open): access log lines share the
// output, and a request for /[error] is not an error.
func logLevel(line string) slog.Level {
	rest, ok := strings.CutPrefix(line, "nginx: ")
	if !ok {
		// "YYYY/MM/DD HH:MM:SS " is 20 bytes.
		if len(line) < 21 || line[4] != '/' || line[7] != '/' || line[10] != ' ' || line[13] != ':' || line[19] != ' ' {
			return slog.LevelInfo
		}
		rest = line[20:]
	}
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[emerg]", slog.LevelError}, {"[alert]", slog.LevelError}, {"[crit]", slog.LevelError}, {"[error]", slog.LevelError}, {"[warn]", slog.LevelWarn}} {
		if strings.HasPrefix(rest, l.tag) {
			return l.level
		}
	}
	return slog.LevelInfo
}
