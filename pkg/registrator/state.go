package registrator

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/resolve"
	"github.com/meltwater/proxymatic/pkg/services"
)

// change is one key written or deleted, as a watch reports it.
type change struct {
	key, value string
	deleted    bool
	dir        bool // v2: a directory was deleted or expired, with every key below it
}

// state is the source's view of the keyspace below the prefix: every raw
// key (so a TTL refresh that re-writes the same value is recognised as no
// change) and the registrations of the ones that parsed.
type state struct {
	prefix string
	log    *slog.Logger
	res    *resolve.Cache // host names in values
	raw    map[string]string
	valid  map[string]Registration
	why    *explainer // nil without Options.Explain
	// never holds the keys whose host name resolved to an address that is
	// never a service, with that address: logged when it starts, not on
	// every build.
	never map[string]netip.Addr
	// merged holds the (port, name) pairs whose merge under another name
	// was logged, for as long as it lasts.
	merged map[string]bool
}

func newState(prefix string, log *slog.Logger, res *resolve.Cache) *state {
	return &state{prefix: prefix, log: log, res: res, raw: map[string]string{}, valid: map[string]Registration{}}
}

// replace swaps in a complete read and reports whether anything changed.
func (s *state) replace(kv map[string]string) bool {
	changed := false
	for k := range s.raw {
		if _, ok := kv[k]; !ok {
			s.remove(k)
			changed = true
		}
	}
	for k, v := range kv {
		if s.put(k, v) {
			changed = true
		}
	}
	return changed
}

// apply applies watch changes and reports whether anything changed.
func (s *state) apply(cs []change) bool {
	changed := false
	for _, c := range cs {
		if c.deleted && c.dir {
			below := c.key + "/"
			for k := range s.raw {
				if strings.HasPrefix(k, below) {
					s.remove(k)
					changed = true
				}
			}
			continue
		}
		if c.deleted {
			if _, ok := s.raw[c.key]; ok {
				s.remove(c.key)
				changed = true
			}
			continue
		}
		if s.put(c.key, c.value) {
			changed = true
		}
	}
	return changed
}

func (s *state) remove(k string) {
	delete(s.raw, k)
	delete(s.valid, k)
	s.why.parsed(k)
}

// put records one key. A key is parsed (and a bad one logged) only when it
// is new or its value changed, so TTL refreshes neither re-log nor publish.
func (s *state) put(k, v string) bool {
	if old, ok := s.raw[k]; ok && old == v {
		return false
	}
	s.raw[k] = v
	delete(s.valid, k)
	rel, ok := relKey(s.prefix, k)
	if !ok {
		return true
	}
	r, err := ParseKey(rel, v)
	if err != nil {
		skipped.Inc()
		s.log.Warn("registrator: skipping key", "key", clip(k), "error", err)
		s.why.rejected(k, rel, r, err)
		return true
	}
	s.why.parsed(k)
	s.valid[k] = r
	return true
}

// services builds the services of the current state: one per (port,
// protocol), named by its registrations. When several names claim the same
// (port, protocol), their servers are merged under the lowest name (as the
// original merged them under one), so the outcome never depends on the
// order keys were read in. Values that name a host are resolved now (within
// the resolver's time bound); one that does not resolve leaves its server
// out.
func (s *state) services(ctx context.Context) []services.Service {
	type group struct {
		names map[string][]string // name -> keys, for the log
		regs  []Registration      // every name's, in key order
	}
	s.why.compiling()
	defer s.why.record()
	keys := slices.Sorted(maps.Keys(s.valid))
	var targets []string
	for _, k := range keys {
		if t := s.valid[k].Target; t != "" {
			targets = append(targets, t)
		}
	}
	var addrs map[string]netip.Addr
	if len(targets) > 0 {
		addrs = s.res.Resolve(ctx, targets)
	}
	never := map[string]netip.Addr{}
	defer func() { s.never = never }()
	groups := map[services.Key]*group{}
	for _, k := range keys {
		r := s.valid[k]
		if r.Target != "" {
			a, ok := addrs[r.Target]
			if !ok {
				s.log.Debug("registrator: value names a host that does not resolve; server left out", "key", clip(k), "host", r.Target)
				s.why.leftOut(s.prefix, k, r, explain.UnresolvableHost, "host "+r.Target+" does not resolve; the server is left out")
				continue
			}
			// The same rule as an address written literally (ParseKey): a
			// name pointing at a metadata endpoint or a multicast group
			// loses its server, not the whole service its key joins.
			if why := services.NeverService(a); why != "" {
				if s.never[k] != a {
					s.log.Warn("registrator: value names a host whose address is never a service; server left out",
						"key", clip(k), "host", r.Target, "ip", a.String(), "reason", why)
				}
				never[k] = a
				s.why.leftOut(s.prefix, k, r, explain.InvalidAddress, "host "+r.Target+" resolves to "+a.String()+", "+why+", never a service; the server is left out")
				continue
			}
			r.Addr = netip.AddrPortFrom(a, r.Addr.Port())
		}
		gk := services.Key{Port: r.Port, Protocol: r.Protocol}
		g := groups[gk]
		if g == nil {
			g = &group{names: map[string][]string{}}
			groups[gk] = g
		}
		g.names[r.Name] = append(g.names[r.Name], k)
		g.regs = append(g.regs, r)
	}
	out := make([]services.Service, 0, len(groups))
	merged := map[string]bool{}
	defer func() { s.merged = merged }()
	for gk, g := range groups {
		names := slices.Sorted(maps.Keys(g.names))
		winner := names[0]
		for _, other := range names[1:] {
			id := gk.String() + " " + winner + " " + other
			merged[id] = true
			if s.merged[id] {
				continue // logged when it started
			}
			s.log.Info("registrator: two service names on one port; their servers are merged under the lowest name",
				"port", gk.String(), "service", winner, "merged", other, "merged_keys", len(g.names[other]))
		}
		svc := services.Service{
			Name:     winner,
			Port:     gk.Port,
			Protocol: gk.Protocol,
			Mode:     services.ModeTCP,
			Source:   services.SourceRegistrator,
		}
		seen := map[string]bool{}
		for _, r := range g.regs {
			// Two keys pointing at one address are one server; the first key
			// in sorted order names it.
			if a := r.Addr.String(); !seen[a] {
				seen[a] = true
				svc.Servers = append(svc.Servers, services.Server{
					Host:   r.Host,
					IP:     r.Addr.Addr(),
					Port:   int(r.Addr.Port()),
					Weight: services.DefaultWeight,
				})
			}
		}
		out = append(out, svc)
	}
	f := services.File{Services: out}
	f.Normalize()
	// ParseKey already guarantees validity; Split is the contract's own guard
	// in case that ever drifts.
	valid, rejected := f.Split()
	for _, r := range rejected {
		s.log.Error("registrator: built an invalid service; dropped", "service", clip(r.Service.Name), "problems", services.Problems(r.Problems).Error())
	}
	return valid
}

// equalServices reports whether two built states would encode the same.
func equalServices(a, b []services.Service) bool {
	return slices.EqualFunc(a, b, func(x, y services.Service) bool { return x.Equal(&y) })
}
