package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// proxy is one proxy (or, for pen, one set of processes) the loop keeps in
// step with the rendered files. apply changes nothing when the proxy's bytes
// did not change; a config its check rejects never replaces the running one.
type proxy interface {
	name() string
	apply(ctx context.Context, files *render.Files) error
	// serving reports whether the proxy runs some good config (or has
	// nothing to serve).
	serving() bool
	// refusals are the services the last successful apply left out
	// because the proxy refused their part of the config (isolate.go).
	refusals() []render.Refusal
	stop(ctx context.Context)
	// action says what the last apply did: "start", "reload", "runtime
	// update", "stop", "unchanged" (or tried to, when it failed).
	action() string
}

// How long a start or a reload may take before it counts as failed.
const (
	startTimeout  = 15 * time.Second
	reloadTimeout = 15 * time.Second
)

// errRejected marks a config the proxy's own check refused; errProxy a
// proxy that did not start or reload (worth retrying with the same file).
var (
	errRejected = errors.New("config rejected")
	errProxy    = errors.New("proxy failed")
)

// runner is what the HAProxy master and the nginx server have in common.
type runner interface {
	Start(ctx context.Context) error
	Reload(ctx context.Context) error
	Stop(ctx context.Context) error
	Pid() int
}

// single manages a proxy with one config file and one master process.
type single struct {
	proxyName string
	file      configFile
	check     func(ctx context.Context, candidate string) error
	newRunner func() runner
	pick      func(*render.Files) []byte
	log       *slog.Logger
	// runtime applies a change to the running proxy without a reload when
	// it can (HAProxy: servers of existing services); an error wrapping
	// haproxy.ErrNeedsReload means it cannot, any other that it failed.
	// Either way a checked reload follows. nil: always reload.
	runtime      func(ctx context.Context, old, new []services.Service) error
	pickServices func(*render.Files) []services.Service
	// isolate: when the check's message names services, leave them out
	// and check the rest (isolate.go). false: a rejected config is
	// rejected whole.
	isolate bool

	run         runner
	current     []byte             // the live file's bytes; nil before the first good config
	currentSvcs []services.Service // what current was rendered from (runtime only)
	wanted      bool               // the last files gave this proxy something to serve
	refused     []render.Refusal   // left out by the last apply
	did         string             // see proxy.action
}

func (s *single) name() string { return s.proxyName }

func (s *single) action() string { return s.did }

func (s *single) serving() bool { return s.run != nil || !s.wanted }

func (s *single) refusals() []render.Refusal { return s.refused }

func (s *single) apply(ctx context.Context, files *render.Files) error {
	s.refused = nil
	want := s.pick(files)
	s.wanted = want != nil
	s.did = "unchanged"
	if want == nil {
		// Nothing to serve (HAProxy without TCP services): stop.
		if s.run != nil {
			s.did = "stop"
			s.stop(ctx)
		}
		return nil
	}
	if s.run != nil && bytes.Equal(want, s.current) {
		return nil
	}
	if s.run != nil && s.runtime != nil && s.current != nil && s.applyRuntime(ctx, files, want) {
		s.did = "runtime update"
		return nil
	}
	s.did = "reload"
	if s.run == nil {
		s.did = "start"
	}
	tmp, files, refused, err := s.checkIsolating(ctx, files, want)
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		s.refused = refused
		want = s.pick(files)
		// What is left may be what already runs, or differ from it only
		// in servers (both checked just now).
		if s.run != nil && bytes.Equal(want, s.current) {
			s.did = "unchanged"
			s.file.discard(tmp)
			return nil
		}
		if s.run != nil && s.runtime != nil && s.current != nil && s.applyRuntime(ctx, files, want) {
			s.did = "runtime update"
			s.file.discard(tmp)
			return nil
		}
	}
	previous := s.current
	if err := s.file.commit(tmp); err != nil {
		return err
	}
	if s.run == nil {
		r := s.newRunner()
		sctx, cancel := context.WithTimeout(ctx, startTimeout)
		defer cancel()
		if err := r.Start(sctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = r.Stop(stopCtx)
			return fmt.Errorf("%s: start: %w: %w", s.proxyName, errProxy, err)
		}
		s.run, s.current = r, want
		s.keepServices(files)
		reloads.WithLabelValues(s.proxyName).Inc()
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	reloadStart := time.Now()
	defer func() {
		s.log.Debug("reload", "proxy", s.proxyName, "took", time.Since(reloadStart).Round(time.Millisecond))
	}()
	if err := s.run.Reload(rctx); err != nil {
		// The running proxy kept its old config; put the file back so a
		// restart after a crash runs that one too.
		if previous != nil {
			if werr := s.file.write(previous); werr != nil {
				s.log.Error("restoring the previous config", "proxy", s.proxyName, "err", werr)
			}
		}
		return fmt.Errorf("%s: reload: %w: %w", s.proxyName, errProxy, err)
	}
	s.current = want
	s.keepServices(files)
	reloads.WithLabelValues(s.proxyName).Inc()
	return nil
}

func (s *single) keepServices(files *render.Files) {
	if s.pickServices != nil {
		s.currentSvcs = s.pickServices(files)
	}
}

// applyRuntime tries the runtime path and reports whether it took the
// change. On success the new file is written to disk without a check and
// without a reload: it differs from the checked, running file only in
// server lines the running HAProxy has just accepted with the same
// keywords (add server), so a restart or the next reload starts from what
// is serving. The next reload checks its own candidate as always.
func (s *single) applyRuntime(ctx context.Context, files *render.Files, want []byte) bool {
	start := time.Now()
	svcs := s.pickServices(files)
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	if err := s.runtime(rctx, s.currentSvcs, svcs); err != nil {
		if errors.Is(err, haproxy.ErrNeedsReload) {
			s.log.Debug("change needs a reload", "proxy", s.proxyName, "reason", err)
		} else {
			runtimeFallbacks.WithLabelValues(s.proxyName).Inc()
			s.log.Warn("runtime update failed; reloading with the new config instead", "proxy", s.proxyName, "err", err)
		}
		return false
	}
	if err := s.file.write(want); err != nil {
		// The reload path writes (and checks) the file again.
		s.log.Error("writing the config applied at run time", "proxy", s.proxyName, "err", err)
		runtimeFallbacks.WithLabelValues(s.proxyName).Inc()
		return false
	}
	s.current, s.currentSvcs = want, svcs
	runtimeUpdates.WithLabelValues(s.proxyName).Inc()
	s.log.Info("servers updated without a reload", "proxy", s.proxyName, "took", time.Since(start).Round(time.Millisecond))
	return true
}

func (s *single) stop(ctx context.Context) {
	if s.run == nil {
		return
	}
	if err := s.run.Stop(ctx); err != nil {
		s.log.Warn("stop", "proxy", s.proxyName, "err", err)
	}
	s.run, s.current, s.currentSvcs = nil, nil, nil
}

// proxyEnv is what the proxies need from the agent.
type proxyEnv struct {
	runDir  string
	backoff supervise.Backoff
	log     *slog.Logger
	// procCtx outlives the agent's context: the proxies must keep running
	// through the shutdown delay and stop only when told to.
	procCtx context.Context
	// haproxy are the params haproxy.cfg is rendered with (PlanUpdate
	// compares two renders with them).
	haproxy haproxy.Params
}

func newHAProxy(bin string, env proxyEnv) *single {
	var master *haproxy.Master // set by newRunner; runtime runs only while it runs
	return &single{
		proxyName: "haproxy",
		file:      configFile{path: haproxy.ConfigFile(env.runDir)},
		check:     func(ctx context.Context, c string) error { return haproxy.Check(ctx, bin, c) },
		newRunner: func() runner {
			master = haproxy.NewMaster(bin, env.runDir, env.backoff, env.log)
			return &procRunner{r: master, ctx: env.procCtx}
		},
		isolate:      true,
		pick:         func(f *render.Files) []byte { return f.HAProxy },
		pickServices: func(f *render.Files) []services.Service { return f.HAProxyServices },
		runtime: func(ctx context.Context, old, new []services.Service) error {
			u, err := haproxy.PlanUpdate(env.haproxy, old, new)
			if err != nil {
				return err
			}
			return master.Apply(ctx, u)
		},
		log: env.log,
	}
}

func newNginx(bin string, env proxyEnv) *single {
	return &single{
		proxyName: "nginx",
		file:      configFile{path: nginx.ConfigFile(env.runDir)},
		check:     func(ctx context.Context, c string) error { return nginx.Check(ctx, bin, env.runDir, c) },
		newRunner: func() runner {
			return &procRunner{r: nginx.NewServer(bin, env.runDir, env.backoff, env.log), ctx: env.procCtx}
		},
		pick:    func(f *render.Files) []byte { return f.Nginx },
		isolate: true,
		log:     env.log,
	}
}

// procRunner starts a proxy under the process context rather than the
// caller's: a start's own deadline must not end the proxy it started.
type procRunner struct {
	r interface {
		runner
	}
	ctx context.Context
}

func (p *procRunner) Start(ctx context.Context) error {
	// The proxy lives under p.ctx; ctx only bounds the wait for it to be up.
	errc := make(chan error, 1)
	go func() { errc <- p.r.Start(p.ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("not up in time: %w", ctx.Err())
	}
}
func (p *procRunner) Reload(ctx context.Context) error { return p.r.Reload(ctx) }
func (p *procRunner) Stop(ctx context.Context) error   { return p.r.Stop(ctx) }
func (p *procRunner) Pid() int                         { return p.r.Pid() }

// penSet runs one pen per pen service: started when a service appears,
// reloaded when its file changes, stopped when it goes away.
type penSet struct {
	bin     string
	env     proxyEnv
	clients int
	maxConn int
	user    string
	gid     int // the group pen's configs get so pen (as user) reads them; 0: none

	procs   map[services.Key]*pen.Process
	current map[services.Key][]byte
	failed  bool
	refused []render.Refusal // left out by the last apply
	did     string           // see proxy.action
}

// serviceErr is one pen service's failure: the agent explains it under
// that service's port.
type serviceErr struct {
	key services.Key
	err error
}

func (e *serviceErr) Error() string { return e.err.Error() }
func (e *serviceErr) Unwrap() error { return e.err }

func newPenSet(bin string, env proxyEnv, maxConn, clients int, user string) *penSet {
	p := &penSet{bin: bin, env: env, maxConn: maxConn, clients: clients, user: user,
		procs: map[services.Key]*pen.Process{}, current: map[services.Key][]byte{}}
	if user != "" && os.Geteuid() == 0 {
		if cred, err := pen.Credential(user); err == nil {
			p.gid = int(cred.Gid)
		}
	}
	return p
}

func (p *penSet) name() string { return "pen" }

func (p *penSet) action() string { return p.did }

func (p *penSet) serving() bool { return !p.failed }

func (p *penSet) refusals() []render.Refusal { return p.refused }

// apply gives each pen service its file. pen runs one process per service,
// so a service whose config is refused (it failed to render or to parse)
// holds back nothing else: its own pen keeps its last good config, or is
// not started when it has none, and it is reported in refusals.
func (p *penSet) apply(ctx context.Context, files *render.Files) error {
	var errs []error
	p.refused = slices.Clone(files.PenRefused)
	keep := map[services.Key]bool{}
	for _, r := range files.PenRefused {
		keep[r.Service] = true
	}
	var did [3]int // started, reloaded, stopped
	for _, k := range slices.SortedFunc(maps.Keys(p.procs), services.Key.Compare) {
		if _, ok := files.Pen[k]; !ok && !keep[k] {
			p.stopOne(ctx, k)
			did[2]++
		}
	}
	missing := false
	for _, k := range slices.SortedFunc(maps.Keys(files.Pen), services.Key.Compare) {
		running, same := p.procs[k] != nil, bytes.Equal(files.Pen[k], p.current[k])
		err := p.applyOne(ctx, k, files.Pen[k])
		if errors.Is(err, errRejected) {
			// Refused, not failed: it does not keep /status from OK.
			p.refused = append(p.refused, render.Refusal{Proxy: "pen", Service: k, Name: files.PenName(k), Message: err.Error()})
			continue
		}
		if err != nil {
			errs = append(errs, &serviceErr{key: k, err: err})
		}
		switch {
		case !running:
			did[0]++
		case !same:
			did[1]++
		}
		if p.procs[k] == nil {
			missing = true
		}
	}
	p.failed = missing
	p.did = penAction(did)
	return errors.Join(errs...)
}

// penAction summarises one apply of the pen set: "start 2, reload 1".
func penAction(did [3]int) string {
	var parts []string
	for i, verb := range []string{"start", "reload", "stop"} {
		if did[i] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", verb, did[i]))
		}
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, ", ")
}

func (p *penSet) applyOne(ctx context.Context, k services.Key, want []byte) error {
	proc := p.procs[k]
	if proc != nil && bytes.Equal(want, p.current[k]) {
		return nil
	}
	// pen has no check mode and ignores what it does not understand: our
	// parser is the check.
	if err := pen.Parse(want); err != nil {
		return fmt.Errorf("pen %s: %w: %w", k, errRejected, err)
	}
	file := configFile{path: pen.ConfigFile(p.env.runDir, k), gid: p.gid}
	if err := file.write(want); err != nil {
		return fmt.Errorf("pen %s: %w", k, err)
	}
	if proc == nil {
		proc = pen.NewProcess(pen.ProcessConfig{
			Bin: p.bin, RunDir: p.env.runDir, Service: k, MaxConn: p.maxConn, Clients: p.clients, User: p.user,
		}, p.env.backoff, p.env.log)
		r := &procRunner{r: proc, ctx: p.env.procCtx}
		sctx, cancel := context.WithTimeout(ctx, startTimeout)
		defer cancel()
		if err := r.Start(sctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = proc.Stop(stopCtx)
			file.remove()
			return fmt.Errorf("pen %s: start: %w: %w", k, errProxy, err)
		}
		p.procs[k] = proc
		p.current[k] = want
		reloads.WithLabelValues("pen").Inc()
		return nil
	}
	if err := proc.Reload(ctx); err != nil {
		return fmt.Errorf("%w: %w", errProxy, err)
	}
	p.current[k] = want
	reloads.WithLabelValues("pen").Inc()
	return nil
}

func (p *penSet) stopOne(ctx context.Context, k services.Key) {
	if proc := p.procs[k]; proc != nil {
		if err := proc.Stop(ctx); err != nil {
			p.env.log.Warn("stop", "proxy", "pen", "service", k.String(), "err", err)
		}
	}
	delete(p.procs, k)
	delete(p.current, k)
	configFile{path: pen.ConfigFile(p.env.runDir, k)}.remove()
}

func (p *penSet) stop(ctx context.Context) {
	done := make(chan struct{})
	n := 0
	for k := range p.procs {
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			if err := p.procs[k].Stop(ctx); err != nil {
				p.env.log.Warn("stop", "proxy", "pen", "service", k.String(), "err", err)
			}
		}()
	}
	for range n {
		<-done
	}
	clear(p.procs)
	clear(p.current)
}
