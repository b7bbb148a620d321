package marathon

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/meltwater/proxymatic/pkg/services"
)

// DefaultHealthCacheSize is how many tasks' last health results are kept.
const DefaultHealthCacheSize = 100000

// healthCache remembers the last health result Marathon gave for each task
// (by task id), so that a task keeps its last known health while Marathon
// has none to give: after a leader election the new leader lists every task
// with empty healthCheckResults until its own checks have run, and dropping
// them would empty every health-checked service at once (marathon-lb keeps
// a cache for the same reason). The rules, in compiler.serves:
//
//   - results present: they decide, and are remembered (healthy = all alive);
//   - results empty, last seen healthy: the task keeps serving;
//   - results empty, never seen or last seen failing: it waits, as before.
//
// It also holds a health event that arrives before its task's status update
// (Marathon does not order the two), keyed by task or instance id, until the
// task shows up.
//
// Bounded (least recently used first out): size it above the number of
// tasks. A watching Source has one; a one-shot compile (--once) has none
// and reads Marathon's answer as it is.
type healthCache struct {
	mu sync.Mutex
	c  *lru[string, bool]

	// Servers of the services.yaml found at start: a task they name counts
	// as last seen healthy until the first full read, then the seed is
	// dropped (see seed).
	seedAddrs map[netip.AddrPort]bool
	seedNames map[string]bool // "host:port", host lowercased
}

func newHealthCache(n int) *healthCache {
	if n <= 0 {
		n = DefaultHealthCacheSize
	}
	return &healthCache{c: newLRU[string, bool](n)}
}

// note remembers the health of task id.
func (h *healthCache) note(id string, healthy bool) {
	if h == nil || id == "" {
		return
	}
	h.mu.Lock()
	h.c.put(id, healthy)
	h.mu.Unlock()
}

// known returns the last health noted for id.
func (h *healthCache) known(id string) (healthy, ok bool) {
	if h == nil {
		return false, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.c.get(id)
}

// pendingKey is where a health event for an instance not (yet) known as a
// task is kept.
func pendingKey(instance string) string { return "instance " + instance }

// adopt moves a health result noted for t's instance before t was known
// onto t's own id.
func (h *healthCache) adopt(taskID string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.c.get(taskID); ok {
		return
	}
	k := pendingKey(instanceOf(taskID))
	if v, ok := h.c.get(k); ok {
		h.c.remove(k)
		h.c.put(taskID, v)
	}
}

// lastHealthy reports whether a task without results counts as healthy:
// last seen healthy, or named by the seed (then remembered by id, so it
// outlives the seed).
func (h *healthCache) lastHealthy(t *task, addr netip.Addr, resolved bool) bool {
	if h == nil {
		return false
	}
	id := t.id()
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.c.get(id); ok {
		return v
	}
	if h.seedAddrs == nil && h.seedNames == nil {
		return false
	}
	host := strings.ToLower(t.Host)
	for _, p := range t.Ports {
		if p < 1 || p > 65535 {
			continue
		}
		if (resolved && h.seedAddrs[netip.AddrPortFrom(addr, uint16(p))]) || h.seedNames[host+":"+strconv.Itoa(p)] {
			h.c.put(id, true)
			return true
		}
	}
	return false
}

// seed takes the Marathon servers of the services.yaml a previous run left
// as last seen healthy: a sync restarted during a leader election must not
// drop them either. A task matches a server by (host address, host port)
// or (host name, host port), host names compared lowercased. The seed holds
// until the first full read of Marathon has been compiled (dropSeed): a
// task started later on the same host port is a new task and waits for its
// first result.
func (h *healthCache) seed(prev []services.Service) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seedAddrs = map[netip.AddrPort]bool{}
	h.seedNames = map[string]bool{}
	for i := range prev {
		if prev[i].Source != services.SourceMarathon {
			continue
		}
		for _, srv := range prev[i].Servers {
			if srv.Port < 1 || srv.Port > 65535 {
				continue
			}
			if srv.IP.IsValid() {
				h.seedAddrs[netip.AddrPortFrom(srv.IP.Unmap(), uint16(srv.Port))] = true
			}
			if srv.Host != "" {
				h.seedNames[strings.ToLower(srv.Host)+":"+strconv.Itoa(srv.Port)] = true
			}
		}
	}
}

func (h *healthCache) dropSeed() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.seedAddrs, h.seedNames = nil, nil
	h.mu.Unlock()
}

// instanceOf is the Marathon (1.4+) instance id of an app task id: a task
// "app.instance-UUID._app.N" belongs to "app.instance-UUID", and a task of
// the older form "app.UUID" to "app.marathon-UUID".
func instanceOf(taskID string) string {
	if i := strings.Index(taskID, "._app."); i >= 0 {
		return taskID[:i]
	}
	if i := strings.LastIndexByte(taskID, '.'); i >= 0 {
		if strings.HasPrefix(taskID[i+1:], "instance-") || strings.HasPrefix(taskID[i+1:], "marathon-") {
			return taskID
		}
		return taskID[:i] + ".marathon-" + taskID[i+1:]
	}
	return taskID
}
