package marathon

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/backoff"
	"github.com/meltwater/proxymatic/pkg/services"
)

const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
	// A stream that stayed up this long was healthy: the next drop starts
	// the backoff over instead of continuing it.
	healthyStream = 30 * time.Second
)

// Watch refreshes at once, then on every triggering event and on the
// jittered poll, until ctx is done. One refresh runs at a time and at most
// one more is queued, however many events arrive meanwhile.
func (s *Source) Watch(ctx context.Context, publish func([]services.Service)) error {
	ctx, cancel := context.WithCancel(ctx)
	trigger := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.followEvents(ctx, trigger) })
	defer wg.Wait()
	defer cancel()

	retry := backoff.Backoff{Min: time.Second, Max: backoffMax, Jitter: true}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-timer.C:
		}
		// This refresh covers whatever was queued before it starts.
		select {
		case <-trigger:
		default:
		}
		svcs, err := s.Fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		next := jitter(s.opts.RefreshInterval)
		if err != nil {
			s.log.Warn("refresh failed, keeping the last good state", "err", err)
			next = min(next, retry.Next())
		} else {
			retry.Reset()
			publish(svcs)
		}
		timer.Reset(next)
	}
}

// followEvents keeps one event stream open, failing over and backing off.
func (s *Source) followEvents(ctx context.Context, trigger chan<- struct{}) {
	bo := backoff.Backoff{Min: backoffMin, Max: backoffMax, Jitter: true}
	for ctx.Err() == nil {
		start := time.Now()
		_, err := s.streamEvents(ctx, trigger)
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
