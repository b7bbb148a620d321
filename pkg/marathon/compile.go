package marathon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// LabelPrefix starts every per-port label: LabelPrefix + "N.servicePort" etc.
const LabelPrefix = "com.meltwater.proxymatic.port."

// ServiceLabelPrefix starts the original proxymatic's app-wide labels:
// "timeoutclient" and "timeoutserver", in milliseconds (the original wrote
// the value into HAProxy's `timeout client` line bare, and HAProxy reads a
// bare number as milliseconds). A per-port timeout label wins over them.
const ServiceLabelPrefix = "com.meltwater.proxymatic.service."

// maxTimeout bounds the timeout labels; longer is a typo, not an intent.
const maxTimeout = 24 * time.Hour

// compiler turns decoded apps into services. It does no I/O: addresses are
// resolved beforehand, so the rules can be tested and fuzzed on their own.
type compiler struct {
	exposeHost bool
	groupSize  int
	log        *slog.Logger
	addrs      map[string]netip.Addr // task host -> address; missing = unresolved

	// health, when set (a watching Source), keeps a task whose health
	// results are empty serving on its last known health (health.go).
	health *healthCache
	// versions, when set, gives the definitions of past app versions: a
	// task takes its rules from the version it runs (versions.go). Unset,
	// every task takes the app's current definition.
	versions func(id, version string) (def *app, known bool)
	// explain collects why each app, task or port is not served, for
	// Options.Explain; notes holds the app being compiled.
	explain bool
	notes   []explain.Entry
}

// portSpec is one port index of an app.
type portSpec struct {
	servicePort int
	protocols   []services.Protocol
}

// portOpts are the per-port-index label settings of an app.
type portOpts struct {
	servicePort int  // 0: not moved
	off         bool // servicePort label 0: the port index is not served
	weight      int  // -1: default
	maxConn     int  // 0: unlimited
	mode        services.Mode
	timeouts    services.Timeouts
}

// claim is one app's wish to serve a (port, protocol): the service name and
// service-level settings come from the claim that wins (see owner).
type claim struct {
	name     string
	appID    string
	moved    bool // the port was moved here by a servicePort label
	mode     services.Mode
	health   services.HealthCheck // Path "": none
	timeouts services.Timeouts
}

type group struct {
	key     services.Key
	owner   claim
	max     int // pending servers for it: the room its servers get
	servers []services.Server
	seen    map[netip.AddrPort]bool // built only once servers outgrows a scan
}

// seenScan is how many servers a group checks for a duplicate by scanning
// before it indexes them in a map: most services have a handful of
// servers, and a map per service was a sizeable share of a refresh.
const seenScan = 16

// add appends srv unless the group already has a server at its address.
func (g *group) add(srv services.Server) {
	ap := netip.AddrPortFrom(srv.IP, uint16(srv.Port))
	if g.seen != nil {
		if g.seen[ap] {
			return
		}
		g.seen[ap] = true
	} else {
		for i := range g.servers {
			if g.servers[i].IP == srv.IP && g.servers[i].Port == srv.Port {
				return
			}
		}
		if len(g.servers) >= seenScan {
			g.seen = make(map[netip.AddrPort]bool, 2*len(g.servers))
			for i := range g.servers {
				g.seen[netip.AddrPortFrom(g.servers[i].IP, uint16(g.servers[i].Port))] = true
			}
			g.seen[ap] = true
		}
	}
	g.servers = append(g.servers, srv)
}

// better reports whether c should name the service instead of cur: the app
// whose own service port it is wins over one moved there by a label (the
// canary joins the main app's service), then the lowest app id.
func (c claim) better(cur claim) bool {
	if c.moved != cur.moved {
		return !c.moved
	}
	return c.appID < cur.appID
}

// pendingServer is a server an app adds to a service once its task's host
// is resolved: compiling an app needs no address, so apps can be compiled
// while the response is still being decoded, and resolved after. It is kept
// small (24 bytes): 40,000 of them are alive until the merge.
type pendingServer struct {
	g       *group // the service it joins
	host    int32  // index in compilation.hosts
	port    int32
	weight  int32
	maxConn int32
}

// appResult is what one app contributes.
type appResult struct {
	id      string
	servers []pendingServer
}

// compilation collects the per-app results of one refresh, the services
// (groups) they claim and the distinct task hosts to resolve. Groups and
// their owners are settled as apps arrive (claim.better does not depend on
// the order), so that work happens on the compile goroutine while the body
// is still being decoded; only the servers wait for the merge, which adds
// them in app id order. Pending servers and groups are carved out of
// shared chunks: a few allocations rather than several per app.
type compilation struct {
	apps    []appResult
	groups  map[services.Key]*group
	arena   []group          // current block of groups
	servers []pendingServer  // current chunk
	hosts   []string         // distinct task hosts, as Marathon gave them
	seen    map[string]int32 // index of each in hosts
	done    map[*group]bool  // per-task scratch
	tasks   []*task          // per-app scratch

	// deferred are apps whose tasks run versions not yet known (copies:
	// the decoder reuses its apps); missing names those versions.
	deferred []*app
	missing  []versionKey
	// Reasons, when the compiler explains: per app, and the apps that
	// claimed each group (for the ones that lost it).
	notes     map[string][]explain.Entry
	claimedBy []groupClaim
}

type groupClaim struct {
	g     *group
	appID string
}

// claim records an app's claim on k and returns k's group; the group's
// owner is the best claim, whatever order the claims come in.
func (cm *compilation) claim(k services.Key, cl claim) *group {
	g := cm.groups[k]
	if g == nil {
		if len(cm.arena) == cap(cm.arena) {
			cm.arena = make([]group, 0, 1024)
		}
		cm.arena = append(cm.arena, group{key: k, owner: cl})
		g = &cm.arena[len(cm.arena)-1]
		cm.groups[k] = g
	} else if cl.better(g.owner) {
		g.owner = cl
	}
	return g
}

func (c *compiler) compile(apps []app) []services.Service {
	var cm compilation
	for i := range apps {
		c.add(&cm, &apps[i])
	}
	return c.merge(&cm)
}

// add compiles one app into cm. It keeps no reference into a, which the
// streaming decoder reuses for a later app. An app with tasks of versions
// whose definitions are not known yet is set aside (cm.deferred) for the
// caller to fetch them and add it again.
func (c *compiler) add(cm *compilation, a *app) {
	if len(a.malformed) > 0 || a.skip {
		note := c.reportMalformed(a)
		if c.explain {
			if cm.notes == nil {
				cm.notes = map[string][]explain.Entry{}
			}
			cm.notes[a.ID] = append(cm.notes[a.ID], note)
		}
		if a.skip {
			return
		}
		// Reported: an app deferred for its past versions below is added
		// again, and must not be reported twice.
		a.malformed, a.dropped = a.malformed[:0], 0
	}
	var groups []*app
	if c.versions != nil {
		var missing []string
		groups, missing = versionGroups(a, c.versions)
		if len(missing) > 0 {
			cm.deferred = append(cm.deferred, cloneApp(a))
			for _, v := range missing {
				cm.missing = append(cm.missing, versionKey{a.ID, v})
			}
			return
		}
	}
	if groups == nil {
		one := [1]*app{a}
		groups = one[:]
	}
	c.addGroups(cm, a.ID, groups)
}

// addGroups compiles one app, given as the definitions its tasks run (see
// versionGroups), into cm as one result.
func (c *compiler) addGroups(cm *compilation, id string, groups []*app) {
	if c.groupSize < 1 {
		c.groupSize = 1
	}
	if cm.seen == nil {
		cm.seen = map[string]int32{}
		cm.done = map[*group]bool{}
		cm.groups = map[services.Key]*group{}
	}
	for _, a := range groups {
		for j := range a.Tasks {
			if a.Tasks[j].skip {
				continue
			}
			if h := a.Tasks[j].Host; !cm.has(h) {
				cm.seen[h] = int32(len(cm.hosts))
				cm.hosts = append(cm.hosts, h)
			}
		}
	}
	// A chunk is full enough when a typical app might not fit; an app that
	// overflows it just grows that chunk.
	if cap(cm.servers)-len(cm.servers) < 64 {
		cm.servers = make([]pendingServer, 0, 2048)
	}
	s0 := len(cm.servers)
	c.notes = c.notes[:0]
	for _, a := range groups {
		c.compileApp(cm, a)
	}
	s1 := len(cm.servers)
	cm.apps = append(cm.apps, appResult{id: id, servers: cm.servers[s0:s1:s1]})
	if c.explain && len(c.notes) > 0 {
		if cm.notes == nil {
			cm.notes = map[string][]explain.Entry{}
		}
		cm.notes[id] = append(cm.notes[id], c.notes...)
	}
}

func (cm *compilation) has(host string) bool {
	_, ok := cm.seen[host]
	return ok
}

// merge resolves nothing itself: c.addrs must hold the addresses of
// cm.hosts. It joins the apps' results into services.
func (c *compiler) merge(cm *compilation) []services.Service {
	// Sorted so that merges and duplicate servers resolve the same way
	// whatever order Marathon lists apps and tasks in.
	slices.SortStableFunc(cm.apps, func(a, b appResult) int { return cmp.Compare(a.id, b.id) })
	// Per distinct host, once: its address and its name for the servers.
	type hostInfo struct {
		addr     netip.Addr
		name     string // "" when the host is not a valid name
		resolved bool
		never    string // why addr is never a service (services.NeverService), "" when it can be
	}
	hosts := make([]hostInfo, len(cm.hosts))
	for i, h := range cm.hosts {
		hosts[i].addr, hosts[i].resolved = c.addrs[h]
		if hosts[i].resolved {
			hosts[i].never = services.NeverService(hosts[i].addr)
		}
		if name := services.ASCIILower(h); services.ValidName(name) {
			hosts[i].name = name
		}
	}
	groups := cm.groups
	// Every group's servers are carved from one array, each with room for
	// all its pending servers: no slice per service growing by doubling.
	total := 0
	for _, g := range groups {
		total += g.max
	}
	all := make([]services.Server, total)
	for _, g := range groups {
		g.servers, all = all[:0:g.max], all[g.max:]
	}
	for _, r := range cm.apps {
		warned := int32(-1)
		for _, ps := range r.servers {
			h := &hosts[ps.host]
			if !h.resolved {
				// The resolver already warned about the host.
				c.log.Debug("task host unresolved, server dropped", "app", r.id, "host", cm.hosts[ps.host])
				if c.explain {
					cm.note(explain.Entry{App: r.id, Port: ps.g.key.Port, Protocol: string(ps.g.key.Protocol), Reason: explain.UnresolvableHost, Detail: clip(cm.hosts[ps.host])})
				}
				continue
			}
			if h.never != "" {
				if warned != ps.host {
					c.log.Warn("task address is never a service, its servers dropped", "app", clip(r.id), "host", clip(cm.hosts[ps.host]), "ip", h.addr.String(), "reason", h.never)
					warned = ps.host
				}
				continue
			}
			ps.g.add(services.Server{Host: h.name, IP: h.addr, Port: int(ps.port), Weight: int(ps.weight), MaxConn: int(ps.maxConn)})
		}
	}
	// Built in key order: the keys are unique (one group each), so sorting
	// the group pointers gives Normalize's order without moving 120-byte
	// services around; Normalize then finds them sorted.
	order := make([]*group, 0, len(groups))
	for _, g := range groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(a, b *group) int { return a.key.Compare(b.key) })
	f := services.File{Services: make([]services.Service, 0, len(groups))}
	for _, g := range order {
		k := g.key
		svc := services.Service{
			Name:     g.owner.name,
			Port:     k.Port,
			Protocol: k.Protocol,
			Mode:     services.ModeTCP,
			Source:   services.SourceMarathon,
			Servers:  g.servers,
		}
		if k.Protocol == services.TCP && g.owner.mode == services.ModeHTTP {
			svc.Mode = services.ModeHTTP
			if g.owner.health.Path != "" {
				hc := g.owner.health
				svc.HealthCheck = &hc
			}
		}
		if g.owner.timeouts != (services.Timeouts{}) {
			t := g.owner.timeouts
			svc.Timeouts = &t
		}
		f.Services = append(f.Services, svc)
	}
	f.Normalize()
	valid, rejected := f.Split()
	// Every value was checked on the way in, so this is a last guard that
	// should never fire; if it does, the service is dropped, not written.
	for _, r := range rejected {
		c.log.Error("compiled service failed validation, dropped", "port", r.Service.Port, "protocol", r.Service.Protocol, "problems", services.Problems(r.Problems).Error())
	}
	if c.explain {
		for _, gc := range cm.claimedBy {
			if o := gc.g.owner; o.appID != gc.appID {
				cm.note(explain.Entry{App: gc.appID, Port: gc.g.key.Port, Protocol: string(gc.g.key.Protocol), Service: o.name, Reason: explain.PortTaken, Detail: "named by app " + clip(o.appID) + "; this app's servers join it"})
			}
		}
	}
	return valid
}

// note records a reason found while merging (its app is e.App), once.
func (cm *compilation) note(e explain.Entry) {
	e.Source = "marathon"
	if cm.notes == nil {
		cm.notes = map[string][]explain.Entry{}
	}
	if slices.Contains(cm.notes[e.App], e) {
		return
	}
	cm.notes[e.App] = append(cm.notes[e.App], e)
}

func (c *compiler) compileApp(cm *compilation, a *app) {
	name, ok := serviceName(a.ID)
	log := &appLogger{base: c.log, id: a.ID, c: c}
	if !ok {
		c.log.Warn("app id does not give a valid service name, app skipped", "app", clip(a.ID), "name", clip(name))
		log.note(explain.Entry{Reason: explain.InvalidName, Detail: clip(name)})
		return
	}
	log.svc = name
	specs := appPorts(a, log)
	opts := c.portLabels(a, len(specs), log)
	health := httpHealthPaths(a, len(specs), log)

	// keys[i] are the services (groups) port index i feeds.
	keys := make([][]*group, len(specs))
	for i, sp := range specs {
		if opts[i].off {
			log.Debug("port index taken out by its servicePort label 0", "portIndex", i)
			continue
		}
		port, moved := sp.servicePort, false
		if opts[i].servicePort != 0 {
			port, moved = opts[i].servicePort, true
		}
		if port == 0 {
			log.Warn("service port 0 skipped", "portIndex", i)
			log.note(explain.Entry{Reason: explain.NoServicePort, Detail: "port index " + strconv.Itoa(i) + ": service port 0"})
			continue
		}
		if port < 1 || port > 65535 {
			log.Warn("service port out of range skipped", "portIndex", i, "port", port)
			log.note(explain.Entry{Reason: explain.NoServicePort, Detail: "port index " + strconv.Itoa(i) + ": service port " + strconv.Itoa(port) + " out of range"})
			continue
		}
		for _, p := range sp.protocols {
			k := services.Key{Port: port, Protocol: p}
			g := cm.claim(k, claim{name: name, appID: a.ID, moved: moved, mode: opts[i].mode, health: health[i], timeouts: opts[i].timeouts})
			keys[i] = append(keys[i], g)
			if c.explain {
				cm.claimedBy = append(cm.claimedBy, groupClaim{g, a.ID})
			}
		}
	}

	tasks := cm.tasks[:0]
	for i := range a.Tasks {
		tasks = append(tasks, &a.Tasks[i])
	}
	slices.SortStableFunc(tasks, compareIDs)
	defer func() {
		clear(tasks) // no pointer into a survives the call
		cm.tasks = tasks[:0]
	}()
	for _, t := range tasks {
		if !c.serves(a, t, log) {
			continue
		}
		host := cm.seen[t.Host]
		done := cm.done
		clear(done)
		for i, ks := range keys {
			if i >= len(t.Ports) {
				if len(ks) > 0 {
					log.Debug("task has no host port for port index", "task", t.id(), "portIndex", i)
					log.note(explain.Entry{Task: t.id(), Port: ks[0].key.Port, Reason: explain.NoHostPort, Detail: "no host port for port index " + strconv.Itoa(i)})
				}
				continue
			}
			hostPort := t.Ports[i]
			if hostPort < 1 || hostPort > 65535 {
				if len(ks) > 0 {
					log.note(explain.Entry{Task: t.id(), Port: ks[0].key.Port, Reason: explain.NoHostPort, Detail: "host port " + strconv.Itoa(hostPort) + " out of range"})
				}
				continue
			}
			for _, g := range ks {
				if done[g] {
					continue // a service port listed twice in one app counts once
				}
				done[g] = true
				// A server on the service's own port (net=host) is kept:
				// the syncer drops the whole service (unless
				// --expose-host), for every source alike.
				g.max++
				ps := pendingServer{g: g, host: host, port: int32(hostPort), weight: services.DefaultWeight}
				if w := opts[i].weight; w >= 0 {
					ps.weight = int32(w)
				}
				if mc := opts[i].maxConn; mc > 0 {
					ps.maxConn = int32(max(1, mc/c.groupSize))
				}
				cm.servers = append(cm.servers, ps)
			}
		}
	}
}

// reportMalformed logs in one line, naming the app, the values of an app
// that the decoder could not use, and counts them by what they took out
// (README.md, "Malformed apps"). It returns the same as an explain entry.
func (c *compiler) reportMalformed(a *app) explain.Entry {
	const shown = 5
	details := make([]string, 0, min(len(a.malformed), shown))
	tasks, labels := 0, 0
	for i, m := range a.malformed {
		malformedTotal.WithLabelValues(m.scope.String()).Inc()
		if m.scope == scopeTask {
			tasks++
		}
		if strings.HasPrefix(m.path, "labels.") {
			labels++
		}
		if i < shown {
			details = append(details, clip(m.path)+": "+m.msg)
		}
	}
	msg, rest := "malformed label values ignored", scopeField
	switch {
	case labels < len(a.malformed) && !a.skip && tasks == 0:
		// Not only labels (an app's version): say what it is.
		msg = "malformed values ignored"
	case a.skip:
		msg, rest = "malformed app skipped", scopeApp
	case tasks > 0:
		msg, rest = "malformed tasks skipped", scopeTask
	}
	if a.dropped > 0 { // past maxMalformed: not described, counted by the app's outcome
		malformedTotal.WithLabelValues(rest.String()).Add(float64(a.dropped))
	}
	name := clip(a.ID)
	if _, ok := serviceName(a.ID); !ok {
		name = "apps[" + strconv.Itoa(a.pos) + "] " + strconv.Quote(name)
	}
	c.log.Warn(msg, "app", name, "malformed", len(a.malformed)+a.dropped, "details", strings.Join(details, "; "))
	return explain.Entry{Source: string(services.SourceMarathon), App: a.ID, Reason: explain.MalformedField,
		Detail: fmt.Sprintf("%s (%d): %s", msg, len(a.malformed)+a.dropped, strings.Join(details, "; "))}
}

// serves applies the task state and health rules.
func (c *compiler) serves(a *app, t *task, log *appLogger) bool {
	if t.skip { // malformed: reported with the app
		return false
	}
	// Marathon before 0.8 had no state field: a listed task was running.
	if t.State != nil && *t.State != "TASK_RUNNING" {
		reason := explain.NotRunning
		if *t.State == "TASK_KILLING" {
			reason = explain.Killing
		}
		log.note(explain.Entry{Task: t.id(), Reason: reason, Detail: clip(*t.State)})
		return false
	}
	if len(t.HealthCheckResults) > 0 && c.health != nil {
		healthy := true
		for _, r := range t.HealthCheckResults {
			healthy = healthy && r.Alive
		}
		c.health.note(t.id(), healthy)
	}
	for _, r := range t.HealthCheckResults {
		if !r.Alive {
			log.Debug("task failing its health check, skipped", "task", t.id(), "cause", clip(r.LastFailureCause))
			log.note(explain.Entry{Task: t.id(), Reason: explain.HealthFailing, Detail: clip(r.LastFailureCause)})
			return false
		}
	}
	if len(a.HealthChecks) > 0 && len(t.HealthCheckResults) == 0 {
		if c.health != nil {
			addr, resolved := c.addrs[t.Host]
			if c.health.lastHealthy(t, addr, resolved) {
				log.Debug("task has no health check result, serving on its last known health", "task", t.id())
				return true
			}
		}
		log.Debug("task has no health check result yet, skipped", "task", t.id())
		log.note(explain.Entry{Task: t.id(), Reason: explain.NoHealthResult})
		return false
	}
	return true
}

// RelateApp completes an explain filter on a Marathon app id with the
// name the app's services carry, so that ?app= also finds what was
// recorded for those services without the app (a net=host drop).
func RelateApp(f *explain.Filter) {
	if f.App == "" || f.Service != "" {
		return
	}
	if name, ok := serviceName(f.App); ok {
		f.Service = name
	}
}

// serviceName reverses and dots the app id: /product/system/service gives
// service.system.product.
func serviceName(id string) (string, bool) {
	parts := strings.FieldsFunc(services.ASCIILower(id), func(r rune) bool { return r == '/' })
	slices.Reverse(parts)
	name := strings.Join(parts, ".")
	return name, services.ValidName(name)
}

// appPorts reads the service ports with their protocols from whichever
// declaration the app's Marathon version and network mode use.
func appPorts(a *app, log *appLogger) []portSpec {
	var specs []portSpec
	switch {
	case a.Container != nil && a.Container.Docker != nil && len(a.Container.Docker.PortMappings) > 0:
		for _, pm := range a.Container.Docker.PortMappings {
			specs = append(specs, portSpec{pm.ServicePort, protocols(pm.Protocol, log)})
		}
	case a.Container != nil && len(a.Container.PortMappings) > 0:
		for _, pm := range a.Container.PortMappings {
			specs = append(specs, portSpec{pm.ServicePort, protocols(pm.Protocol, log)})
		}
	case len(a.PortDefinitions) > 0:
		for _, pd := range a.PortDefinitions {
			specs = append(specs, portSpec{pd.Port, protocols(pd.Protocol, log)})
		}
	default:
		for _, p := range a.Ports {
			specs = append(specs, portSpec{p, []services.Protocol{services.TCP}})
		}
	}
	return specs
}

var (
	tcpOnly = []services.Protocol{services.TCP}
	udpOnly = []services.Protocol{services.UDP}
	tcpUDP  = []services.Protocol{services.TCP, services.UDP}
)

func protocols(p string, log *appLogger) []services.Protocol {
	switch services.ASCIILower(p) {
	case "", "tcp":
		return tcpOnly
	case "udp":
		return udpOnly
	case "tcp,udp", "udp,tcp":
		return tcpUDP
	}
	log.Warn("unknown port protocol, using tcp", "protocol", clip(p))
	return tcpOnly
}

// httpHealthPaths gives, for each of the app's n port indexes, the path,
// interval, timeout and failure count of its first HTTP-style health check
// on it (Path "" if none). A setting out of the services contract's range is
// left out (the proxy's default applies) with a warning; Marathon's 0 (no
// limit on failures) is left out silently.
func httpHealthPaths(a *app, n int, log *appLogger) []services.HealthCheck {
	if len(a.HealthChecks) == 0 {
		return make([]services.HealthCheck, n)
	}
	paths := map[int]services.HealthCheck{}
	for _, hc := range a.HealthChecks {
		switch services.ASCIIUpper(hc.Protocol) {
		case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS":
		default:
			continue
		}
		idx := 0
		if hc.PortIndex != nil {
			idx = *hc.PortIndex
		}
		if _, dup := paths[idx]; dup {
			continue
		}
		path := hc.Path
		if path == "" {
			path = "/" // Marathon's default
		}
		if !services.ValidPath(path) {
			log.Warn("health check path is not valid, ignored", "portIndex", idx, "path", clip(path))
			log.note(explain.Entry{Reason: explain.MalformedField, Detail: "health check path " + strconv.Quote(clip(path)) + " is not valid"})
			continue
		}
		check := services.HealthCheck{Path: path}
		seconds := func(v int, field string) time.Duration {
			if v > int(services.MaxCheckDuration/time.Second) {
				log.Warn("health check setting out of range, proxy default used", "portIndex", idx, "field", field, "value", v)
				return 0
			}
			return time.Duration(max(v, 0)) * time.Second
		}
		check.Interval = seconds(hc.IntervalSeconds, "intervalSeconds")
		check.Timeout = seconds(hc.TimeoutSeconds, "timeoutSeconds")
		if f := hc.MaxConsecutiveFailures; f > services.MaxFailures {
			log.Warn("health check setting out of range, proxy default used", "portIndex", idx, "field", "maxConsecutiveFailures", "value", f)
		} else if f > 0 {
			check.Failures = f
		}
		paths[idx] = check
	}
	out := make([]services.HealthCheck, n)
	for i := range out {
		out[i] = paths[i]
	}
	return out
}

// portLabels parses the proxymatic labels. Labels are free text set by
// anyone who can deploy an app: only values that parse exactly are used,
// anything else is logged and ignored.
func (c *compiler) portLabels(a *app, n int, log *appLogger) []portOpts {
	opts := make([]portOpts, n)
	for i := range opts {
		opts[i].weight = -1
	}
	// Port indexes with their own timeout label: the app-wide ones do not
	// apply there.
	var ownClient, ownServer []bool
	for key, val := range a.Labels {
		rest, ok := strings.CutPrefix(key, LabelPrefix)
		if !ok {
			continue
		}
		bad := func(why string) {
			log.Warn("invalid label ignored", "label", clip(key), "value", clip(val), "reason", why)
			log.note(explain.Entry{Reason: explain.InvalidLabel, Detail: clip(key) + "=" + strconv.Quote(clip(val)) + ": " + why})
		}
		idxStr, field, ok := strings.Cut(rest, ".")
		idx, err := strconv.Atoi(idxStr)
		if !ok || err != nil || idx < 0 || strconv.Itoa(idx) != idxStr {
			bad("want " + LabelPrefix + "N.<setting>")
			continue
		}
		if idx >= n {
			bad("the app has no port index " + idxStr)
			continue
		}
		o := &opts[idx]
		switch field {
		case "servicePort":
			// Read as the original did (any run of digits: 020031 is
			// 20031); 0 takes the port out.
			v, ok := digitsIn(val, 65535)
			if !ok {
				bad("want a port 1-65535, or 0 to take the port out")
				continue
			}
			o.servicePort, o.off = v, v == 0
		case "weight":
			// weight and maxconn are read as the original read them
			// (str.isdigit() then int(): 050 is 50), like servicePort.
			v, ok := digitsIn(val, services.MaxWeight)
			if !ok {
				bad("want an integer 0-1000")
				continue
			}
			o.weight = v
		case "maxconn":
			v, ok := digitsIn(val, 1<<30)
			if !ok || v < 1 {
				bad("want a positive integer")
				continue
			}
			o.maxConn = v
		case "mode":
			switch val {
			case "tcp":
				o.mode = services.ModeTCP
			case "http":
				o.mode = services.ModeHTTP
			default:
				bad("want tcp or http")
			}
		case "timeout.client", "timeout.server":
			v, ok := intIn(val, 0, int(maxTimeout/time.Second))
			if !ok {
				bad("want whole seconds 0-86400")
				continue
			}
			if ownClient == nil {
				ownClient, ownServer = make([]bool, n), make([]bool, n)
			}
			if field == "timeout.client" {
				o.timeouts.Client = time.Duration(v) * time.Second
				ownClient[idx] = true
			} else {
				o.timeouts.Server = time.Duration(v) * time.Second
				ownServer[idx] = true
			}
		default:
			bad("unknown setting")
		}
	}
	c.serviceLabels(a, opts, ownClient, ownServer, log)
	return opts
}

// serviceLabels applies the original's app-wide timeout labels to every
// port index without a timeout label of its own. Their values are read as
// the original read them: a run of digits (leading zeros allowed), in
// milliseconds; 0 sets nothing, as the original wrote no line for it.
func (c *compiler) serviceLabels(a *app, opts []portOpts, ownClient, ownServer []bool, log *appLogger) {
	for key, val := range a.Labels {
		field, ok := strings.CutPrefix(key, ServiceLabelPrefix)
		if !ok {
			continue
		}
		bad := func(why string) {
			log.Warn("invalid label ignored", "label", clip(key), "value", clip(val), "reason", why)
			log.note(explain.Entry{Reason: explain.InvalidLabel, Detail: clip(key) + "=" + strconv.Quote(clip(val)) + ": " + why})
		}
		if field != "timeoutclient" && field != "timeoutserver" {
			bad("unknown setting: want " + ServiceLabelPrefix + "timeoutclient or timeoutserver")
			continue
		}
		v, ok := digitsIn(val, int(maxTimeout/time.Millisecond))
		if !ok {
			bad("want milliseconds 0-86400000")
			continue
		}
		if v == 0 {
			continue
		}
		d := time.Duration(v) * time.Millisecond
		for i := range opts {
			switch {
			case field == "timeoutclient" && (ownClient == nil || !ownClient[i]):
				opts[i].timeouts.Client = d
			case field == "timeoutserver" && (ownServer == nil || !ownServer[i]):
				opts[i].timeouts.Server = d
			}
		}
	}
}

// intIn parses a plain decimal integer (no sign, space or leading zero
// tricks beyond what Atoi round-trips) within [lo, hi].
func intIn(s string, lo, hi int) (int, bool) {
	v, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(v) != s || v < lo || v > hi {
		return 0, false
	}
	return v, true
}

// digitsIn parses a non-empty run of ASCII digits, leading zeros allowed,
// up to hi (the original's str.isdigit() then int()).
func digitsIn(s string, hi int) (int, bool) {
	if s == "" {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = v*10 + int(c-'0'); v > hi {
			return 0, false
		}
	}
	return v, true
}

// taskHosts lists the distinct task hosts to resolve.
func taskHosts(apps []app) []string {
	seen := map[string]bool{}
	var hosts []string
	for i := range apps {
		if apps[i].skip {
			continue
		}
		for j := range apps[i].Tasks {
			if apps[i].Tasks[j].skip {
				continue
			}
			h := apps[i].Tasks[j].Host
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// clip keeps hostile values short in logs.
func clip(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// appLogger builds an app's logger (with the app id) on first use: With
// clones the handler, an allocation per app, and almost every app logs
// nothing; debug lines are not even built unless debug is enabled.
type appLogger struct {
	base *slog.Logger
	id   string
	l    *slog.Logger
	c    *compiler // collects the app's reasons when it explains
	svc  string    // the service name, once known
}

// note records why something of the app is not served (Options.Explain).
func (a *appLogger) note(e explain.Entry) {
	if a.c == nil || !a.c.explain {
		return
	}
	e.Source = "marathon"
	e.App = a.id
	if e.Service == "" {
		e.Service = a.svc
	}
	a.c.notes = append(a.c.notes, e)
}

func (a *appLogger) get() *slog.Logger {
	if a.l == nil {
		a.l = a.base.With("app", a.id)
	}
	return a.l
}

func (a *appLogger) Warn(msg string, args ...any) { a.get().Warn(msg, args...) }

func (a *appLogger) Debug(msg string, args ...any) {
	if a.base.Enabled(context.Background(), slog.LevelDebug) {
		a.get().Debug(msg, args...)
	}
}
