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
	"slices"
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

	// onUpdate, when set by a test, runs after each batch of source
	// updates has been handled.
	onUpdate func()

	// image is what the file is meant to hold, kept service by service
	// for the sources that publish changes (incremental.go).
	image fileImage
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
			var err error
			if cs, ok := src.(ChangeSource); ok {
				// Its services are ours (see ChangeSource): no copy.
				err = cs.WatchChanges(ctx, func(dl services.Delta) { box.putDelta(i, dl) })
			} else {
				err = src.Watch(ctx, func(svcs []services.Service) { box.put(i, cloneAll(svcs)) })
			}
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
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-failed:
			break loop
		case <-waitTicker.C:
			if !ready {
				d.Logger.Warn("services.yaml not written yet: waiting for a first good read", "sources", strings.Join(m.waiting(), ","))
			}
		case <-box.ready:
			full := false
			var keys []services.Key
			for i, p := range box.take() {
				switch {
				case p.full:
					m.set(i, p.state)
					full = true
				case m.ready[i]:
					keys = append(keys, m.applyDelta(i, p.changed(), p.gone())...)
				}
			}
			if m.complete() {
				var err error
				if full || !ready {
					err = d.publish(m)
				} else {
					slices.SortFunc(keys, services.Key.Compare)
					err = d.publishKeys(m, slices.Compact(keys))
				}
				if err == nil && !ready {
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
	} else if bs, ok := d.Sink.(BuffersSink); ok {
		// Kept service by service, so that later changes re-encode only
		// what changed; compared with the file as a whole write always is.
		d.image.reset(f.Services)
		size = int64(d.image.enc.Len())
		changed, err = bs.WriteBuffers(d.image.enc.Buffers(), true)
		d.image.current = err == nil
		if err == nil {
			clear(d.image.unwritten)
		}
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
// of each source matters, and changes add up into one.
type mailbox struct {
	mu      sync.Mutex
	pending map[int]*pending
	ready   chan struct{}
}

// pending is what a source published since the daemon last looked: a
// whole state (full), or the services changed and removed since.
type pending struct {
	full  bool
	state []services.Service
	set   map[services.Key]services.Service
	del   map[services.Key]bool
}

func (p *pending) changed() []services.Service {
	out := make([]services.Service, 0, len(p.set))
	for _, s := range p.set {
		out = append(out, s)
	}
	return out
}

func (p *pending) gone() []services.Key {
	out := make([]services.Key, 0, len(p.del))
	for k := range p.del {
		out = append(out, k)
	}
	return out
}

func newMailbox() *mailbox {
	return &mailbox{pending: map[int]*pending{}, ready: make(chan struct{}, 1)}
}

func (b *mailbox) put(i int, svcs []services.Service) {
	b.mu.Lock()
	b.pending[i] = &pending{full: true, state: svcs}
	b.mu.Unlock()
	b.signal()
}

// putDelta adds a change to what source i has pending.
func (b *mailbox) putDelta(i int, d services.Delta) {
	b.mu.Lock()
	defer b.signal()
	defer b.mu.Unlock()
	if d.Full {
		b.pending[i] = &pending{full: true, state: d.Services}
		return
	}
	p := b.pending[i]
	if p == nil {
		p = &pending{set: map[services.Key]services.Service{}, del: map[services.Key]bool{}}
		b.pending[i] = p
	}
	if p.full {
		// A whole state not taken yet: the change goes into it.
		for _, k := range d.Removed {
			p.state = slices.DeleteFunc(p.state, func(s services.Service) bool { return s.Key() == k })
		}
		for _, s := range d.Services {
			p.state = slices.DeleteFunc(p.state, func(o services.Service) bool { return o.Key() == s.Key() })
			p.state = append(p.state, s)
		}
		return
	}
	for _, k := range d.Removed {
		delete(p.set, k)
		p.del[k] = true
	}
	for _, s := range d.Services {
		delete(p.del, s.Key())
		p.set[s.Key()] = s
	}
}

func (b *mailbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *mailbox) take() map[int]*pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending
	b.pending = map[int]*pending{}
	return p
}
