package marathon

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// versionCacheSize bounds the past app definitions kept. A rolling deploy
// needs one per app being deployed; a version never changes, so an entry
// never goes stale and the bound only decides what is fetched again.
const versionCacheSize = 1024

type versionKey struct{ id, version string }

// versionCache holds app definitions by (app id, version), as
// GET /v2/apps/{id}/versions/{version} gave them. A version Marathon no
// longer has (404) is kept as nil: its tasks take the current definition,
// and it is not asked for again.
type versionCache struct {
	mu sync.Mutex
	c  *lru[versionKey, *app]
}

func newVersionCache(n int) *versionCache {
	return &versionCache{c: newLRU[versionKey, *app](n)}
}

func (vc *versionCache) get(id, version string) (def *app, known bool) {
	if vc == nil {
		return nil, false
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.c.get(versionKey{id, version})
}

func (vc *versionCache) put(id, version string, def *app) {
	if vc == nil {
		return
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	vc.c.put(versionKey{id, version}, def)
}

// runsCurrent reports whether t runs a's current definition: its version is
// the app's, or falls between the app's last configuration change and its
// version (Marathon gives a scaled app a new version but keeps its
// configuration: the tasks started before the scale run it too). Without
// versions (old Marathon) every task counts as current.
func runsCurrent(a *app, t *task) bool {
	v := t.Version
	if v == "" || a.Version == "" || v == a.Version {
		return true
	}
	last := a.VersionInfo.LastConfigChangeAt
	return last != "" && last <= v && v <= a.Version
}

// validVersion reports whether v can be asked for in a URL path: Marathon
// versions are ISO 8601 timestamps. Anything else is never fetched, and its
// tasks take the current definition.
func validVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == ':' || c == '.' || c == '-' || c == '+':
		default:
			return false
		}
	}
	return true
}

// versionGroups splits a's tasks by the definition they run: first the
// current definition with its tasks, then one app per other version (in
// version order) holding that version's definition, a's id and its tasks.
// A task of a version Marathon no longer has joins the current definition;
// one of a version whose definition is malformed (def.skip) is left out.
// missing lists the versions whose definitions lookup does not know: the
// caller fetches them and asks again. With every task current (the usual
// case, kept free of allocations) both are nil: a itself is the one group.
func versionGroups(a *app, lookup func(id, version string) (*app, bool)) (groups []*app, missing []string) {
	all := true
	for i := range a.Tasks {
		if !runsCurrent(a, &a.Tasks[i]) {
			all = false
			break
		}
	}
	if all {
		return nil, nil
	}
	cur := *a
	cur.Tasks = nil
	byVersion := map[string][]task{}
	for i := range a.Tasks {
		t := &a.Tasks[i]
		if runsCurrent(a, t) || !validVersion(t.Version) {
			cur.Tasks = append(cur.Tasks, *t)
			continue
		}
		byVersion[t.Version] = append(byVersion[t.Version], *t)
	}
	versions := make([]string, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	groups = []*app{&cur}
	for _, v := range versions {
		def, known := lookup(a.ID, v)
		switch {
		case !known:
			missing = append(missing, v)
		case def == nil:
			cur.Tasks = append(cur.Tasks, byVersion[v]...)
		case def.skip:
			// A definition malformed where it decides what its tasks
			// serve (labels, ports, health checks) leaves them unknown:
			// its tasks are not served, as a malformed current app is not
			// (logged when it was read, fetchVersion).
		default:
			g := *def
			g.ID = a.ID
			g.Version = v
			g.Tasks = byVersion[v]
			groups = append(groups, &g)
		}
	}
	if len(missing) > 0 {
		return nil, missing
	}
	return groups, nil
}

// appPath is the API path of an app id (/v2/apps/a/b), each segment
// escaped; ok is false for an id that is not a plain Marathon path
// (empty segments, "." or ".."), which is never put in a URL.
func appPath(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "/")
	if !ok || rest == "" || len(id) > 512 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("/v2/apps")
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(seg))
	}
	return b.String(), true
}

// cloneApp deep-copies a decoded app (the stream decoder reuses its apps),
// giving each task its id as a string.
func cloneApp(a *app) *app {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Ports = slices.Clone(a.Ports)
	c.PortDefinitions = slices.Clone(a.PortDefinitions)
	c.HealthChecks = slices.Clone(a.HealthChecks)
	for i := range c.HealthChecks {
		if p := c.HealthChecks[i].PortIndex; p != nil {
			v := *p
			c.HealthChecks[i].PortIndex = &v
		}
	}
	if a.Container != nil {
		ct := *a.Container
		ct.PortMappings = slices.Clone(ct.PortMappings)
		if ct.Docker != nil {
			d := *ct.Docker
			d.PortMappings = slices.Clone(d.PortMappings)
			ct.Docker = &d
		}
		c.Container = &ct
	}
	c.Tasks = make([]task, len(a.Tasks))
	for i := range a.Tasks {
		c.Tasks[i] = cloneTask(&a.Tasks[i])
	}
	return &c
}

func cloneTask(t *task) task {
	c := *t
	c.ID = t.id()
	c.idb = nil
	c.Ports = slices.Clone(t.Ports)
	c.HealthCheckResults = slices.Clone(t.HealthCheckResults)
	return c
}
