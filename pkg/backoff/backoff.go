// Package backoff is the one retry schedule proxymatic uses: a delay that
// doubles from Min up to Max after each failure and starts over after a
// success (or, for a supervised process, after a run that lasted long
// enough). Marathon, registrator and the proxy supervisor all wait with it,
// so a change to how proxymatic backs off is made in one place.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is a doubling delay. The zero value is not useful: set Min and Max.
// It is not safe for concurrent use; each retry loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	// Jitter draws each delay from the upper half of its step, so that many
	// proxymatic instances that lost a server together do not come back to
	// it in step. Without it the delay is exact (a local process restart).
	Jitter bool

	cur time.Duration
}

// Next returns the delay before the next attempt and doubles the step.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	if !b.Jitter || b.cur <= 1 {
		return b.cur
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

// Reset starts the schedule over at Min.
func (b *Backoff) Reset() { b.cur = 0 }
