package marathon

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// live is the Marathon state a watching Source keeps between events: every
// app with its tasks, what each app compiled to, and the services they
// compile into together. Events change apps (apply.go); settle recompiles
// only the apps that changed and rebuilds only the services (port,
// protocol) they claim or claimed, with the same rules and the same merge
// as a full compile: compileApp per app, merge per service. Only the Watch
// goroutine uses it.
type live struct {
	c     compiler // the rules; addrs is kept equal to l.addrs
	apps  map[string]*liveApp
	keys  map[services.Key]*liveKey
	out   map[services.Key]services.Service // compiled, valid
	addrs map[string]netip.Addr             // resolved task hosts
	tried map[string]bool                   // hosts resolved already
	dirty map[string]bool                   // apps to recompile; deleted ones too
	gone  *lru[string, struct{}]            // apps recently read as deleted
	// unlisted holds the reasons of skipped apps the state cannot keep (no
	// usable id: "" is the state's mark of a deleted app), by id as given.
	unlisted map[string][]explain.Entry
	// grown counts the tasks and apps events added since the full read
	// this state was built from; past growthLimit an event that would add
	// more asks for a full read instead (see maxEventGrowth).
	grown, growthLimit int

	scratch compilation
}

// goneApps bounds the deleted apps remembered (see live.deleted).
const goneApps = 1024

// maxEventGrowth bounds what events may add to the state between two full
// reads, in tasks and apps: a full read is bounded by --marathon-max-body,
// and a replica streaming TASK_RUNNING for ever new task ids (or naming
// ever new apps) must not grow the state for a whole refresh interval. A
// real cluster adds far fewer between two polls; past the bound the state
// is simply read again.
const maxEventGrowth = 100000

type liveApp struct {
	def   app // the current definition; Tasks unused
	tasks map[string]*task

	// What it compiled to: its claims (one per service, the app's own
	// best, see claim.better), its servers in compile order, its reasons.
	claims  []liveClaim
	servers []liveServer
	notes   []explain.Entry
	// malformed is the reason an app with malformed values was read with
	// (decode.go: "Malformed apps"); a skipped app (def.skip) compiles to
	// nothing.
	malformed []explain.Entry
}

type liveClaim struct {
	key services.Key
	cl  claim
}

type liveServer struct {
	key                   services.Key
	host                  string
	port, weight, maxConn int32
}

// liveKey is one service's claimants (app ids, sorted) and its owner.
type liveKey struct {
	apps  []string
	owner string
}

func newLive(c compiler) *live {
	return &live{
		c:     c,
		apps:  map[string]*liveApp{},
		keys:  map[services.Key]*liveKey{},
		out:   map[services.Key]services.Service{},
		addrs: map[string]netip.Addr{},
		tried: map[string]bool{},
		dirty: map[string]bool{},
		gone:  newLRU[string, struct{}](goneApps),

		growthLimit: maxEventGrowth,
	}
}

// setApp puts a (with its tasks, ids as strings) in place of what the
// state had for its id.
func (l *live) setApp(a *app) { l.setAppAs(a.ID, a) }

// addListed puts an app of a full read in the state. Marathon never lists
// an id twice, but a second app with the same id is kept as the full
// compile keeps it: compiled on its own, merged after the first (its key
// sorts right after the id's); events about the id reach the first only.
func (l *live) addListed(a *app, dups *int) {
	if a.skip && a.ID == "" {
		// Malformed and without an id: it compiles to nothing, and no
		// event can name it; its reason stays with the full read.
		if l.unlisted == nil {
			l.unlisted = map[string][]explain.Entry{}
		}
		l.unlisted[a.ID] = append(l.unlisted[a.ID], l.c.reportMalformed(a))
		return
	}
	if l.apps[a.ID] == nil {
		l.setApp(a)
		return
	}
	*dups++
	l.setAppAs(a.ID+"\x00"+strconv.Itoa(*dups), a)
}

// setAppAs puts a in the state under key. A task id listed twice keeps
// both tasks, as the full compile does (the second under a key that sorts
// right after the id; events about the id reach the first).
func (l *live) setAppAs(key string, a *app) {
	la := l.apps[key]
	if la == nil {
		la = &liveApp{}
		l.apps[key] = la
	}
	la.malformed = nil
	if len(a.malformed) > 0 || a.skip {
		// Reported once, when read; kept as a reason for every compile.
		la.malformed = []explain.Entry{l.c.reportMalformed(a)}
	}
	la.def = *a
	la.def.Tasks = nil
	la.def.malformed, la.def.dropped = nil, 0 // the decoder's, reused for its next app
	la.tasks = make(map[string]*task, len(a.Tasks))
	for i := range a.Tasks {
		t := cloneTask(&a.Tasks[i])
		k := t.ID
		for n := 1; la.tasks[k] != nil; n++ {
			k = t.ID + "\x00" + strconv.Itoa(n)
		}
		la.tasks[k] = &t
	}
	l.dirty[key] = true
}

// deleteApp forgets an app; its services are rebuilt without it.
func (l *live) deleteApp(id string) {
	if _, ok := l.apps[id]; !ok {
		return
	}
	l.dirty[id] = true
	l.apps[id].tasks = nil
	l.apps[id].def.ID = "" // marks it gone for settle
}

// hosts lists the task hosts of the dirty apps not resolved yet.
func (l *live) newHosts() []string {
	var out []string
	seen := map[string]bool{}
	for id := range l.dirty {
		la := l.apps[id]
		if la == nil {
			continue
		}
		for _, t := range la.tasks {
			if !l.tried[t.Host] && !seen[t.Host] {
				seen[t.Host] = true
				out = append(out, t.Host)
			}
		}
	}
	return out
}

// resolved takes the addresses of hosts (those that resolve).
//
// A host that did not resolve is not marked tried: the next time one of its
// apps is recompiled it is asked for again (the DNS cache remembers the
// failure for a few seconds, so a burst of events costs one lookup), rather
// than waiting for the next full read.
func (l *live) resolved(hosts []string, addrs map[string]netip.Addr) {
	for _, h := range hosts {
		if a, ok := addrs[h]; ok {
			l.tried[h] = true
			l.addrs[h] = a
		} else {
			delete(l.tried, h)
			delete(l.addrs, h)
		}
	}
}

// asApp is the app with its tasks, as the compile rules read it.
func (la *liveApp) asApp() *app {
	a := la.def
	a.Tasks = make([]task, 0, len(la.tasks))
	// In key order: tasks listed with the same id keep the order they were
	// listed in (compileApp sorts by id, stably).
	keys := make([]string, 0, len(la.tasks))
	for k := range la.tasks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a.Tasks = append(a.Tasks, *la.tasks[k])
	}
	return &a
}

// missingVersions lists the past versions the dirty apps' tasks run whose
// definitions are not known: settle needs them first.
func (l *live) missingVersions() []versionKey {
	if l.c.versions == nil {
		return nil
	}
	var out []versionKey
	for id := range l.dirty {
		la := l.apps[id]
		if la == nil || la.def.ID == "" {
			continue
		}
		if _, missing := versionGroups(la.asApp(), l.c.versions); len(missing) > 0 {
			for _, v := range missing {
				out = append(out, versionKey{la.def.ID, v})
			}
		}
	}
	return out
}

// settle recompiles the dirty apps and rebuilds the services they claim or
// claimed. It returns the keys whose service changed (added, modified or
// removed) and the apps whose reasons changed. Every host of the dirty
// apps must be resolved (newHosts/resolved) and every version they run
// known (missingVersions) before.
func (l *live) settle() (changed []services.Key, touched []string) {
	if len(l.dirty) == 0 {
		return nil, nil
	}
	l.c.addrs = l.addrs
	affected := map[services.Key]bool{}
	for id := range l.dirty {
		la := l.apps[id]
		if la == nil {
			continue
		}
		for _, cl := range la.claims {
			affected[cl.key] = true
			l.unclaim(cl.key, id)
		}
		if la.def.ID == "" {
			delete(l.apps, id)
			continue
		}
		l.compile(id, la)
		for _, cl := range la.claims {
			affected[cl.key] = true
			l.claim(cl.key, id)
		}
	}
	touchedSet := make(map[string]bool, len(l.dirty))
	for id := range l.dirty {
		touchedSet[id] = true
	}
	// A full read leaves every app dirty: a fresh map, not a cleared one
	// the size of the cluster, which every later event would walk.
	l.dirty = map[string]bool{}
	svcs := l.rebuild(affected)
	next := make(map[services.Key]services.Service, len(svcs))
	for _, s := range svcs {
		next[s.Key()] = s
	}
	for k := range affected {
		old, had := l.out[k]
		s, has := next[k]
		switch {
		case has && (!had || !old.Equal(&s)):
			l.out[k] = s
			changed = append(changed, k)
		case !has && had:
			delete(l.out, k)
			changed = append(changed, k)
		}
		if lk := l.keys[k]; lk != nil {
			if owner := l.ownerOf(k); owner != lk.owner {
				lk.owner = owner
				for _, id := range lk.apps {
					touchedSet[id] = true
				}
			}
		}
	}
	slices.SortFunc(changed, services.Key.Compare)
	touched = slices.Sorted(maps.Keys(touchedSet))
	return changed, touched
}

// ownerOf is the app whose claim names the service k: the best of its
// claimants' claims (see claim.better), as merge decides it.
func (l *live) ownerOf(k services.Key) string {
	var best claim
	found := false
	for _, id := range l.keys[k].apps {
		for _, cl := range l.apps[id].claims {
			if cl.key == k && (!found || cl.cl.better(best)) {
				best, found = cl.cl, true
			}
		}
	}
	return best.appID
}

func (l *live) claim(k services.Key, id string) {
	lk := l.keys[k]
	if lk == nil {
		lk = &liveKey{}
		l.keys[k] = lk
	}
	if i, found := slices.BinarySearch(lk.apps, id); !found {
		lk.apps = slices.Insert(lk.apps, i, id)
	}
}

func (l *live) unclaim(k services.Key, id string) {
	lk := l.keys[k]
	if lk == nil {
		return
	}
	if i, found := slices.BinarySearch(lk.apps, id); found {
		lk.apps = slices.Delete(lk.apps, i, i+1)
	}
	if len(lk.apps) == 0 {
		delete(l.keys, k)
	}
}

// compile runs the compile rules on one app, alone, and keeps what it
// claims and serves.
func (l *live) compile(id string, la *liveApp) {
	if la.def.skip {
		la.claims, la.servers = la.claims[:0], la.servers[:0]
		la.notes = slices.Clone(la.malformed)
		return
	}
	groups := []*app{la.asApp()}
	if l.c.versions != nil {
		if g, missing := versionGroups(groups[0], l.c.versions); len(missing) == 0 && g != nil {
			groups = g
		}
		// Missing versions were fetched before settle; one that could not
		// be (the cache lost it meanwhile) takes the current definition.
	}
	cm := &l.scratch
	resetCompilation(cm)
	l.c.addGroups(cm, id, groups)
	la.claims = la.claims[:0]
	for k, g := range cm.groups {
		la.claims = append(la.claims, liveClaim{key: k, cl: g.owner})
	}
	slices.SortFunc(la.claims, func(a, b liveClaim) int { return a.key.Compare(b.key) })
	la.servers = la.servers[:0]
	for _, ps := range cm.apps[0].servers {
		la.servers = append(la.servers, liveServer{key: ps.g.key, host: cm.hosts[ps.host], port: ps.port, weight: ps.weight, maxConn: ps.maxConn})
	}
	la.notes = append(slices.Clone(la.malformed), cm.notes[id]...)
}

// resetCompilation empties cm for another app, keeping its capacity.
func resetCompilation(cm *compilation) {
	if cm.seen == nil {
		cm.seen = map[string]int32{}
		cm.done = map[*group]bool{}
		cm.groups = map[services.Key]*group{}
		cm.arena = make([]group, 0, 64)
		cm.servers = make([]pendingServer, 0, 256)
	}
	clear(cm.seen)
	clear(cm.groups)
	clear(cm.notes)
	cm.hosts = cm.hosts[:0]
	cm.apps = cm.apps[:0]
	cm.claimedBy = cm.claimedBy[:0]
	// The groups of the last app are referenced by nothing any more.
	clear(cm.arena)
	cm.arena = cm.arena[:0]
	clear(cm.servers)
	cm.servers = cm.servers[:0]
}

// rebuild builds the services of keys from their claimants' claims and
// servers, through the same merge as a full compile: the claims are
// replayed app by app (an app's own best claim per service, in any order
// of apps, settles the same owner as every claim in stream order), the
// servers added in app id order.
func (l *live) rebuild(keys map[services.Key]bool) []services.Service {
	if len(keys) == 0 {
		return nil
	}
	cm := &compilation{
		groups:  make(map[services.Key]*group, len(keys)),
		seen:    map[string]int32{},
		arena:   make([]group, 0, len(keys)),
		servers: make([]pendingServer, 0, 16),
	}
	var ids []string
	for k := range keys {
		if lk := l.keys[k]; lk != nil {
			ids = append(ids, lk.apps...)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		la := l.apps[id]
		for _, cl := range la.claims {
			if keys[cl.key] {
				cm.claim(cl.key, cl.cl)
			}
		}
		s0 := len(cm.servers)
		for _, sv := range la.servers {
			if !keys[sv.key] {
				continue
			}
			g := cm.groups[sv.key]
			g.max++
			h, ok := cm.seen[sv.host]
			if !ok {
				h = int32(len(cm.hosts))
				cm.seen[sv.host] = h
				cm.hosts = append(cm.hosts, sv.host)
			}
			cm.servers = append(cm.servers, pendingServer{g: g, host: h, port: sv.port, weight: sv.weight, maxConn: sv.maxConn})
		}
		cm.apps = append(cm.apps, appResult{id: id, servers: cm.servers[s0:len(cm.servers):len(cm.servers)]})
	}
	c := l.c
	c.explain = false
	c.addrs = l.addrs
	return c.merge(cm)
}

// services lists every compiled service in key order.
func (l *live) services() []services.Service {
	out := make([]services.Service, 0, len(l.out))
	for _, s := range l.out {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b services.Service) int { return a.Key().Compare(b.Key()) })
	return out
}

// reasons is an app's full list of reasons: its compile's, a service it
// claims that another app names, a task host that does not resolve.
func (l *live) reasons(id string) []explain.Entry {
	la := l.apps[id]
	if la == nil {
		return nil
	}
	out := slices.Clone(la.notes)
	add := func(e explain.Entry) {
		e.Source, e.App = "marathon", id
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	for _, cl := range la.claims {
		lk := l.keys[cl.key]
		if lk == nil || lk.owner == "" || lk.owner == id {
			continue
		}
		name := ""
		if s, ok := l.out[cl.key]; ok {
			name = s.Name
		}
		add(explain.Entry{Port: cl.key.Port, Protocol: string(cl.key.Protocol), Service: name, Reason: explain.PortTaken, Detail: "named by app " + clip(lk.owner) + "; this app's servers join it"})
	}
	for _, sv := range la.servers {
		if _, ok := l.addrs[sv.host]; !ok {
			add(explain.Entry{Port: sv.key.Port, Protocol: string(sv.key.Protocol), Reason: explain.UnresolvableHost, Detail: clip(sv.host)})
		}
	}
	return out
}

// resolveNew resolves the task hosts of the dirty apps not resolved yet.
func (l *live) resolveNew(ctx context.Context, dns *dnsCache) {
	if hosts := l.newHosts(); len(hosts) > 0 {
		l.resolved(hosts, dns.resolveAll(ctx, hosts))
	}
}
