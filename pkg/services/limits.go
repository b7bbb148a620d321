package services

import (
	"fmt"
	"math"
	"time"
)

// The limits below are those of the proxies that read a service, so that a
// value one of them would refuse (or silently misread) rejects that one
// service here, in sync before the file is written and in reload before
// anything is rendered. A value a proxy refuses in its own check would
// otherwise hold back every other service's change to that proxy: HAProxy,
// nginx and each pen read one file for all their services.
//
// Measured against HAProxy 2.6, nginx 1.22 and pen 0.34 (see
// docs/services-yaml.md and pkg/haproxy's limits tests):
//
//   - timeouts: HAProxy keeps them as a signed 32-bit count of milliseconds
//     and refuses a longer one ("timer overflow", the whole config). nginx
//     and pen do not read service timeouts.
//   - weight: 0..MaxWeight here, scaled to HAProxy's 0..256 and nginx's
//     1..256 (0 is "down"); pen takes it as is (a C int).
//   - maxconn: HAProxy 2.6 reads a server's maxconn with atol into a 32-bit
//     int and pen reads max/hard with atoi: a larger value is accepted by
//     `haproxy -c` and wraps (to 0, unlimited, or a negative number), so the
//     proxy's own check cannot catch it. nginx's max_conns is a machine word.
//   - ports: 1..65535 for listeners and servers alike.

// MaxTimeout is the longest timeout accepted: 2,147,483,647 ms (about 24.8
// days), HAProxy's limit. A sub-millisecond remainder is rounded up when
// rendered, so anything above this would render one millisecond too long.
const MaxTimeout = math.MaxInt32 * time.Millisecond

// MaxServerConns is the largest servers[].maxconn: HAProxy's and pen's
// 32-bit int.
const MaxServerConns = math.MaxInt32

// checkLimits appends the problems of values that are well-formed but
// beyond what a proxy reading them accepts. Negative values and the
// port/weight ranges are reported by check itself.
func (s *Service) checkLimits(add func(field, format string, args ...any)) {
	if s.Timeouts != nil {
		for _, t := range []struct {
			field string
			d     time.Duration
		}{{"timeouts.client", s.Timeouts.Client}, {"timeouts.server", s.Timeouts.Server}} {
			if t.d > MaxTimeout {
				add(t.field, "%s is above the limit %s (HAProxy's 2147483647 ms)", t.d, MaxTimeout)
			}
		}
	}
	for j := range s.Servers {
		if mc := s.Servers[j].MaxConn; mc > MaxServerConns {
			add(fmt.Sprintf("servers[%d].maxconn", j), "%d is out of range 1..%d (HAProxy and pen read a 32-bit int)", mc, MaxServerConns)
		}
	}
}
