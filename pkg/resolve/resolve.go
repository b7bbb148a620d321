// Package resolve turns host names into one IP address each, for a
// discovery source whose entries may name a host instead of an address (a
// registrator value "node-1.example.com:31001"): the proxies' configs take
// literal addresses only.
//
// A Cache looks every name up again when asked (a source asks on each change
// of its state), all names of one call at once and within one time bound,
// except names looked up moments before (a burst of changes does not become
// a burst of queries). A lookup that fails or times out falls back to the
// name's last good address for a while, so a DNS hiccup does not take
// servers out; a name that never resolved is left out. Either is logged at
// warning level once, when the name starts failing, and at debug level on
// the calls after, until it resolves again. Names no longer asked for are
// forgotten.
package resolve

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Resolver looks a host up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Cache; zero values take the defaults.
type Options struct {
	Resolver Resolver      // net.DefaultResolver
	Fresh    time.Duration // 1s: an answer this recent is reused, not asked again
	Timeout  time.Duration // 2s: bound of one Resolve call, all its lookups together
	Stale    time.Duration // 10m: how long a last good address stands in for failed lookups
	Workers  int           // 8 lookups at a time
	Logger   *slog.Logger  // slog.Default()
	// Name labels the log lines and metrics ("registrator").
	Name string
}

// Cache resolves names; safe for concurrent use.
type Cache struct {
	o   Options
	now func() time.Time

	mu      sync.Mutex
	m       map[string]entry
	failing map[string]bool // names whose failure was logged at warning level
}

type entry struct {
	addr netip.Addr // the last good address
	at   time.Time  // when it was resolved
}

// New returns a Cache.
func New(o Options) *Cache {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Fresh <= 0 {
		o.Fresh = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Stale <= 0 {
		o.Stale = 10 * time.Minute
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Cache{o: o, now: time.Now, m: map[string]entry{}, failing: map[string]bool{}}
}

// Resolve returns the address of each of hosts that resolves (or has a last
// good address young enough); the others are missing from the map and
// logged. It returns within Options.Timeout (plus scheduling).
func (c *Cache) Resolve(ctx context.Context, hosts []string) map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(hosts))
	now := c.now()
	var todo []string
	c.mu.Lock()
	asked := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		if asked[h] {
			continue
		}
		asked[h] = true
		if e, ok := c.m[h]; ok && now.Sub(e.at) < c.o.Fresh {
			out[h] = e.addr
			continue
		}
		todo = append(todo, h)
	}
	for h := range c.m {
		if !asked[h] {
			delete(c.m, h)
		}
	}
	for h := range c.failing {
		if !asked[h] {
			delete(c.failing, h)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return out
	}

	lctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	type result struct {
		addr netip.Addr
		err  error
	}
	results := make([]result, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(c.o.Workers, len(todo)) {
		wg.Go(func() {
			for i := range next {
				addrs, err := c.o.Resolver.LookupNetIP(lctx, "ip", todo[i])
				results[i] = result{Pick(addrs), err}
			}
		})
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()

	now = c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range todo {
		r := results[i]
		if r.addr.IsValid() {
			lookups.WithLabelValues(c.o.Name, "ok").Inc()
			c.m[h] = entry{addr: r.addr, at: now}
			out[h] = r.addr
			delete(c.failing, h)
			continue
		}
		if ctx.Err() != nil {
			continue // the caller gave up: nothing failed
		}
		// A source asks on every change of its state: a name that keeps
		// failing is a warning once, not one per change.
		level := slog.LevelWarn
		if c.failing[h] {
			level = slog.LevelDebug
		}
		c.failing[h] = true
		if e, ok := c.m[h]; ok && now.Sub(e.at) < c.o.Stale {
			lookups.WithLabelValues(c.o.Name, "stale").Inc()
			c.o.Logger.Log(ctx, level, "host name lookup failed; keeping its last address", "source", c.o.Name, "host", h, "address", e.addr, "err", r.err)
			out[h] = e.addr
			continue
		}
		lookups.WithLabelValues(c.o.Name, "failed").Inc()
		if _, had := c.m[h]; had {
			level = slog.LevelWarn // its last address is now given up: say so
		}
		delete(c.m, h)
		c.o.Logger.Log(ctx, level, "host name does not resolve; its servers are left out", "source", c.o.Name, "host", h, "err", r.err)
	}
	return out
}

// Pick chooses the one address of a host a proxy forwards to: the lowest
// IPv4 address, else the lowest IPv6 one, so that answers in rotating order
// do not change the services file. Addresses with a zone and the
// unspecified address are never chosen; none left gives the zero Addr.
// Marathon's task hosts and registrator's host names both go through it.
func Pick(addrs []netip.Addr) netip.Addr {
	var best netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() {
			continue
		}
		if !best.IsValid() || (a.Is4() && !best.Is4()) || (a.Is4() == best.Is4() && a.Less(best)) {
			best = a
		}
	}
	return best
}

// ValidHost reports whether h can be looked up as a host name: lowercase
// letters, digits, '-' and '.', labels of 1..63 characters not starting or
// ending with '-', at most 253 characters, and not digits and dots only
// (that is a mistyped address, not a name).
func ValidHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	letter := false
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c == '-':
				letter = true
			case c >= '0' && c <= '9':
			default:
				return false
			}
		}
	}
	return letter
}
