package marathon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/backoff"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
	// A stream that stayed up this long was healthy: the next drop starts
	// the backoff over instead of continuing it.
	healthyStream = 30 * time.Second
	// appFetchers bounds the apps read at once after one batch of events.
	appFetchers = 4
	// attachWait bounds how long the first read waits for the stream.
	attachWait = time.Second
)

// Watch follows Marathon until ctx is done and publishes every state that
// differs from the last, complete. See WatchChanges for how it follows.
func (s *Source) Watch(ctx context.Context, publish func([]services.Service)) error {
	return s.watch(ctx, func(l *live, _ []services.Key) { publish(l.services()) })
}

// WatchChanges follows Marathon until ctx is done, publishing the complete
// state first (Full), then after each batch of events only the services
// that changed. The services published are the caller's.
//
// It reads every app once (GET /v2/apps?embed=apps.tasks), keeps them in
// memory and applies Marathon's events to them (apply.go): a task's status
// or health from the event itself, a changed app by reading that app
// alone. Only what changed is compiled again (state.go). Whatever makes
// the state doubtful is answered by reading everything again: a stream
// that (re)attaches, an event that does not parse or names an app the
// state does not know, an unknown event type, a queue overflow, a failed
// read of one app. The jittered poll (RefreshInterval) reads everything
// too; a difference from the state is logged with the apps and counted
// (drift), and the full read wins.
func (s *Source) WatchChanges(ctx context.Context, publish func(services.Delta)) error {
	first := true
	return s.watch(ctx, func(l *live, changed []services.Key) {
		if first {
			first = false
			all := l.services()
			for i := range all {
				all[i] = all[i].Clone()
			}
			publish(services.Delta{Full: true, Services: all})
			return
		}
		var d services.Delta
		for _, k := range changed {
			if svc, ok := l.out[k]; ok {
				d.Services = append(d.Services, svc.Clone())
			} else {
				d.Removed = append(d.Removed, k)
			}
		}
		publish(d)
	})
}

// ReadAgain asks the watch loop to read everything again now (SIGHUP) and
// publish what differs; it does not wait. Without a watch loop it does
// nothing.
func (s *Source) ReadAgain() {
	select {
	case s.again <- struct{}{}:
	default: // one is asked for already
	}
}

// watchLoop is the state of one watch loop.
type watchLoop struct {
	s        *Source
	q        *queue
	l        *live     // nil until the first full read
	replica  string    // the replica that answered the last full read
	lastFull time.Time // when the last full read was sent
}

// watch runs the loop: one goroutine owns the state; the event stream
// runs on another and only queues parsed events.
func (s *Source) watch(ctx context.Context, emit func(*live, []services.Key)) error {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchLoop{s: s, q: newQueue()}
	var wg sync.WaitGroup
	wg.Go(func() { s.followEvents(ctx, w.q) })
	defer wg.Wait()
	defer cancel()

	retry := backoff.Backoff{Min: time.Second, Max: backoffMax, Jitter: true}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	owed, now := "start", true // a full read is owed (why), and may be tried now
	// After a failed full read only the retry timer (or SIGHUP) tries
	// again: an event is no sign that /v2/apps answers now, and a body
	// that fails late (over --marathon-max-body, past --marathon-timeout)
	// must not be asked for again at the rate events arrive.
	backingOff := false
	var batch []event
	// The first read waits (briefly) for the stream to attach: read before
	// it, the state would have to be read again once it attaches, since
	// events could have been missed in between.
	select {
	case ev := <-w.q.ch:
		batch = append(batch, ev)
	case <-time.After(attachWait):
	case <-ctx.Done():
		return nil
	}
	for {
		if owed != "" && now {
			pending, ok := w.fullRead(ctx, owed, emit)
			if ctx.Err() != nil {
				return nil
			}
			next := jitter(s.opts.RefreshInterval)
			if ok {
				owed, backingOff = "", false
				retry.Reset()
				batch = append(batch, pending...)
			} else {
				owed, next, backingOff = "retry", min(next, retry.Next()), true
			}
			now = false
			timer.Reset(next)
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
				if owed == "" {
					owed = "poll"
				}
				now = true
				continue
			case <-s.again:
				owed, now = "refresh", true
				continue
			case ev := <-w.q.ch:
				batch = append(batch, ev)
			}
		}
		// Everything queued meanwhile is one batch: one publish.
		for more := true; more; {
			select {
			case ev := <-w.q.ch:
				batch = append(batch, ev)
			default:
				more = false
			}
		}
		if w.l == nil {
			// No state to apply events to: the first read failed, and its
			// retry (already owed) reflects them.
			batch, now = batch[:0], !backingOff
			continue
		}
		changed, full := w.step(ctx, batch)
		clear(batch)
		batch = batch[:0]
		if ctx.Err() != nil {
			return nil
		}
		if full != "" {
			if !backingOff {
				owed, now = full, true
			}
			continue
		}
		if len(changed) > 0 {
			emit(w.l, changed)
		}
	}
}

// step applies one batch of events, reads the apps it names, compiles
// what changed and returns the services that changed, or the reason for
// a full read instead.
func (w *watchLoop) step(ctx context.Context, batch []event) (changed []services.Key, full string) {
	s, l := w.s, w.l
	var p plan
	for i := range batch {
		ev := &batch[i]
		if ev.kind == evAttached && ev.at.Before(w.lastFull) {
			continue // the last full read was sent after this stream attached
		}
		l.apply(ev, &p, s.health)
	}
	if w.q.overflow.Swap(false) {
		p.needFull("overflow")
	}
	if p.full != "" {
		return nil, p.full
	}
	if len(p.fetch) > 0 {
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range p.fetch {
				if !yield(id) {
					return
				}
			}
		})
		results := s.fetchApps(ctx, ids)
		for _, r := range results {
			if r.err != nil {
				if ctx.Err() == nil {
					s.log.Warn("reading one app failed; reading everything", "app", clip(r.id), "err", r.err)
				}
				return nil, "fetch-failed"
			}
			if r.replica != "" && r.replica != w.replica {
				return nil, "replica"
			}
		}
		for _, r := range results {
			if !l.installApp(r.id, r.app, r.gone) {
				return nil, "overflow"
			}
		}
	}
	if missing := l.missingVersions(); len(missing) > 0 {
		fetched, err := s.fetchVersions(ctx, missing)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("reading past app versions failed; reading everything", "err", err)
			}
			return nil, "fetch-failed"
		}
		l.c.versions = s.versionLookup(fetched)
		defer func() { l.c.versions = s.versions.get }()
	}
	l.resolveNew(ctx, s.dns)
	changed, touched := l.settle()
	for _, id := range touched {
		if !strings.ContainsRune(id, 0) { // a second app listed with one id
			s.explainApp(id, l.reasons(id))
		}
	}
	return changed, ""
}

// fullRead reads every app into a new state and puts it in place of the
// old, publishing what changed. It returns the events that arrived while
// it read, to be applied next.
func (w *watchLoop) fullRead(ctx context.Context, reason string, emit func(*live, []services.Key)) (pending []event, ok bool) {
	s := w.s
	fullFetches.WithLabelValues(reason).Inc()
	s.log.Debug("reading every app", "reason", reason)
	w.lastFull = time.Now()
	nl, rep, err := s.readLive(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("refresh failed, keeping the last good state", "err", err)
		}
		return nil, false
	}
	for more := true; more; {
		select {
		case ev := <-w.q.ch:
			pending = append(pending, ev)
		default:
			more = false
		}
	}
	old := w.l
	if reason == "poll" && old != nil {
		w.drift(nl, pending)
	}
	if old != nil {
		nl.gone = old.gone
	}
	w.l, w.replica = nl, rep
	s.health.dropSeed()
	if s.opts.Explain != nil {
		notes := make(map[string][]explain.Entry, len(nl.apps))
		for id := range nl.apps {
			if r := nl.reasons(id); len(r) > 0 && !strings.ContainsRune(id, 0) {
				notes[id] = r
			}
		}
		for id, es := range nl.unlisted {
			notes[id] = append(notes[id], es...)
		}
		s.explainAll(notes)
	}
	var changed []services.Key
	if old != nil {
		changed = diffServices(old.out, nl.out)
	}
	// Published even when nothing changed: the daemon then knows the file
	// is current (and retries a write that failed).
	emit(nl, changed)
	return pending, true
}

// diffServices lists the keys whose service differs between two states.
func diffServices(a, b map[services.Key]services.Service) []services.Key {
	var out []services.Key
	for k, sa := range a {
		if sb, ok := b[k]; !ok || !sa.Equal(&sb) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, services.Key.Compare)
	return out
}

// drift compares the state events built with the scheduled full read and
// reports the apps whose services differ, leaving out those an event that
// arrived during the read explains.
func (w *watchLoop) drift(nl *live, pending []event) {
	inFlight, ok := appsIn(pending)
	if !ok {
		return
	}
	var apps []string
	for _, k := range diffServices(w.l.out, nl.out) {
		var ids []string
		for _, st := range []*live{w.l, nl} {
			if lk := st.keys[k]; lk != nil {
				ids = append(ids, lk.apps...)
			}
		}
		if slices.ContainsFunc(ids, func(id string) bool { return inFlight[id] }) {
			continue
		}
		apps = append(apps, ids...)
	}
	slices.Sort(apps)
	apps = slices.Compact(apps)
	if len(apps) == 0 {
		return
	}
	driftTotal.Add(float64(len(apps)))
	shown := apps
	if len(shown) > 20 {
		shown = shown[:20]
	}
	w.s.log.Warn("the state built from events differed from the full read; the full read wins",
		"apps", fmt.Sprint(clipAll(shown)), "count", len(apps))
}

func clipAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = clip(id)
	}
	return out
}

// followEvents keeps one event stream open, failing over and backing off.
func (s *Source) followEvents(ctx context.Context, q *queue) {
	bo := backoff.Backoff{Min: backoffMin, Max: backoffMax, Jitter: true}
	for ctx.Err() == nil {
		start := time.Now()
		_, err := s.streamEvents(ctx, q)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= healthyStream {
			bo.Reset()
		}
		d := bo.Next()
		s.log.Warn("event stream lost, reconnecting", "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// jitter spreads polls of many proxymatic instances over 75-100% of d.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/4+1)
}
