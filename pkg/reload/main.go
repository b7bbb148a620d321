// Package reload is proxymatic-reload's agent: it follows services.yaml
// (pkg/filewatch), renders the proxies' configs (pkg/render), checks each
// with the proxy itself, swaps in only what changed and reloads HAProxy,
// nginx and pen without dropping a connection (pkg/haproxy, pkg/nginx,
// pkg/pen run them under pkg/supervise). A bad file or a config a proxy
// rejects never replaces the running one. See README.md for the loop and
// the decisions behind it.
package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/filewatch"
	"github.com/meltwater/proxymatic/pkg/hangup"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/rundir"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/statuspage"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// Main runs proxymatic-reload with a validated configuration until ctx is
// done; with --dry-run it renders, checks and returns.
func Main(ctx context.Context, cfg *config.Reload, logger *slog.Logger, stdout io.Writer) error {
	services.AllowLinkLocal(cfg.AllowLinkLocal)
	opts := options(cfg)
	if cfg.DryRun {
		return render.DryRun(ctx, opts, cfg.Services, cfg.OutputDir, cfg.Check, stdout)
	}
	st := status.New(nil)
	var ln net.Listener
	if cfg.StatusEndpoint != "" {
		var err error
		if ln, err = status.Listen(cfg.StatusEndpoint); err != nil {
			return err
		}
	}
	a, err := newAgent(cfg, opts, st, logger, bins{})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	if cfg.HAProxy {
		st.Handle("/haproxy", haproxyStats(haproxy.StatsSocket(cfg.RunDir)))
		st.Handle("/haproxy/", haproxyStats(haproxy.StatsSocket(cfg.RunDir)))
	}
	hangups := make(chan struct{}, 1)
	a.hangup = hangups
	stopHangups := hangup.Notify(hangups)
	defer stopHangups()
	explain.Export(a.report.book)
	p := &page{report: a.report, status: st, ring: logging.RingOf(logger), path: cfg.Services,
		syncURL: cfg.SyncStatusURL, haproxy: cfg.HAProxy, started: time.Now()}
	st.Handle("GET "+statuspage.ExplainPath, statuspage.ExplainHandler(a.report.book))
	st.Handle("GET /proxymatic", statuspage.Handler(p.view))
	st.Handle("GET /{$}", rootRedirect(a.report))
	return serve(ctx, a, st, ln, cfg.ShutdownDelay, cfg.StopTimeout, secondSignal, logger)
}

// secondSignal listens for a SIGTERM or SIGINT after the first one has
// ended the run: it cuts the shutdown delay short. The combined image runs
// with a delay long enough to keep serving until the container is killed
// (see deploy/README.md); outside a container this is how to stop it now.
func secondSignal() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	return c, func() { signal.Stop(c) }
}

// serve runs the agent and the status endpoint until ctx is done, then shuts
// down: /status turns 503 at once, the proxies stop after delay (or at a
// signal from again, when set), bounded by stopTimeout. An agent that ends
// on its own (its file watcher failed) stops the proxies without the delay
// and its error is returned.
func serve(ctx context.Context, a *agent, st *status.Server, ln net.Listener, delay, stopTimeout time.Duration,
	again func() (<-chan os.Signal, func()), logger *slog.Logger) error {
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStatus()
	statusDone := make(chan error, 1)
	// statusFailed ends the shutdown delay when the endpoint fails; nil
	// without an endpoint, which is no reason to skip the delay (the
	// combined image's drain is about the proxies serving).
	var statusFailed chan error
	if ln != nil {
		go func() { statusDone <- st.Serve(statusCtx, ln) }()
		statusFailed = statusDone
	} else {
		statusDone <- nil
	}

	// The agent outlives ctx by the shutdown delay: while /status says
	// TERMINATING the proxies keep serving and keep following the file, as
	// the original's did until it was killed.
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgent()
	runDone := make(chan error, 1)
	go func() { runDone <- a.run(agentCtx) }()
	var runErr error
	failed := false
	select {
	case <-ctx.Done():
	case runErr = <-runDone:
		failed = true
	}
	st.Set(status.Terminating)
	if failed {
		// Nothing asked for a drain: the agent no longer follows the
		// file. Waiting out the delay (a year in the combined image)
		// would leave a process that looks alive to whatever should
		// restart it.
		logger.Error("the agent stopped on its own; stopping the proxies without the shutdown delay", "err", runErr)
	} else {
		drain(delay, again, statusFailed, logger)
		stopAgent()
		runErr = <-runDone
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	a.shutdown(stopCtx)
	cancel()
	a.stopProcs()
	stopStatus()
	statusErr := <-statusDone
	logger.Info("stopped")
	return errors.Join(runErr, statusErr)
}

// drain keeps the proxies serving for the shutdown delay after a stop was
// asked for, ending it early at a signal from again (when set) or when
// the status endpoint fails.
func drain(delay time.Duration, again func() (<-chan os.Signal, func()), statusDone chan error, logger *slog.Logger) {
	var sig <-chan os.Signal
	if again != nil {
		c, stop := again()
		defer stop()
		sig = c
	}
	logger.Info("terminating: /status reports TERMINATING; the proxies serve until the shutdown delay ends (or a second SIGTERM/SIGINT)", "delay", delay)
	delayed := time.NewTimer(delay)
	defer delayed.Stop()
	select {
	case <-delayed.C:
	case s := <-sig:
		logger.Info("second signal: the shutdown delay ends now", "signal", s.String())
	case err := <-statusDone:
		statusDone <- err
	}
}

// bins overrides the proxies' binaries (tests); empty fields are looked up.
type bins struct{ haproxy, nginx, pen string }

func lookBin(override, name string) (string, error) {
	if override != "" {
		return override, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if st, err := os.Stat(dir + "/" + name); err == nil && !st.IsDir() {
			return dir + "/" + name, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (looked on PATH, /usr/sbin, /usr/local/sbin)", name)
}

func options(cfg *config.Reload) render.Options {
	o := render.Options{
		HAProxy:        cfg.HAProxy,
		VHostDomain:    cfg.VHostDomain,
		VHostPort:      cfg.VHostPort,
		ProxyProtocol:  cfg.ProxyProtocol,
		MaxConnections: cfg.MaxConnections,
		PenServers:     cfg.PenServers,
		PenClients:     cfg.PenClients,
		RunDir:         cfg.RunDir,
		TemplateDir:    cfg.TemplateDir,
		FDLimit:        raiseFDLimit(),
		HardStopAfter:  cfg.HardStopAfter,
	}
	// As root, nginx's workers and pen drop to nobody (pen refuses its
	// control socket as root otherwise).
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("nobody"); err == nil {
			o.NginxUser = "nobody"
			if _, err := user.LookupGroup("nogroup"); err == nil {
				o.NginxGroup = "nogroup"
			}
		}
		// HAProxy's master stays root (it binds, re-execs on reload and
		// reads the state file); its workers drop to the packaged user.
		if _, err := user.Lookup("haproxy"); err == nil {
			o.HAProxyUser = "haproxy"
			if _, err := user.LookupGroup("haproxy"); err == nil {
				o.HAProxyGroup = "haproxy"
			}
		}
	}
	return o
}

// raiseFDLimit lifts the agent's soft RLIMIT_NOFILE to its hard limit (the
// proxies inherit it) and returns the hard limit, which HAProxy's maxconn
// must fit under; 0 (no cap) when it is unknown or unlimited.
func raiseFDLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			slog.Warn("cannot raise the soft file-descriptor limit to the hard one", "soft", rl.Cur, "hard", rl.Max, "err", err)
		}
	}
	if rl.Max > 1<<30 { // unlimited (RLIM_INFINITY) or near it
		return 0
	}
	return int(rl.Max)
}

func newAgent(cfg *config.Reload, opts render.Options, st *status.Server, logger *slog.Logger, b bins) (*agent, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// Created when missing, never re-moded; as root, refused when another
	// user could write it (see pkg/rundir).
	if err := rundir.Prepare(cfg.RunDir); err != nil {
		return nil, err
	}
	// pen and nginx's workers drop to this user: a run dir it cannot
	// reach would make pen fail forever (fork/exec: permission denied).
	if opts.NginxUser != "" {
		cred, err := pen.Credential(opts.NginxUser)
		if err != nil {
			return nil, err
		}
		who := "pen"
		if cfg.VHostDomain != "" {
			who = "pen and nginx's workers"
		}
		if err := rundir.CheckReachable(cfg.RunDir, opts.NginxUser, cred.Uid, cred.Gid, who); err != nil {
			return nil, err
		}
	}
	templates, err := render.LoadTemplates(cfg.TemplateDir)
	if err != nil {
		return nil, err
	}
	slotsPath := pen.SlotsFile(cfg.RunDir)
	slots, err := pen.LoadSlots(slotsPath, cfg.PenServers)
	if err != nil {
		logger.Warn("pen slots unreadable; starting empty (servers may change slots once)", "path", slotsPath, "err", err)
		slots = pen.NewSlots(cfg.PenServers)
	}
	vhostsPath := render.VHostClaimsFile(cfg.RunDir)
	vhosts, err := render.LoadVHostClaims(vhostsPath)
	if err != nil {
		logger.Warn("virtual host holders unreadable; starting empty (a name two services claim may change hands once)", "path", vhostsPath, "err", err)
	}
	procCtx, stopProcs := context.WithCancel(context.Background())
	env := proxyEnv{runDir: cfg.RunDir, backoff: supervise.DefaultBackoff, log: logger, procCtx: procCtx,
		haproxy: render.HAProxyParams(opts, templates)}
	a := &agent{
		opts: opts, templates: templates, slots: slots, slotsPath: slotsPath, vhosts: vhosts, vhostsPath: vhostsPath,
		status: st, log: logger, stopProcs: stopProcs,
		watcher: &filewatch.Watcher{Path: cfg.Services, Logger: logger},
	}
	if cfg.HAProxy {
		bin, err := lookBin(b.haproxy, "haproxy")
		if err != nil {
			stopProcs()
			return nil, err
		}
		stopStale(haproxy.PidFile(cfg.RunDir), bin, haproxy.ConfigFile(cfg.RunDir), cfg.StopTimeout, logger)
		a.proxies = append(a.proxies, newHAProxy(bin, env))
	}
	if cfg.VHostDomain != "" {
		bin, err := lookBin(b.nginx, "nginx")
		if err != nil {
			stopProcs()
			return nil, err
		}
		if err := nginx.MakeDirs(cfg.RunDir); err != nil {
			stopProcs()
			return nil, err
		}
		stopStale(nginx.AgentPidFile(cfg.RunDir), bin, nginx.ConfigFile(cfg.RunDir), cfg.StopTimeout, logger)
		a.proxies = append(a.proxies, newNginx(bin, env))
	}
	// pen serves UDP always and TCP without --haproxy.
	bin, err := lookBin(b.pen, "pen")
	if err != nil {
		stopProcs()
		return nil, err
	}
	if err := rundir.Mkdir(pen.Dir(cfg.RunDir), rundir.DirMode, -1, -1); err != nil {
		stopProcs()
		return nil, fmt.Errorf("pen dir: %w", err)
	}
	// pens an earlier agent left behind, whatever services they served.
	stale, _ := filepath.Glob(filepath.Join(pen.Dir(cfg.RunDir), "*.pid"))
	for _, pidFile := range stale {
		stopStale(pidFile, bin, strings.TrimSuffix(pidFile, ".pid")+".cfg", cfg.StopTimeout, logger)
	}
	a.proxies = append(a.proxies, newPenSet(bin, env, cfg.MaxConnections, cfg.PenClients, opts.NginxUser))
	// After the leftovers are gone, so that their ports do not read as
	// held by another process.
	vhostPort := 0
	if cfg.VHostDomain != "" {
		vhostPort = cfg.VHostPort
	}
	a.ports = newPortGuard(vhostPort)
	for _, p := range a.proxies {
		initProxyMetrics(p.name())
	}
	a.report = newReport(explain.NewBook(0, 0), a.proxies)
	return a, nil
}

// stopStale ends a proxy an earlier agent left behind, before the first
// file is applied: its ports must be free by then.
func stopStale(pidFile, bin, config string, timeout time.Duration, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := supervise.StopStale(ctx, pidFile, bin, config, logger); err != nil {
		logger.Warn("proxy left by an earlier agent", "pid_file", pidFile, "err", err)
	}
}

// haproxyStats reverse-proxies HAProxy's stats page from the unix socket
// its stats frontend binds.
func haproxyStats(socket string) http.Handler {
	target := &url.URL{Scheme: "http", Host: "haproxy-stats"}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "HAProxy stats unavailable: "+err.Error(), http.StatusBadGateway)
	}
	return rp
}
