package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// merger holds each source's last good state and what was last published,
// and turns them into one file.
type merger struct {
	logger     *slog.Logger
	exposeHost bool
	names      []string
	states     [][]services.Service // valid, normalized; nil until the first good read
	read       []bool               // the source has had a good read
	seeded     []bool               // states holds the previous file's services, not a read

	published  []services.Service // sorted by key
	collisions map[string]bool    // collisions already logged, until they go away
	rejections []map[string]bool  // per source: rejections already logged
	netHost    [][]netHostDrop    // per source: services dropped for a net=host server
	netLogged  []map[string]bool  // per source: net=host drops already logged
	emptied    map[string]bool    // empty services already logged, until they fill again

	book      *explain.Book
	explained map[string][]explain.Entry // what the book holds, per key

	// For changes applied key by key (incremental.go): the keys each
	// source has rejected, and whether states[i] and published are this
	// merger's own arrays (a build may hand a state on as the file).
	rejectedKeys   []map[services.Key]bool
	ownState       []bool
	ownPublished   bool
	publishedCount [2]int // services and servers in published
}

// netHostDrop is a service left out because one of its servers listens on
// the service's own port.
type netHostDrop struct {
	svc    services.Service
	server string // the net=host server's address
}

func newMerger(logger *slog.Logger, names []string, previous []services.Service) *merger {
	m := &merger{
		logger:     logger,
		names:      names,
		states:     make([][]services.Service, len(names)),
		read:       make([]bool, len(names)),
		seeded:     make([]bool, len(names)),
		published:  slices.Clone(previous),
		collisions: map[string]bool{},
		rejections: make([]map[string]bool, len(names)),
		netHost:    make([][]netHostDrop, len(names)),
		netLogged:  make([]map[string]bool, len(names)),
		emptied:    map[string]bool{},
		explained:  map[string][]explain.Entry{},

		rejectedKeys: make([]map[services.Key]bool, len(names)),
		ownState:     make([]bool, len(names)),
	}
	slices.SortStableFunc(m.published, func(a, b services.Service) int { return a.Key().Compare(b.Key()) })
	return m
}

// seed gives every source its services of the previous file (by their
// source field) as its last good state until its first good read: a
// source that is down at start-up keeps what it last published, and the
// sources that answer are published at once.
func (m *merger) seed(previous []services.Service) {
	for i, name := range m.names {
		var mine []services.Service
		for _, s := range previous {
			if string(s.Source) == name {
				mine = append(mine, s.Clone())
			}
		}
		m.accept(i, mine, true)
		m.seeded[i] = true
	}
}

// set replaces source i's state with a good read (already a private copy).
func (m *merger) set(i int, svcs []services.Service) {
	in := make([]services.Key, len(svcs))
	for j := range svcs {
		in[j] = svcs[j].Key()
	}
	m.accept(i, svcs, false)
	m.read[i] = true
	m.seeded[i] = false
	m.noteRejected(i, in, nil, m.states[i], m.netHost[i])
}

// accept validates and filters svcs as source i's state. Invalid services
// are dropped here, per source, so that a bad service of a higher-precedence
// source cannot hide a good one of a lower source; so are net=host
// services. A seed (the previous file) is filtered silently: it was
// logged when it was read.
func (m *merger) accept(i int, svcs []services.Service, quiet bool) {
	f := services.File{Services: svcs}
	f.Normalize()
	valid, rejected := f.Split()
	seen := make(map[string]bool, len(rejected))
	for _, r := range rejected {
		msg := services.Problems(r.Problems).Error()
		seen[msg] = true
		if !m.rejections[i][msg] && !quiet {
			m.logger.Warn("invalid service dropped; it is not written", "source", m.names[i],
				"service", r.Service.Name, "port", r.Service.Key().String(), "problems", msg)
		}
	}
	m.rejections[i] = seen
	rejectedServices.WithLabelValues(m.names[i]).Set(float64(len(rejected)))
	if !m.exposeHost {
		valid = m.dropNetHost(i, valid, quiet)
	}
	m.states[i] = valid
	m.ownState[i] = false
}

// dropNetHost leaves out every service with a server listening on the
// service's own port, unless --expose-host: such a server runs in net=host
// mode (or is published on the same host port), and proxymatic, itself
// net=host, would collide with it on that port. The whole service goes, as
// in the original proxymatic, for every source, so that the port stays
// free. Each drop is logged once, until the service is fine again.
func (m *merger) dropNetHost(i int, svcs []services.Service, quiet bool) []services.Service {
	var drops []netHostDrop
	kept := svcs[:0]
	for _, s := range svcs {
		if srv, ok := hostPortServer(s); ok {
			drops = append(drops, netHostDrop{svc: s, server: srv})
			continue
		}
		kept = append(kept, s)
	}
	logged := make(map[string]bool, len(drops))
	for _, d := range drops {
		id := d.svc.Name + " " + d.svc.Key().String()
		logged[id] = true
		if !m.netLogged[i][id] && !quiet {
			m.logger.Warn("service dropped: a server listens on the service's own port (net=host), which the proxy would need; --expose-host keeps it",
				"source", m.names[i], "service", d.svc.Name, "port", d.svc.Key().String(), "server", d.server)
		}
	}
	m.netLogged[i] = logged
	m.netHost[i] = drops
	netHostDropped.WithLabelValues(m.names[i]).Set(float64(len(drops)))
	// Dropped services stay referenced by drops; clear the tail of the
	// shared array so the kept slice holds nothing stale.
	clear(svcs[len(kept):])
	return kept
}

// hostPortServer returns the address of a server of s that listens on the
// service's own port.
func hostPortServer(s services.Service) (string, bool) {
	for _, srv := range s.Servers {
		if srv.Port == s.Port {
			return srv.Address(), true
		}
	}
	return "", false
}

// complete reports whether every source has had a good read.
func (m *merger) complete() bool {
	for _, r := range m.read {
		if !r {
			return false
		}
	}
	return true
}

// anyRead reports whether at least one source has had a good read.
func (m *merger) anyRead() bool {
	return slices.Contains(m.read, true)
}

// waiting names the sources that have not had a good read yet.
func (m *merger) waiting() []string {
	var out []string
	for i, r := range m.read {
		if !r {
			out = append(out, m.names[i])
		}
	}
	return out
}

// build merges the sources by precedence: for each (port, protocol) the
// first source that has it wins — among the services that have servers, so
// that a service emptied in one source (scaled to zero, every task failing)
// does not hide another source's live one; only when none has servers does
// the first keep the port (and the proxy its listener). Each collision is
// logged when it starts, not on every refresh.
func (m *merger) build() services.File {
	n, sources := 0, 0
	var only []services.Service
	for _, st := range m.states {
		n += len(st)
		if len(st) > 0 {
			sources++
			only = st
		}
	}
	if sources <= 1 {
		// One source with services (the usual set-up) cannot collide with
		// another, and accept left its state valid, normalized and sorted:
		// it is the file as it stands, without a copy or a key map.
		if len(m.collisions) > 0 {
			m.collisions = map[string]bool{}
		}
		mergeCollisions.Set(0)
		f := services.File{Version: services.Version, Services: only}
		m.explain(f.Services, nil)
		return f
	}
	type owner struct{ index, source int }
	owners := make(map[services.Key]owner, n)
	merged := make([]services.Service, 0, n)
	current := map[string]bool{}
	var lost []lostPort
	for i, st := range m.states {
		for _, s := range st {
			k := s.Key()
			o, taken := owners[k]
			if !taken {
				owners[k] = owner{index: len(merged), source: i}
				merged = append(merged, s)
				continue
			}
			winner, loser, wsrc, lsrc := merged[o.index], s, o.source, i
			yields := len(winner.Servers) == 0 && len(s.Servers) > 0
			if yields {
				winner, loser, wsrc, lsrc = s, merged[o.index], i, o.source
				merged[o.index] = s
				owners[k] = owner{index: o.index, source: i}
			}
			lost = append(lost, lostPort{svc: loser, source: lsrc, winner: winner.Name, winnerSource: wsrc, empty: yields})
			id := fmt.Sprintf("%s %d/%s %d/%s", k, wsrc, winner.Name, lsrc, loser.Name)
			current[id] = true
			if m.collisions[id] {
				continue
			}
			if yields {
				m.logger.Info("port claimed by two sources; the higher-precedence one has no servers, so the other one is published",
					"port", k.String(), "published", winner.Name, "published_source", m.names[wsrc],
					"ignored", loser.Name, "ignored_source", m.names[lsrc])
			} else {
				m.logger.Info("port claimed by two sources; the higher-precedence one is published",
					"port", k.String(), "published", winner.Name, "published_source", m.names[wsrc],
					"ignored", loser.Name, "ignored_source", m.names[lsrc])
			}
		}
	}
	m.collisions = current
	mergeCollisions.Set(float64(len(current)))
	f := services.File{Services: merged}
	f.Normalize()
	m.explain(f.Services, lost)
	return f
}

// lostPort is a service left out because another source's service holds
// its (port, protocol).
type lostPort struct {
	svc          services.Service
	source       int
	winner       string
	winnerSource int
	empty        bool // it lost because it has no servers
}

// explain logs, once, each published service that has no servers (its
// port stays open: our choice, the original left it closed), and records
// in the book (if any) why each (port, protocol) is not served as a
// source gave it: net=host, empty, or taken by another source.
func (m *merger) explain(published []services.Service, lost []lostPort) {
	emptied := map[string]bool{}
	entries := map[string][]explain.Entry{}
	add := func(k services.Key, e explain.Entry) {
		key := "sync " + k.String()
		e.Source, e.Port, e.Protocol = "sync", k.Port, string(k.Protocol)
		entries[key] = append(entries[key], e)
	}
	for i := range published {
		s := &published[i]
		if len(s.Servers) > 0 {
			continue
		}
		id := string(s.Source) + " " + s.Name + " " + s.Key().String()
		emptied[id] = true
		if !m.emptied[id] {
			m.logger.Info("service has no servers (none running and healthy, or scaled to zero); its port stays open and refuses connections",
				"source", string(s.Source), "service", s.Name, "port", s.Key().String())
		}
		if m.book != nil {
			add(s.Key(), explain.Entry{Service: s.Name, Reason: explain.EmptyService,
				Detail: string(s.Source) + ": every server filtered out; the port stays open"})
		}
	}
	m.emptied = emptied
	emptyServices.Set(float64(len(emptied)))
	if m.book == nil {
		return
	}
	for i, drops := range m.netHost {
		for _, d := range drops {
			add(d.svc.Key(), explain.Entry{Service: d.svc.Name, Reason: explain.NetHost,
				Detail: fmt.Sprintf("%s: server %s listens on the service's own port (net=host); the whole service is dropped so the port stays free (--expose-host keeps it)", m.names[i], d.server)})
		}
	}
	for _, l := range lost {
		why := fmt.Sprintf("%s: %s's service %s holds this port by precedence", m.names[l.source], m.names[l.winnerSource], l.winner)
		if l.empty {
			why = fmt.Sprintf("%s: no servers, so %s's service %s, which has some, is published", m.names[l.source], m.names[l.winnerSource], l.winner)
		}
		add(l.svc.Key(), explain.Entry{Service: l.svc.Name, Reason: explain.PortTaken, Detail: why})
	}
	for key, es := range entries {
		if !slices.Equal(m.explained[key], es) {
			m.book.Set(key, es)
		}
	}
	for key := range m.explained {
		if _, ok := entries[key]; !ok {
			m.book.Set(key, nil)
		}
	}
	m.explained = entries
}

// maxChangeLines is how many Added/Modified/Removed lines one write logs at
// info level. A first write of a large cluster would otherwise log 10,000
// lines (a measurable part of --once at that size); above the limit the
// lines go to debug and info gets one summary.
const maxChangeLines = 100

// commit records f (normalized, so sorted by key) as what the file now
// holds and logs each service that was added, modified or removed since
// the last publish.
func (m *merger) commit(f services.File) {
	var counts [3]int // Added, Modified, Removed
	diff(m.published, f.Services, func(c change, _, _ *services.Service) { counts[c]++ })
	total := counts[added] + counts[modified] + counts[removed]
	level := slog.LevelInfo
	if total > maxChangeLines {
		m.logger.Info("services changed", "added", counts[added], "modified", counts[modified],
			"removed", counts[removed], "detail", "one line per service at debug level")
		level = slog.LevelDebug
	}
	// The lines (and their attributes) are built only when they are logged:
	// a first publish of 10,000 services would otherwise build 10,000 of
	// them to print one summary.
	if total > 0 && m.logger.Enabled(context.Background(), level) {
		diff(m.published, f.Services, func(c change, s, was *services.Service) {
			attrs := serviceAttrs(*s)
			if was != nil {
				attrs = append(attrs, "was", describe(*was))
			}
			m.logger.Log(context.Background(), level, c.String(), attrs...)
		})
	}
	servers := 0
	for i := range f.Services {
		servers += len(f.Services[i].Servers)
	}
	m.published = f.Services
	m.ownPublished = false
	m.publishedCount = [2]int{len(f.Services), servers}
	servicesPublished.Set(float64(len(f.Services)))
	serversPublished.Set(float64(servers))
}

type change int

const (
	added change = iota
	modified
	removed
)

func (c change) String() string { return [...]string{"Added", "Modified", "Removed"}[c] }

// diff walks two service lists sorted by key and calls fn for each service
// of next that is added or modified (in next's order, with the old one as
// was), then for each service of old that is gone (in key order).
func diff(old, next []services.Service, fn func(c change, s, was *services.Service)) {
	i := 0
	for j := range next {
		s := &next[j]
		for i < len(old) && old[i].Key().Compare(s.Key()) < 0 {
			i++
		}
		switch {
		case i == len(old) || old[i].Key() != s.Key():
			fn(added, s, nil)
		case !old[i].Equal(s):
			fn(modified, s, &old[i])
		}
	}
	j := 0
	for i := range old {
		o := &old[i]
		for j < len(next) && next[j].Key().Compare(o.Key()) < 0 {
			j++
		}
		if j == len(next) || next[j].Key() != o.Key() {
			fn(removed, o, nil)
		}
	}
}

func serviceAttrs(s services.Service) []any {
	return []any{"service", s.Name, "port", s.Key().String(), "mode", string(s.Mode), "source", string(s.Source), "servers", len(s.Servers)}
}

// describe is a one-line summary of a service for a Modified line, in the
// original proxymatic's shape: name:port/protocol -> [ip:port, ...].
func describe(s services.Service) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%s -> [", s.Name, s.Key())
	for i, srv := range s.Servers {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 8 {
			fmt.Fprintf(&b, "... %d more", len(s.Servers)-i)
			break
		}
		b.WriteString(srv.Address())
	}
	b.WriteString("]")
	return b.String()
}
