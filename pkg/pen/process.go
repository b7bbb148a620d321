package pen

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/pkg/rundir"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
	"golang.org/x/sys/unix"
)

// Dir is where pen's configs, control sockets and pid files live.
func Dir(runDir string) string { return runDir + "/pen" }

// ConfigFile is the live config of one pen service.
func ConfigFile(runDir string, k services.Key) string { return Dir(runDir) + "/" + configName(k) }

// ControlSocket is the unix control socket of one pen service (-C). A unix
// path, not a port: nothing on the network can reach it, and it cannot
// collide with a service's port.
func ControlSocket(runDir string, k services.Key) string {
	return controlDir(runDir) + "/" + strings.TrimSuffix(configName(k), ".cfg") + ".ctl"
}

// controlDir holds the control sockets: pen creates them after it starts,
// as the user it runs as, so this directory belongs to that user.
func controlDir(runDir string) string { return Dir(runDir) + "/ctl" }

// PidFile is where the supervisor records one pen's pid (pen's own -p is
// written after it drops privileges, where the run dir is not writable).
func PidFile(runDir string, k services.Key) string {
	return Dir(runDir) + "/" + strings.TrimSuffix(configName(k), ".cfg") + ".pid"
}

// ProcessConfig describes one pen process.
type ProcessConfig struct {
	Bin     string
	RunDir  string
	Service services.Key
	MaxConn int // -x: simultaneous connections
	Clients int // -c: client table size
	// User runs pen as this user when the agent is root (pen refuses a
	// control socket as root). It is set from exec on rather than with
	// pen's own -u, whose setuid would clear the death signal that takes
	// pen down with a killed agent; CAP_NET_BIND_SERVICE is kept so that
	// ports below 1024 still bind.
	User string
}

// Process runs the pen of one service and reloads it with SIGHUP (pen
// re-reads its -F file).
type Process struct {
	cfg     ProcessConfig
	log     *slog.Logger
	proc    *supervise.Process
	credErr error
}

// NewProcess prepares (does not start) pen for ConfigFile(RunDir, Service).
func NewProcess(c ProcessConfig, backoff supervise.Backoff, logger *slog.Logger) *Process {
	if logger == nil {
		logger = slog.Default()
	}
	k := c.Service
	args := []string{
		"-f", // foreground, supervised
		"-r", // round robin without client tracking
		"-W", // weights from the config
		"-F", ConfigFile(c.RunDir, k),
		"-C", ControlSocket(c.RunDir, k),
		"-x", strconv.Itoa(c.MaxConn),
		"-c", strconv.Itoa(c.Clients),
	}
	if k.Protocol == services.UDP {
		args = append(args, "-U")
	}
	args = append(args, strconv.Itoa(k.Port))
	spec := supervise.Spec{
		Name:       "pen-" + k.String(),
		Path:       c.Bin,
		Args:       args,
		Dir:        Dir(c.RunDir),
		PidFile:    PidFile(c.RunDir, k),
		StopSignal: syscall.SIGTERM,
		LogLevel:   logLevel,
	}
	p := &Process{cfg: c, log: logger}
	if c.User != "" && os.Geteuid() == 0 {
		cred, err := credential(c.User)
		if err != nil {
			// Start reports it: a user that does not exist is a
			// configuration error, not a reason to run pen as root.
			p.credErr = err
		} else {
			spec.Credential = cred
			// Only where it is needed: raising an ambient capability
			// fails in a container whose bounding set lacks it, and most
			// service ports are far above 1024.
			if k.Port < 1024 {
				spec.AmbientCaps = []uintptr{unix.CAP_NET_BIND_SERVICE}
			}
		}
	}
	p.proc = supervise.New(spec, backoff, logger)
	return p
}

// Credential is the uid and primary gid pen runs as when started as
// User; the agent gives pen's configs that group so pen can read them.
func Credential(name string) (*syscall.Credential, error) { return credential(name) }

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pen user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pen user %q: uid %q gid %q are not numeric", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// prepareControlDir makes the control socket directory, owned by the user
// pen runs as and closed to everyone else. A link or file found at its name
// is removed, and the owner and mode are set on the opened directory, never
// through a link (rundir.Mkdir).
func (p *Process) prepareControlDir() error {
	uid, gid := -1, -1
	if cred := p.proc.Credential(); cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	if err := rundir.Mkdir(controlDir(p.cfg.RunDir), 0o700, uid, gid); err != nil {
		return fmt.Errorf("pen control dir: %w", err)
	}
	return nil
}

// Start starts pen, first stopping one an earlier agent left on this
// service, and waits until its control socket answers (pen is then in its
// main loop with the config read).
func (p *Process) Start(ctx context.Context) error {
	k := p.cfg.Service
	if p.credErr != nil {
		return p.credErr
	}
	_ = supervise.StopStale(ctx, PidFile(p.cfg.RunDir, k), p.cfg.Bin, ConfigFile(p.cfg.RunDir, k), p.log)
	if err := p.prepareControlDir(); err != nil {
		return fmt.Errorf("pen %s: %w", k, err)
	}
	ctl := ControlSocket(p.cfg.RunDir, k)
	if st, err := os.Lstat(ctl); err == nil && st.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(ctl)
	}
	if err := p.proc.Start(ctx); err != nil {
		return fmt.Errorf("pen %s: %w", k, err)
	}
	for {
		conn, err := net.DialTimeout("unix", ctl, time.Second)
		if err == nil {
			conn.Close()
			// pen may open its control socket before its service port: the
			// service is only up once the kernel shows that port bound.
			if bound(k) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pen %s: waiting for its control socket: %w", k, ctx.Err())
		case <-p.proc.Done():
			return fmt.Errorf("pen %s: exited while starting", k)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Pid is pen's pid, 0 when it is not running.
func (p *Process) Pid() int { return p.proc.Pid() }

// Reload makes pen re-read its config. pen handles SIGHUP in its main loop
// and re-reads the file as it is then, so signals that collapse lose nothing.
func (p *Process) Reload(context.Context) error {
	if err := p.proc.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("pen %s reload: %w", p.cfg.Service, err)
	}
	return nil
}

// Stop terminates pen (SIGTERM) and kills it when ctx ends.
func (p *Process) Stop(ctx context.Context) error {
	err := p.proc.Stop(ctx)
	_ = os.Remove(ControlSocket(p.cfg.RunDir, p.cfg.Service))
	return err
}

// logLevel keeps pen's narration of every config line it reads (and of its
// table sizes) at debug; anything else pen says is worth a warning.
func logLevel(line string) slog.Level {
	for _, chatter := range []string{"do_cmd:", "Before:", "After:"} {
		if strings.Contains(line, chatter) {
			return slog.LevelDebug
		}
	}
	return slog.LevelWarn
}

// bound reports whether a socket is bound to the service's port, as the
// kernel lists it in /proc/net (LISTEN for TCP, any state for UDP). It reads
// the kernel's table rather than dialing: a test connection through pen would
// reach a backend.
func bound(k services.Key) bool {
	files := []string{"/proc/net/tcp", "/proc/net/tcp6"}
	if k.Protocol == services.UDP {
		files = []string{"/proc/net/udp", "/proc/net/udp6"}
	}
	port := fmt.Sprintf(":%04X ", k.Port)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || !strings.HasSuffix(fields[1]+" ", port) {
				continue
			}
			if k.Protocol == services.UDP || fields[3] == "0A" {
				return true
			}
		}
	}
	return false
}
