package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/meltwater/proxymatic/pkg/services"
)

// merger holds each source's last good state and what was last published,
// and turns them into one file.
type merger struct {
	logger     *slog.Logger
	exposeHost bool
	names      []string
	states     [][]services.Service // valid, normalized; nil until the first good read
	ready      []bool

	published  []services.Service // sorted by key
	collisions map[string]bool    // collisions already logged, until they go away
	rejections []map[string]bool  // per source: rejections already logged

	// For changes applied key by key (incremental.go): the keys each
	// source has rejected, and whether states[i] and published are this
	// merger's own arrays (a build may hand a state on as the file).
	rejectedKeys   []map[services.Key]bool
	ownState       []bool
	ownPublished   bool
	publishedCount [2]int // services and servers in published
}

func newMerger(logger *slog.Logger, names []string, previous []services.Service) *merger {
	m := &merger{
		logger:     logger,
		names:      names,
		states:     make([][]services.Service, len(names)),
		ready:      make([]bool, len(names)),
		published:  slices.Clone(previous),
		collisions: map[string]bool{},
		rejections: make([]map[string]bool, len(names)),

		rejectedKeys: make([]map[services.Key]bool, len(names)),
		ownState:     make([]bool, len(names)),
	}
	slices.SortStableFunc(m.published, func(a, b services.Service) int { return a.Key().Compare(b.Key()) })
	return m
}

// set replaces source i's state with a good read (already a private copy).
// Invalid services are dropped here, per source, so that a bad service of
// a higher-precedence source cannot hide a good one of a lower source.
func (m *merger) set(i int, svcs []services.Service) {
	valid, rejected := m.prepare(svcs)
	m.rejectedKeys[i] = make(map[services.Key]bool, len(rejected))
	for _, r := range rejected {
		m.rejectedKeys[i][r.Service.Key()] = true
	}
	m.ownState[i] = false
	seen := make(map[string]bool, len(rejected))
	for _, r := range rejected {
		msg := services.Problems(r.Problems).Error()
		seen[msg] = true
		if !m.rejections[i][msg] {
			m.logger.Warn("invalid service dropped; it is not written", "source", m.names[i],
				"service", r.Service.Name, "port", r.Service.Key().String(), "problems", msg)
		}
	}
	m.rejections[i] = seen
	rejectedServices.WithLabelValues(m.names[i]).Set(float64(len(rejected)))
	m.states[i] = valid
	m.ready[i] = true
}

// prepare applies the per-service rules to services of one source (a
// private copy): net=host servers out, normalized, invalid ones split off.
func (m *merger) prepare(svcs []services.Service) (valid []services.Service, rejected []services.Rejected) {
	if !m.exposeHost {
		for j := range svcs {
			svcs[j].Servers = dropHostPorts(svcs[j])
		}
	}
	f := services.File{Services: svcs}
	f.Normalize()
	return f.Split()
}

// dropHostPorts leaves out servers listening on the service's own port:
// such a server runs in net=host mode, and proxymatic (itself net=host)
// cannot listen on that port on the same host. Marathon already does this
// per task; doing it here covers registrator too, as the original
// proxymatic did for every source.
func dropHostPorts(s services.Service) []services.Server {
	kept := s.Servers[:0]
	for _, srv := range s.Servers {
		if srv.Port != s.Port {
			kept = append(kept, srv)
		}
	}
	return kept
}

// complete reports whether every source has had a good read.
func (m *merger) complete() bool {
	for _, r := range m.ready {
		if !r {
			return false
		}
	}
	return true
}

// waiting names the sources that have not had a good read yet.
func (m *merger) waiting() []string {
	var out []string
	for i, r := range m.ready {
		if !r {
			out = append(out, m.names[i])
		}
	}
	return out
}

// build merges the sources by precedence: for each (port, protocol) the
// first source that has it wins. Each collision is logged when it starts,
// not on every refresh.
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
		// another, and set left its state valid, normalized and sorted: it
		// is the file as it stands, without a copy or a key map.
		if len(m.collisions) > 0 {
			m.collisions = map[string]bool{}
		}
		mergeCollisions.Set(0)
		return services.File{Version: services.Version, Services: only}
	}
	type owner struct{ index, source int }
	owners := make(map[services.Key]owner, n)
	merged := make([]services.Service, 0, n)
	current := map[string]bool{}
	for i, st := range m.states {
		for _, s := range st {
			k := s.Key()
			o, taken := owners[k]
			if !taken {
				owners[k] = owner{index: len(merged), source: i}
				merged = append(merged, s)
				continue
			}
			winner := merged[o.index]
			id := fmt.Sprintf("%s %d/%s %d/%s", k, o.source, winner.Name, i, s.Name)
			current[id] = true
			if !m.collisions[id] {
				m.logger.Info("port claimed by two sources; the higher-precedence one is published",
					"port", k.String(), "published", winner.Name, "published_source", m.names[o.source],
					"ignored", s.Name, "ignored_source", m.names[i])
			}
		}
	}
	m.collisions = current
	mergeCollisions.Set(float64(len(current)))
	f := services.File{Services: merged}
	f.Normalize()
	return f
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
