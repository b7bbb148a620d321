// Package supervise runs one external proxy process (HAProxy's master, nginx's
// master, one pen): it starts it in its own process group, forwards its output
// to the log, sends it signals, restarts it with backoff when it dies and
// stops it gracefully, then by force. It is the only place that execs a
// long-running process or signals one.
//
// A child is started with Pdeathsig so that an agent killed hard takes its
// proxies with it. Pdeathsig fires when the OS thread that forked the child
// ends, not the process, so each Process starts and waits for its child from
// one goroutine locked to its thread for the child's whole life.
package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/pkg/backoff"
)

// Spec describes the process to run.
type Spec struct {
	Name       string   // for logs and metrics: "haproxy", "nginx", "pen-10001/tcp"
	Path       string   // the binary
	Args       []string // without argv[0]
	Dir        string
	PidFile    string         // when set, written with the child's pid and start time after each start (WritePidFile)
	StopSignal syscall.Signal // graceful stop; SIGTERM when zero
	// DeathSignal reaches the child when the agent dies without stopping it;
	// SIGTERM when zero (a master that is killed outright can leave its
	// workers behind, a terminated one takes them down).
	DeathSignal syscall.Signal
	// LogLevel gives the level of a line the child wrote to stdout or
	// stderr; nil logs every line at Info.
	LogLevel func(line string) slog.Level
	// Credential, when set, runs the child as that user from exec on. A
	// child that drops privileges itself (setuid) loses DeathSignal: the
	// kernel clears it on a credential change, and Go sets it after its
	// own setuid, so only this way does the signal survive.
	Credential *syscall.Credential
	// AmbientCaps are kept across the credential change (a proxy running
	// as nobody binding ports below 1024 needs CAP_NET_BIND_SERVICE).
	AmbientCaps []uintptr
}

// Backoff bounds the wait between restarts. A process that ran for longer
// than Reset starts again from Min.
type Backoff struct {
	Min, Max, Reset time.Duration
}

// DefaultBackoff restarts a crashed proxy almost at once, then slows down
// for a proxy that keeps dying.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second, Reset: 30 * time.Second}

// Process supervises one child. Use New; a Process is started once.
type Process struct {
	spec    Spec
	backoff Backoff
	log     *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd // the running child, nil between runs
	stopping bool
	started  bool
	// OnStart, when set before Start, is called from the supervising
	// goroutine after every (re)start with the new pid.
	OnStart func(pid int)

	stopReq chan struct{} // closed by Stop
	done    chan struct{} // closed when the supervising goroutine has returned
}

// New returns a supervisor for spec; nothing runs until Start.
func New(spec Spec, backoff Backoff, logger *slog.Logger) *Process {
	if spec.StopSignal == 0 {
		spec.StopSignal = syscall.SIGTERM
	}
	if spec.DeathSignal == 0 {
		spec.DeathSignal = syscall.SIGTERM
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Process{
		spec:    spec,
		backoff: backoff,
		log:     logger.With("process", spec.Name),
		stopReq: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Start runs the child and supervises it until Stop or ctx is done (ctx
// ending stops the child the same way Stop does, without waiting for it).
// It returns once the first start has succeeded or failed; a binary that
// cannot be executed is an error, a child that dies later is restarted.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("%s: already started", p.spec.Name)
	}
	p.started = true
	p.mu.Unlock()

	first := make(chan error, 1)
	go p.supervise(ctx, first)
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) supervise(ctx context.Context, first chan<- error) {
	// Never unlocked: the thread must outlive every child it forked, and
	// ends with this goroutine once the last child is gone.
	runtime.LockOSThread()
	defer close(p.done)
	bo := backoff.Backoff{Min: p.backoff.Min, Max: p.backoff.Max}
	delay := bo.Next()
	for attempt := 0; ; attempt++ {
		began := time.Now()
		cmd, err := p.startOnce()
		if attempt == 0 {
			first <- err
			if err != nil {
				return
			}
		}
		if err == nil {
			waitErr := p.wait(ctx, cmd)
			if p.isStopping() {
				return
			}
			restarts.WithLabelValues(p.spec.Name).Inc()
			p.log.Error("proxy exited unexpectedly; restarting", "pid", cmd.Process.Pid, "err", describeExit(waitErr), "ran", time.Since(began).Round(time.Millisecond), "restart_in", delay)
			p.endOrphans(ctx, cmd.Process.Pid)
		} else {
			restarts.WithLabelValues(p.spec.Name).Inc()
			p.log.Error("proxy failed to start; retrying", "err", err, "retry_in", delay)
		}
		if time.Since(began) > p.backoff.Reset {
			bo.Reset()
			delay = bo.Next()
		}
		select {
		case <-time.After(delay):
		case <-p.stopReq:
			return
		case <-ctx.Done():
			return
		}
		delay = bo.Next()
	}
}

// endOrphans stops what a dead master left in its process group: nginx's
// workers outlive a killed master and keep its ports, so a new master could
// not bind them. They get the graceful stop signal (which makes them close
// their listeners at once), then SIGKILL after a second.
func (p *Process) endOrphans(ctx context.Context, pgid int) {
	if !groupAlive(pgid) {
		return
	}
	_ = syscall.Kill(-pgid, p.spec.StopSignal)
	grace, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	killGroup(grace, pgid)
}

func (p *Process) startOnce() (*exec.Cmd, error) {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Dir = p.spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: p.spec.DeathSignal,
		Credential: p.spec.Credential, AmbientCaps: p.spec.AmbientCaps}
	// The output goes through a pipe of our own, not one exec.Cmd copies
	// from: Wait then returns as soon as the child exits. With exec's
	// pipes Wait also waited for every process that inherited them — the
	// workers a killed nginx master leaves behind, a soft-stopping HAProxy
	// worker — up to WaitDelay, which delayed every crash-restart by that
	// second. The copy ends when the last writer is gone.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: output pipe: %w", p.spec.Path, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		r.Close()
		w.Close()
		return nil, errors.New("stopping")
	}
	err = cmd.Start()
	w.Close() // the child has its own copy
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	go func() {
		defer r.Close()
		_, _ = io.Copy(&lineLogger{log: p.log, level: p.spec.LogLevel}, r)
	}()
	p.cmd = cmd
	running.WithLabelValues(p.spec.Name).Set(1)
	pid := cmd.Process.Pid
	if p.spec.PidFile != "" {
		if err := WritePidFile(p.spec.PidFile, pid); err != nil {
			p.log.Warn("pid file", "err", err)
		}
	}
	p.log.Info("proxy started", "pid", pid)
	if p.OnStart != nil {
		p.OnStart(pid)
	}
	return cmd, nil
}

// wait returns when the child exits; when ctx ends first it stops the child
// as Stop would, with the default grace.
func (p *Process) wait(ctx context.Context, cmd *exec.Cmd) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-ctx.Done():
		p.mu.Lock()
		p.stopping = true
		p.mu.Unlock()
		_ = cmd.Process.Signal(p.spec.StopSignal)
		select {
		case err = <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-exited
		}
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	running.WithLabelValues(p.spec.Name).Set(0)
	return err
}

func (p *Process) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// Pid returns the running child's pid, 0 between runs.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// ErrNotRunning is returned when there is no child to signal.
var ErrNotRunning = errors.New("not running")

// Signal sends sig to the running child (not its group: a master relays
// reloads and stops to its workers itself).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s: signal %v: %w", p.spec.Name, sig, ErrNotRunning)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.spec.Name, sig, err)
	}
	return nil
}

// Stop sends the stop signal and waits for the child to exit; when ctx ends
// first the whole process group is killed. It returns once nothing of the
// child is left running in its group and no restart can follow.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	if !p.started {
		p.mu.Unlock()
		return nil
	}
	first := !p.stopping
	p.stopping = true
	cmd := p.cmd
	p.mu.Unlock()
	if first {
		close(p.stopReq)
	}
	if cmd == nil {
		<-p.done
		return nil
	}
	pgid := cmd.Process.Pid
	if err := cmd.Process.Signal(p.spec.StopSignal); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn("stop signal", "err", err)
	}
	// The signal is repeated: a proxy still initialising drops a signal
	// that arrives before its handler is registered (HAProxy's master does),
	// and a graceful stop is idempotent.
	resend := time.NewTicker(500 * time.Millisecond)
	defer resend.Stop()
	var err error
wait:
	for {
		select {
		case <-p.done:
			break wait
		case <-resend.C:
			_ = cmd.Process.Signal(p.spec.StopSignal)
		case <-ctx.Done():
			p.log.Warn("proxy did not stop in time; killing its process group", "pid", pgid)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
			err = fmt.Errorf("%s: killed after stop timeout: %w", p.spec.Name, ctx.Err())
			break wait
		}
	}
	// Workers that outlived their master (draining) are ours to end too.
	killGroup(ctx, pgid)
	if p.spec.PidFile != "" {
		_ = os.Remove(p.spec.PidFile)
	}
	return err
}

// Done is closed when the process has stopped for good.
func (p *Process) Done() <-chan struct{} { return p.done }

// killGroup waits (bounded by ctx) for a process group to empty, then kills
// what is left.
func killGroup(ctx context.Context, pgid int) {
	for {
		if !groupAlive(pgid) {
			return
		}
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lineLogger turns a child's output into one log record per line.
type lineLogger struct {
	log   *slog.Logger
	level func(string) slog.Level
	buf   []byte
}

func (l *lineLogger) emit(line string) {
	lvl := slog.LevelInfo
	if l.level != nil {
		lvl = l.level(line)
	}
	l.log.Log(context.Background(), lvl, line)
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if line := string(l.buf[:i]); line != "" {
			l.emit(line)
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 {
		l.emit(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

var _ io.Writer = (*lineLogger)(nil)

// Run executes a short command (a config check) and returns its combined
// output; a non-zero exit is an error carrying that output.
func Run(ctx context.Context, path string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Credential is the user the child runs as (nil: the agent's own).
func (p *Process) Credential() *syscall.Credential { return p.spec.Credential }
