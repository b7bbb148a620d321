// Package syncer is the proxymatic-sync daemon: it follows every configured
// discovery source, merges their states by precedence into one normalized
// services.yaml and replaces that file atomically whenever — and only when —
// its bytes change. Sources are consumed through the small Source interface;
// the file is written through a Sink (atomicfile in production).
//
// The rules it keeps: a source's failure never removes what it last read
// (an outage cannot empty or shrink the file); a source down at start-up
// keeps its services of the previous file, or, without one, is waited for
// InitialWait before the others are published without it; per (port,
// protocol) the earlier source with servers wins (Marathon over
// registrator); invalid and net=host services are dropped before anything
// is encoded. See README.md for the decisions behind them.
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

	"github.com/meltwater/proxymatic/pkg/explain"
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

// SourceReporter is told which sources have been read; a StatusSetter
// that also implements it (*status.Server) names them on /status.
type SourceReporter interface {
	SetSources([]status.Source)
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
	// PreviousFound says a previous file was read (Previous may still be
	// empty). Run then takes each source's services in it (by their
	// source field) as that source's last good state until its first good
	// read, and publishes as soon as any source has answered.
	PreviousFound bool
	// InitialWait is how long Run waits, without a previous file, for
	// every source's first good read; then it publishes the sources that
	// have answered and adds the others when they answer. 0 publishes at
	// the first answer.
	InitialWait time.Duration

	// Explain, when set, receives why a service is not served as a source
	// gave it (keys "sync <port>/<protocol>"; reasons explain.NetHost,
	// explain.EmptyService, explain.PortTaken).
	Explain *explain.Book

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
	// updates has been handled; onInitialWait after the initial wait
	// ran out and was handled.
	onUpdate      func()
	onInitialWait func()

	// image is what the file is meant to hold, kept service by service
	// for the sources that publish changes (incremental.go).
	image fileImage
}

func (d *Daemon) newMerger() *merger {
	m := newMerger(d.Logger, d.names(), d.Previous)
	m.exposeHost = d.ExposeHost
	m.book = d.Explain
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
//
// The first write happens once every source has had a good read; or, with
// a previous file, as soon as one has (the others keep their services of
// that file); or, without one, once InitialWait has passed and one has.
// A source read after that is added when it answers.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := d.newMerger()
	if d.PreviousFound {
		m.seed(d.Previous)
	}
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
	waitOver := d.InitialWait <= 0
	var initialWait <-chan time.Time
	if !waitOver {
		t := time.NewTimer(d.InitialWait)
		defer t.Stop()
		initialWait = t.C
	}
	d.reportSources(m)
	ready := false // a first write succeeded
	// publish writes when the rules above allow it, and reports the first
	// write that succeeds. After the first, a batch of changes only (keys)
	// is written key by key.
	publish := func(full bool, keys []services.Key) {
		if !m.complete() && !(m.anyRead() && (waitOver || d.PreviousFound)) {
			return
		}
		var err error
		if full || !ready {
			err = d.publish(m)
		} else {
			slices.SortFunc(keys, services.Key.Compare)
			err = d.publishKeys(m, slices.Compact(keys))
		}
		if err != nil || ready {
			return
		}
		ready = true
		if waiting := m.waiting(); len(waiting) == 0 {
			d.Logger.Info("every source read; services.yaml published", "sources", strings.Join(d.names(), ","))
		} else if d.PreviousFound {
			d.Logger.Warn("services.yaml published; the sources not yet read keep their services of the previous file until they answer",
				"not_read", strings.Join(waiting, ","))
		} else {
			d.Logger.Warn("services.yaml published without the sources not yet read; each is added when it answers",
				"not_read", strings.Join(waiting, ","), "initial_wait", d.InitialWait)
		}
		if d.Status != nil {
			d.Status.Set(status.OK)
		}
	}
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
		case <-initialWait:
			waitOver = true
			if !ready {
				if m.anyRead() {
					publish(true, nil)
				} else {
					d.Logger.Warn("initial wait over and no source read yet: nothing to publish", "initial_wait", d.InitialWait,
						"sources", strings.Join(m.waiting(), ","))
				}
			}
			if d.onInitialWait != nil {
				d.onInitialWait()
			}
		case <-waitTicker.C:
			if waiting := m.waiting(); len(waiting) == 0 {
				waitTicker.Stop()
			} else if !ready {
				d.Logger.Warn("services.yaml not written yet: waiting for a first good read", "sources", strings.Join(waiting, ","))
			} else {
				d.Logger.Warn("still waiting for a first good read; services.yaml is published without these sources' current state", "sources", strings.Join(waiting, ","))
			}
		case <-box.ready:
			newly, full := false, false
			var keys []services.Key
			for i, p := range box.take() {
				if !p.full {
					if m.read[i] { // a change before a first state cannot come
						keys = append(keys, m.applyDelta(i, p.changed(), p.gone())...)
					}
					continue
				}
				if !m.read[i] {
					newly = true
					if ready {
						d.Logger.Info("source read for the first time; its services are added", "source", d.Sources[i].Name())
					}
				}
				m.set(i, p.state)
				full = true
			}
			if newly {
				d.reportSources(m)
			}
			publish(full, keys)
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

// reportSources tells the status endpoint (and the gauge) which sources
// have been read.
func (d *Daemon) reportSources(m *merger) {
	src := make([]status.Source, len(d.Sources))
	notRead := 0
	for i := range d.Sources {
		src[i] = status.Source{Name: m.names[i], State: status.SourceRead}
		if !m.read[i] {
			notRead++
			src[i].State = status.SourceNotRead
			src[i].PreviousFile = m.seeded[i]
		}
	}
	sourcesNotRead.Set(float64(notRead))
	if r, ok := d.Status.(SourceReporter); ok {
		r.SetSources(src)
	}
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
		if cs, ok := src.(ChangeSource); ok {
			// It reads everything again itself and publishes what
			// changed, keeping the changes it publishes in step.
			cs.ReadAgain()
			continue
		}
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

// publish writes the merged state. A failed write
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
