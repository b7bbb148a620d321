package reload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/filewatch"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
)

// agent follows the services file and keeps the proxies in step with it.
// Everything it does happens on the watcher's goroutine, one file at a time.
type agent struct {
	opts      render.Options
	templates *render.Templates
	slots     *pen.Slots
	slotsPath string
	// vhosts remembers which service holds each virtual host name, saved
	// at vhostsPath so that a restart keeps the holders too.
	vhosts     *render.VHostClaims
	vhostsPath string
	proxies    []proxy
	status     *status.Server
	log        *slog.Logger
	watcher    *filewatch.Watcher
	stopProcs  context.CancelFunc // ends the proxies' process context, after shutdown

	ports *portGuard

	report   *report         // for the status page and /status/explain; nil: none
	rejected []explain.Entry // services the file being applied held that were invalid

	lastHash string // hex SHA-256 of the last file applied without error
	seenFile bool   // the services file has existed since start
	// hangup, when set, makes run read the file again and apply it
	// (SIGHUP), whether or not it changed.
	hangup <-chan struct{}
	// applied is called after each file has been applied (tests measure
	// with it); nil in production.
	applied func(hash [sha256.Size]byte, err error)
}

// retryDelay is how long after a failed start or reload the same file is
// applied again. A config a proxy rejected is not retried: only a new file
// can heal it.
const retryDelay = 5 * time.Second

// run applies the file until ctx is done. The proxies keep running: stop
// them with shutdown.
func (a *agent) run(ctx context.Context) error {
	// The watcher hands over the latest snapshot and never waits for an
	// apply: a snapshot not yet applied is replaced by a newer one.
	latest := make(chan filewatch.Snapshot, 1)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- a.watcher.Run(ctx, func(_ context.Context, s filewatch.Snapshot) {
			select {
			case <-latest:
			default:
			}
			latest <- s
		})
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var last *filewatch.Snapshot
	for {
		select {
		case <-ctx.Done():
			return <-watchDone
		case err := <-watchDone:
			return err
		case s := <-latest:
			last = &s
		case <-retry.C:
			if last == nil {
				continue
			}
			a.log.Info("applying the services file again after a failed start or reload")
		case <-a.hangup:
			a.log.Info("SIGHUP: reading the services file and applying it again", "path", a.watcher.Path)
			s := a.watcher.Read()
			last = &s
		}
		err := a.applySnapshot(ctx, *last)
		if a.applied != nil {
			a.applied(last.Hash, err)
		}
		retry.Stop()
		if err != nil && transient(err) {
			retry.Reset(retryDelay)
		}
	}
}

// transient reports whether err may go away without a new file: a proxy
// that failed to start or reload, rather than a file or config that is bad.
func transient(err error) bool { return errors.Is(err, errProxy) }

func (a *agent) applySnapshot(ctx context.Context, snap filewatch.Snapshot) error {
	if snap.Err != nil && errors.Is(snap.Err, fs.ErrNotExist) && a.lastHash == "" && !a.seenFile {
		// Before proxymatic-sync's first write (every start of the
		// combined image and of a compose set-up): not an error yet.
		a.log.Info("waiting for the services file: proxymatic-sync has not written it yet", "path", a.watcher.Path)
		a.degrade("services file", "not written yet")
		a.report.fileUnusable(a.watcher.Path, snap.Err)
		return snap.Err
	}
	a.seenFile = true
	if snap.Err != nil {
		fileErrors.Inc()
		a.log.Error("services file unusable; the running config stays", "path", a.watcher.Path, "err", snap.Err)
		a.degrade("services file", "unusable, the proxies run the last good one: %v", snap.Err)
		a.report.fileUnusable(a.watcher.Path, snap.Err)
		return snap.Err
	}
	d, err := services.Parse(snap.Data)
	if err != nil {
		fileErrors.Inc()
		a.log.Error("services file unusable; the running config stays", "path", a.watcher.Path, "err", err)
		a.degrade("services file", "unusable, the proxies run the last good one: %v", err)
		a.report.fileUnusable(a.watcher.Path, err)
		return err
	}
	a.degrade("services file", "")
	for _, w := range d.Warnings {
		a.log.Warn("services file", "warning", w)
	}
	for _, r := range d.Rejected {
		for _, p := range r.Problems {
			a.log.Error("service left out", "service", r.Service.Name, "port", r.Service.Port, "line", p.Line, "field", p.Field, "reason", p.Msg)
		}
	}
	droppedServices.Set(float64(len(d.Rejected)))
	droppedServicesTotal.Add(float64(len(d.Rejected)))
	a.rejected = rejectedEntries(a.opts, d.Rejected)
	return a.apply(ctx, d.File.Services, snap.Hash)
}

// apply renders the services and hands every proxy its files.
func (a *agent) apply(ctx context.Context, svcs []services.Service, hash [sha256.Size]byte) (err error) {
	start := time.Now()
	out := outcome{opts: a.opts, svcs: svcs, rejected: a.rejected, proxies: a.proxies, hash: hex.EncodeToString(hash[:])}
	a.rejected = nil
	defer func() {
		out.took, out.err = time.Since(start), err
		a.report.applied(out)
	}()
	var errBusy error
	if a.ports != nil {
		var busy []portBusy
		svcs, busy = a.ports.filter(svcs)
		out.busy = busy
		for _, b := range busy {
			a.log.Error("service left out: its port is held by another process; retrying", "service", b.Service.Name,
				"key", b.Service.Key().String(), "err", b.Err)
		}
		if len(busy) > 0 {
			// errProxy: transient, so the file is applied again after
			// retryDelay and the service comes up once its port is free.
			errBusy = fmt.Errorf("%w: %d service(s) left out, their ports held by another process", errProxy, len(busy))
			a.degrade("ports", "%d service(s) of the services file left out, their ports held by another process", len(busy))
		} else {
			a.degrade("ports", "")
		}
	}
	if a.vhosts == nil {
		a.vhosts = &render.VHostClaims{}
	}
	plan := render.NewPlanHeld(a.opts, svcs, a.vhosts)
	conflicts := 0
	out.plan = plan
	for _, sk := range plan.Skipped {
		if sk.Code == explain.VHostConflict {
			conflicts++
			a.log.Warn("virtual host name claimed by two services: the one that held it keeps it", "service", sk.Name,
				"key", sk.Service.String(), "holder", sk.Holder.String(), "reason", sk.Reason)
			continue
		}
		a.log.Warn("service not served by every proxy", "service", sk.Name, "key", sk.Service.String(), "reason", sk.Reason)
	}
	vhostConflicts.Set(float64(conflicts))
	if a.opts.VHostDomain != "" && a.vhostsPath != "" {
		if err := a.vhosts.Save(a.vhostsPath); err != nil {
			a.log.Warn("saving virtual host holders (only their stability across restarts is lost)", "err", err)
		}
	}
	files, err := render.Render(a.opts, a.templates, plan, a.slots)
	if err != nil {
		for _, p := range a.proxies {
			reloadFailures.WithLabelValues(p.name()).Inc()
		}
		a.log.Error("render failed; the running config stays", "err", err)
		a.degrade("render", "the proxies run a config older than the services file: %v", err)
		return fmt.Errorf("render: %w", err)
	}
	a.degrade("render", "")
	out.files = files
	for k, n := range files.PenDropped {
		a.log.Warn("pen service has more servers than slots; some are left out", "service", k.String(), "left_out", n)
	}
	if err := a.slots.Save(a.slotsPath); err != nil {
		a.log.Warn("saving pen slots (only their stability across restarts is lost)", "err", err)
	}
	// The proxies are independent: each takes its files at the same time,
	// so a slow HAProxy reload does not delay nginx or pen.
	results := make([]error, len(a.proxies))
	var wg sync.WaitGroup
	for i, p := range a.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = a.applyProxy(ctx, p, files)
		}()
	}
	wg.Wait()
	out.results = results
	out.actions = make([]string, len(a.proxies))
	for i, p := range a.proxies {
		out.actions[i] = p.action()
	}
	var errs []error
	if errBusy != nil {
		errs = append(errs, errBusy)
	}
	for i, err := range results {
		switch {
		case err == nil:
			a.degrade(a.proxies[i].name(), "")
		case ctx.Err() != nil:
			// Shutting down: nothing was decided.
		default:
			a.degrade(a.proxies[i].name(), "runs a config older than the services file (sha256 %s): %v", shortHash(hash), err)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	serving := true
	for _, p := range a.proxies {
		serving = serving && p.serving()
	}
	if serving {
		a.status.Set(status.OK)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	h := hex.EncodeToString(hash[:])
	if h != a.lastHash {
		if a.lastHash != "" {
			lastGoodHash.DeleteLabelValues(a.lastHash)
		}
		lastGoodHash.WithLabelValues(h).Set(1)
		a.lastHash = h
	}
	lastGoodTime.SetToCurrentTime()
	applySeconds.Observe(time.Since(start).Seconds())
	a.log.Info("services file applied", "services", len(svcs), "sha256", h[:12], "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (a *agent) applyProxy(ctx context.Context, p proxy, files *render.Files) error {
	start := time.Now()
	if err := p.apply(ctx, files); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			a.log.Info("cancelled while applying (shutting down); the running config stays", "proxy", p.name(), "err", err)
			return err
		}
		reloadFailures.WithLabelValues(p.name()).Inc()
		proxyHealthy.WithLabelValues(p.name()).Set(0)
		if errors.Is(err, errRejected) {
			a.log.Error("proxy rejected its new config; the running one stays", "proxy", p.name(), "err", err)
		} else {
			a.log.Error("proxy did not take its new config", "proxy", p.name(), "err", err)
		}
		return err
	}
	proxyHealthy.WithLabelValues(p.name()).Set(1)
	a.reportRefusals(p)
	a.log.Debug("proxy in step", "proxy", p.name(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// shutdown stops every proxy at once, each bounded by ctx.
func (a *agent) shutdown(ctx context.Context) {
	done := make(chan struct{}, len(a.proxies))
	for _, p := range a.proxies {
		go func() {
			p.stop(ctx)
			done <- struct{}{}
		}()
	}
	for range a.proxies {
		<-done
	}
}

// degrade tells /status why the proxies do not run what the services file
// says (an empty format clears key): it answers 200 DEGRADED with the
// reasons until the next apply puts key in step.
func (a *agent) degrade(key, format string, args ...any) {
	if a.status == nil {
		return
	}
	if format == "" {
		a.status.Degrade(key, "")
		return
	}
	a.status.Degrade(key, fmt.Sprintf(format, args...))
}

func shortHash(h [sha256.Size]byte) string { return hex.EncodeToString(h[:6]) }
