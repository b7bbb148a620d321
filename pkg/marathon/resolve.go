package marathon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/resolve"
)

// negativeTTL is how long a failed lookup is remembered: short, so a new
// agent joins quickly, but long enough that a burst of refreshes does not
// hammer DNS for a host that is gone.
const negativeTTL = 5 * time.Second

const (
	lookupTimeout = 5 * time.Second
	lookupWorkers = 8
)

// dnsCache resolves task hosts with a TTL. A cluster has far fewer agents
// than tasks, so almost every refresh is served from the cache.
type dnsCache struct {
	r   Resolver
	ttl time.Duration
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	m  map[string]dnsEntry
}

type dnsEntry struct {
	addr    netip.Addr // invalid: the lookup failed
	expires time.Time
}

func newDNSCache(r Resolver, ttl time.Duration, log *slog.Logger) *dnsCache {
	return &dnsCache{r: r, ttl: ttl, log: log, now: time.Now, m: map[string]dnsEntry{}}
}

// resolveAll returns the address of each host that resolves; hosts that do
// not are missing from the map (and warned about).
func (c *dnsCache) resolveAll(ctx context.Context, hosts []string) map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(hosts))
	var todo []string
	now := c.now()
	c.mu.Lock()
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() == "" {
				out[h] = a.Unmap()
			}
			continue
		}
		if e, ok := c.m[h]; ok && now.Before(e.expires) {
			if e.addr.IsValid() {
				out[h] = e.addr
			}
			continue
		}
		todo = append(todo, h)
	}
	// Forget hosts no task uses any more, so the cache follows the cluster.
	for h, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, h)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return out
	}

	results := make([]netip.Addr, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(lookupWorkers, len(todo)) {
		wg.Go(func() {
			for i := range next {
				results[i] = c.lookup(ctx, todo[i])
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
		a := results[i]
		if ctx.Err() != nil && !a.IsValid() {
			continue // cancelled, not failed: cache nothing
		}
		ttl := c.ttl
		if !a.IsValid() {
			ttl = negativeTTL
		} else {
			out[h] = a
		}
		c.m[h] = dnsEntry{addr: a, expires: now.Add(ttl)}
	}
	return out
}

func (c *dnsCache) lookup(ctx context.Context, host string) netip.Addr {
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " \t\r\n") {
		c.log.Warn("task host is not a host name, servers on it dropped", "host", clip(host))
		return netip.Addr{}
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := c.r.LookupNetIP(lctx, "ip", host)
	a := resolve.Pick(addrs)
	if err != nil || !a.IsValid() {
		if ctx.Err() == nil {
			c.log.Warn("task host does not resolve, servers on it dropped", "host", clip(host), "err", err)
		}
		return netip.Addr{}
	}
	return a
}
