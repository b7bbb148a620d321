// Package explain answers the operator's question "why is my app not
// served?". Each part of proxymatic that leaves something out — a Marathon
// task that is not running, a label that does not parse, a port lost to
// another app, a service a proxy refused — records an Entry saying what and
// why. Entries are kept in a Book, grouped by what produced them (one
// Marathon app, one registrator key, one port), so that recompiling one app
// replaces only that app's reasons: the book always holds the reasons of
// the last compile, never a history.
//
// The book is bounded: a cluster where every app is broken must not turn
// the explanations into the largest thing in memory.
package explain

import (
	"cmp"
	"slices"
	"sync"
)

// Reason is a stable, machine-readable code; Detail carries the specifics.
type Reason string

// Reasons a discovery source (proxymatic-sync) records.
const (
	NotRunning       Reason = "not-running"       // task state is not TASK_RUNNING
	Killing          Reason = "killing"           // TASK_KILLING: draining, never served
	HealthFailing    Reason = "health-failing"    // a health check result says not alive
	NoHealthResult   Reason = "no-health-result"  // the app has health checks, the task never passed one
	NetHost          Reason = "net-host"          // a server on its service's own port (net=host)
	NoServicePort    Reason = "no-service-port"   // port index without a usable service port
	NoHostPort       Reason = "no-host-port"      // a task lacks the host port for a port index
	InvalidLabel     Reason = "invalid-label"     // a proxymatic label that does not parse
	InvalidName      Reason = "invalid-name"      // app id or SERVICE_NAME gives no valid service name
	MalformedField   Reason = "malformed-field"   // a field of an unexpected JSON type
	UnresolvableHost Reason = "unresolvable-host" // the task or container host has no address
	InvalidAddress   Reason = "invalid-address"   // an address that is never a service (0.0.0.0, link-local...)
	PortTaken        Reason = "port-taken"        // another app or source won the port by precedence
	MalformedKey     Reason = "malformed-key"     // a registrator key or value that does not parse
	EmptyService     Reason = "empty-service"     // every server filtered out
	InvalidService   Reason = "invalid-service"   // refused by the services contract
	VHostConflict    Reason = "vhost-conflict"    // two services want one virtual host name
	PortInUse        Reason = "port-in-use"       // another process holds the service port
	ProxyRejected    Reason = "proxy-rejected"    // the proxy refused the config for this service
	ProxyFailed      Reason = "proxy-failed"      // the proxy did not start or reload with a checked config
	PenSlotsFull     Reason = "pen-slots-full"    // more servers than --pen-servers
	NotInFile        Reason = "dropped-from-file" // left out of a services.yaml that was cut or invalid
)

// Entry is one thing left out (or served differently), and why.
type Entry struct {
	Source   string `json:"source"`             // "marathon", "registrator", "sync", "reload"
	App      string `json:"app,omitempty"`      // Marathon app id, or registrator key
	Task     string `json:"task,omitempty"`     // Marathon task id, registrator container
	Service  string `json:"service,omitempty"`  // service name, when known
	Port     int    `json:"port,omitempty"`     // service port, when known
	Protocol string `json:"protocol,omitempty"` // "tcp" or "udp", with Port
	Proxy    string `json:"proxy,omitempty"`    // reload: "haproxy", "nginx", "pen"
	Reason   Reason `json:"reason"`
	Detail   string `json:"detail,omitempty"`
}

// Filter selects entries; zero fields match everything.
//
// The reasons for one app are recorded where they are found, so they do
// not all carry both the app and the port: a task that is not running or
// failing its health check has an app and a service but no port (it is
// left out of every port of the app), while "every server filtered out"
// or a net=host drop is recorded for a service port with no app (a port
// may merge several apps). So each filter also follows the service names
// and ports of what it matches directly: ?port=N adds the port-less
// entries of the services and apps found on N (why port N is empty), and
// ?app=X adds the app-less entries of X's services and ports, and of
// Service: the name X's services carry where the source names them after
// the app (Marathon), so that a port dropped whole (net=host) is found by
// its app even when nothing else was recorded for it.
type Filter struct {
	App     string // exact app id (or registrator key)
	Port    int    // service port
	Service string // with App: the service name App's services carry, if known
}

// related holds what the entries a filter matches directly name.
type related struct {
	services map[string]bool
	apps     map[string]bool
	ports    map[int]bool
}

func (r *related) add(e *Entry) {
	if e.Service != "" {
		r.services[e.Service] = true
	}
	if e.App != "" {
		r.apps[e.App] = true
	}
	if e.Port != 0 {
		r.ports[e.Port] = true
	}
}

func newRelated() related {
	return related{services: map[string]bool{}, apps: map[string]bool{}, ports: map[int]bool{}}
}

// matcher returns the predicate for f over the entries of byKey.
func (f Filter) matcher(byKey map[string][]Entry) func(e *Entry) bool {
	if f == (Filter{}) {
		return func(*Entry) bool { return true }
	}
	byPort, byApp := newRelated(), newRelated()
	for _, es := range byKey {
		for i := range es {
			e := &es[i]
			if f.Port != 0 && e.Port == f.Port {
				byPort.add(e)
			}
			if f.App != "" && e.App == f.App {
				byApp.add(e)
			}
		}
	}
	portMatch := func(e *Entry) bool {
		return f.Port == 0 || e.Port == f.Port ||
			e.Port == 0 && (byPort.services[e.Service] || byPort.apps[e.App])
	}
	appMatch := func(e *Entry) bool {
		return f.App == "" || e.App == f.App ||
			e.App == "" && (byApp.services[e.Service] || byApp.ports[e.Port] || f.Service != "" && e.Service == f.Service)
	}
	return func(e *Entry) bool { return portMatch(e) && appMatch(e) }
}

// Defaults for NewBook's zero arguments.
const (
	DefaultMaxEntries = 10000 // in the whole book
	DefaultPerKey     = 64    // for one app, key or port
)

// Book keeps the entries of the last compile, grouped by key. It is safe for
// concurrent use: the compiler writes while the status endpoint reads.
type Book struct {
	mu      sync.Mutex
	max     int
	perKey  int
	byKey   map[string][]Entry
	total   int
	dropped map[string]int // entries left out of a key by the bounds
}

// NewBook returns a book holding at most maxEntries entries, and at most
// perKey for one key (0 takes the defaults).
func NewBook(maxEntries, perKey int) *Book {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if perKey <= 0 {
		perKey = DefaultPerKey
	}
	return &Book{max: maxEntries, perKey: perKey, byKey: map[string][]Entry{}, dropped: map[string]int{}}
}

// Set replaces the entries of key (an app, a key, a port: whatever was just
// recompiled). An empty list removes the key: it is served in full.
func (b *Book) Set(key string, entries []Entry) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(key, entries)
}

func (b *Book) setLocked(key string, entries []Entry) {
	b.total -= len(b.byKey[key])
	delete(b.byKey, key)
	delete(b.dropped, key)
	if len(entries) == 0 {
		return
	}
	keep := min(len(entries), b.perKey, max(0, b.max-b.total))
	if keep < len(entries) {
		b.dropped[key] = len(entries) - keep
	}
	if keep == 0 {
		return
	}
	b.byKey[key] = slices.Clone(entries[:keep])
	b.total += keep
}

// Replace swaps the whole book for the entries of a full compile.
func (b *Book) Replace(all map[string][]Entry) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byKey = map[string][]Entry{}
	b.dropped = map[string]int{}
	b.total = 0
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys) // which keys the bound cuts does not depend on map order
	for _, k := range keys {
		b.setLocked(k, all[k])
	}
}

// Entries returns a copy of the entries f selects, in a stable order (by
// key, then as recorded), and how many entries the bounds left out.
func (b *Book) Entries(f Filter) (out []Entry, omitted int) {
	if b == nil {
		return nil, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.byKey))
	for k := range b.byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	match := f.matcher(b.byKey)
	for _, k := range keys {
		for i := range b.byKey[k] {
			if e := &b.byKey[k][i]; match(e) {
				out = append(out, *e)
			}
		}
	}
	for _, n := range b.dropped {
		omitted += n
	}
	return out, omitted
}

// Len is the number of entries held.
func (b *Book) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}
