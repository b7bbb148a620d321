// Package syncer is the proxymatic-sync daemon: it follows every configured
// discovery source, merges their states by precedence into one normalized
// services.yaml and replaces that file atomically whenever — and only when —
// its bytes change. Sources are consumed through the small Source interface;
// the file is written through a Sink (atomicfile in production).
//
// The rules it keeps: a source's failure never removes what it last read
// (an outage cannot empty or shrink the file); nothing is written until
// every source has had one good read; per (port, protocol) the earlier
// source wins (Marathon over registrator); invalid services are dropped
// before anything is encoded. See README.md for the decisions behind them.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
)

// DefaultStopTimeout bounds how long the daemon waits for its sources to
// stop after its context is done. With the status endpoint's own 2 s
// shutdown bound after it, the process ends within 5 s of SIGTERM.
const DefaultStopTimeout = 3 * time.Second

// Sink receives each encoded services.yaml. It reports whether anything
// changed, so an identical state is not counted as a write.
// *atomicfile.Writer is the production Sink.
type Sink interface {
	Write(data []byte) (changed bool, err error)
}

// StreamSink is a Sink that can take the file as a stream, without the
// whole encoded document in memory (the dry run's stdout).
type StreamSink interface {
	Sink
	WriteFile(f *services.File) (n int64, err error)
}

// StatusSetter is told when the daemon is ready and when it is stopping
// (*status.Server).
type StatusSetter interface {
	Set(status.State)
}

// Daemon merges its sources into one file. Set the fields, then call Run or
// Once; a Daemon is used once.
type Daemon struct {
	// Sources in precedence order: for a (port, protocol) claimed by
	// several, the first source's service is published.
	Sources []Source
	Sink    Sink
	Status  StatusSetter // optional
	Logger  *slog.Logger

	// ExposeHost keeps servers whose port is the service's own port
	// (net=host tasks); by default they are left out.
	ExposeHost bool

	// Previous is what the file held at start-up; changes are logged
	// relative to it, so a restart does not log every service as Added.
	Previous []services.Service

	// WaitWarning is how often start-up logs the sources it still waits
	// for (default one minute).
	WaitWarning time.Duration
	// FetchTimeout bounds Once's reads (0: only the context bounds them).
	FetchTimeout time.Duration
	// StopTimeout bounds how long Run waits for its sources to stop
	// (default DefaultStopTimeout).
	StopTimeout time.Duration

	// Refresh, when set, makes Run read every source once more whenever a
	// value arrives (SIGHUP): each source's Fetch runs beside its Watch and
	// its result is merged like any update. Asked for while one runs, one
	// more follows it (the running one may have read a source already).
	Refresh <-chan struct{}

	// onUpdate, when set by a test, runs after each batch of source
	// updates has been handled.
	onUpdate func()
}

func (d *Daemon) newMerger() *merger {
	m := newMerger(d.Logger, d.names(), d.Previous)
	m.exposeHost = d.ExposeHost
	return m
}

func (d *Daemon) names() []string {
	names := make([]string, len(d.Sources))
	for i, s := range d.Sources {
		names[i] = s.Name()
	}
	return names
}

// Once reads every source once, merges and writes the result. If any source
// fails, nothing is written and the failures are returned.
func (d *Daemon) Once(ctx context.Context) error {
	if d.FetchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.FetchTimeout)
		defer cancel()
	}
	results := make([][]services.Service, len(d.Sources))
	errs := make([]error, len(d.Sources))
	var wg sync.WaitGroup
	for i, src := range d.Sources {
		wg.Go(func() {
			svcs, err := src.Fetch(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("source %s: %w", src.Name(), err)
				return
			}
			// Fetch's services are ours (see Source), so unlike Watch's
			// they need no copy.
			results[i] = svcs
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nothing written: %w", err)
	}
	m := d.newMerger()
	for i, svcs := range results {
		m.set(i, svcs)
	}
	return d.publish(m)
}

// Run follows every source until ctx is done, then reports Terminating and
// waits (up to StopTimeout) for the sources to stop. It returns nil after a
// clean stop, or the configuration error a source stopped with.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := d.newMerger()
	box := newMailbox()
	// Buffered for every source, so a failing source never blocks on a
	// daemon that is already shutting down.
	failed := make(chan error, len(d.Sources))
	var wg sync.WaitGroup
	for i, src := range d.Sources {
		wg.Go(func() {
			err := src.Watch(ctx, func(svcs []services.Service) { box.put(i, cloneAll(svcs)) })
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("stopped following without an error")
			}
			failed <- fmt.Errorf("source %s: %w", src.Name(), err)
		})
	}

	wait := d.WaitWarning
	if wait <= 0 {
		wait = time.Minute
	}
	waitTicker := time.NewTicker(wait)
	defer waitTicker.Stop()
	ready := false
	var runErr error
	var refreshing sync.WaitGroup
	refreshDone := make(chan struct{}, 1)
	busy, pending := false, false
	refresh := func() {
		d.refreshAll(ctx, box)
		refreshDone <- struct{}{}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-failed:
			break loop
		case <-d.Refresh:
			if busy {
				// It may have read a source already: one more follows.
				pending = true
				d.Logger.Info("refresh requested (SIGHUP) while one is running; another follows it")
				continue
			}
			busy = true
			d.Logger.Info("refresh requested (SIGHUP): reading every source now", "sources", strings.Join(d.names(), ","))
			refreshing.Go(refresh)
		case <-refreshDone:
			busy = false
			if pending {
				pending, busy = false, true
				refreshing.Go(refresh)
			}
		case <-waitTicker.C:
			if !ready {
				d.Logger.Warn("services.yaml not written yet: waiting for a first good read", "sources", strings.Join(m.waiting(), ","))
			}
		case <-box.ready:
			for i, svcs := range box.take() {
				m.set(i, svcs)
			}
			if m.complete() {
				if err := d.publish(m); err == nil && !ready {
					ready = true
					waitTicker.Stop()
					d.Logger.Info("every source read; services.yaml published", "sources", strings.Join(d.names(), ","))
					if d.Status != nil {
						d.Status.Set(status.OK)
					}
				}
			}
			if d.onUpdate != nil {
				d.onUpdate()
			}
		}
	}

	if d.Status != nil {
		d.Status.Set(status.Terminating)
	}
	cancel()
	stopTimeout := d.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		refreshing.Wait()
		close(stopped)
	}()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		return errors.Join(runErr, fmt.Errorf("sources did not stop within %s", stopTimeout))
	}
	return runErr
}

// refreshAll fetches every source at once and hands each good state to the
// mailbox, as Watch would; a source that fails keeps its last state.
func (d *Daemon) refreshAll(ctx context.Context, box *mailbox) {
	timeout := d.FetchTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, src := range d.Sources {
		wg.Go(func() {
			svcs, err := src.Fetch(ctx)
			if err != nil {
				if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
					d.Logger.Warn("refresh (SIGHUP) failed; the source keeps its last good state", "source", src.Name(), "err", err)
				}
				return
			}
			box.put(i, svcs)
		})
	}
	wg.Wait()
}

// publish writes the merged state of a complete merger. A failed write
// leaves the previous file (and the previous published state) in place; the
// next update from any source, at the latest the next safety-net poll,
// tries again.
func (d *Daemon) publish(m *merger) error {
	f := m.build()
	var changed bool
	var size int64
	var err error
	if s, ok := d.Sink.(StreamSink); ok {
		size, err = s.WriteFile(&f)
		changed = err == nil
	} else {
		data := f.Encode()
		size = int64(len(data))
		changed, err = d.Sink.Write(data)
	}
	if err != nil {
		fileWriteErrors.Inc()
		d.Logger.Error("services.yaml not replaced; the previous one stays", "err", err)
		return err
	}
	if changed {
		fileWrites.Inc()
	}
	m.commit(f)
	lastWrite.SetToCurrentTime()
	if changed {
		d.Logger.Debug("services.yaml written", "services", len(f.Services), "bytes", size)
	}
	return nil
}

// cloneAll copies a source's state so that the daemon owns what it keeps
// (Normalize sorts in place) whatever the source does with its slices.
func cloneAll(svcs []services.Service) []services.Service {
	out := make([]services.Service, len(svcs))
	for i := range svcs {
		out[i] = svcs[i].Clone()
	}
	return out
}

// mailbox keeps the latest state per source. Sources never block on the
// daemon, and a burst of updates is handled as one: only the newest state
// of each source matters.
type mailbox struct {
	mu      sync.Mutex
	pending map[int][]services.Service
	ready   chan struct{}
}

func newMailbox() *mailbox {
	return &mailbox{pending: map[int][]services.Service{}, ready: make(chan struct{}, 1)}
}

func (b *mailbox) put(i int, svcs []services.Service) {
	b.mu.Lock()
	b.pending[i] = svcs
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *mailbox) take() map[int][]services.Service {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending
	b.pending = map[int][]services.Service{}
	return p
}
