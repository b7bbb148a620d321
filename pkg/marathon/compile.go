package marathon

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// LabelPrefix starts every per-port label: LabelPrefix + "N.servicePort" etc.
const LabelPrefix = "com.meltwater.proxymatic.port."

// maxTimeout bounds the timeout labels; longer is a typo, not an intent.
const maxTimeout = 24 * time.Hour

// compiler turns decoded apps into services. It does no I/O: addresses are
// resolved beforehand, so the rules can be tested and fuzzed on their own.
type compiler struct {
	exposeHost bool
	groupSize  int
	log        *slog.Logger
	addrs      map[string]netip.Addr // task host -> address; missing = unresolved
}

// portSpec is one port index of an app.
type portSpec struct {
	servicePort int
	protocols   []services.Protocol
}

// portOpts are the per-port-index label settings of an app.
type portOpts struct {
	servicePort int // 0: not moved
	weight      int // -1: default
	maxConn     int // 0: unlimited
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
	health   string
	timeouts services.Timeouts
}

type group struct {
	owner   claim
	servers []services.Server
	seen    map[netip.AddrPort]bool
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

func (c *compiler) compile(apps []app) []services.Service {
	if c.groupSize < 1 {
		c.groupSize = 1
	}
	order := make([]*app, len(apps))
	for i := range apps {
		order[i] = &apps[i]
	}
	// Sorted so that merges and duplicate servers resolve the same way
	// whatever order Marathon lists apps and tasks in.
	slices.SortStableFunc(order, func(a, b *app) int { return cmp.Compare(a.ID, b.ID) })
	groups := make(map[services.Key]*group)
	for _, a := range order {
		c.compileApp(a, groups)
	}
	f := services.File{Services: make([]services.Service, 0, len(groups))}
	for k, g := range groups {
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
			if g.owner.health != "" {
				svc.HealthCheck = &services.HealthCheck{Path: g.owner.health}
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
	return valid
}

func (c *compiler) compileApp(a *app, groups map[services.Key]*group) {
	name, ok := serviceName(a.ID)
	if !ok {
		c.log.Warn("app id does not give a valid service name, app skipped", "app", clip(a.ID), "name", clip(name))
		return
	}
	log := c.log.With("app", a.ID)
	specs := appPorts(a, log)
	opts := c.portLabels(a, len(specs), log)
	health := httpHealthPaths(a, log)

	// keys[i] are the services port index i feeds.
	keys := make([][]services.Key, len(specs))
	for i, sp := range specs {
		port, moved := sp.servicePort, false
		if opts[i].servicePort != 0 {
			port, moved = opts[i].servicePort, true
		}
		if port == 0 {
			log.Warn("service port 0 skipped", "portIndex", i)
			continue
		}
		if port < 1 || port > 65535 {
			log.Warn("service port out of range skipped", "portIndex", i, "port", port)
			continue
		}
		for _, p := range sp.protocols {
			k := services.Key{Port: port, Protocol: p}
			keys[i] = append(keys[i], k)
			cl := claim{name: name, appID: a.ID, moved: moved, mode: opts[i].mode, health: health[i], timeouts: opts[i].timeouts}
			g := groups[k]
			if g == nil {
				groups[k] = &group{owner: cl, seen: map[netip.AddrPort]bool{}}
			} else if cl.better(g.owner) {
				g.owner = cl
			}
		}
	}

	tasks := make([]*task, len(a.Tasks))
	for i := range a.Tasks {
		tasks[i] = &a.Tasks[i]
	}
	slices.SortStableFunc(tasks, func(x, y *task) int { return cmp.Compare(x.ID, y.ID) })
	for _, t := range tasks {
		if !c.serves(a, t, log) {
			continue
		}
		addr, ok := c.addrs[t.Host]
		if !ok {
			// The resolver already warned about the host.
			log.Debug("task host unresolved, server dropped", "task", t.ID)
			continue
		}
		host := strings.ToLower(t.Host)
		if !services.ValidName(host) {
			host = ""
		}
		done := map[services.Key]bool{}
		for i, ks := range keys {
			if i >= len(t.Ports) {
				if len(ks) > 0 {
					log.Debug("task has no host port for port index", "task", t.ID, "portIndex", i)
				}
				continue
			}
			hostPort := t.Ports[i]
			if hostPort < 1 || hostPort > 65535 {
				continue
			}
			for _, k := range ks {
				if done[k] {
					continue // a service port listed twice in one app counts once
				}
				done[k] = true
				if hostPort == k.Port && !c.exposeHost {
					log.Debug("net=host task skipped: host port equals service port", "task", t.ID, "port", k.Port)
					continue
				}
				g := groups[k]
				ap := netip.AddrPortFrom(addr, uint16(hostPort))
				if g.seen[ap] {
					continue
				}
				g.seen[ap] = true
				srv := services.Server{Host: host, IP: addr, Port: hostPort, Weight: services.DefaultWeight}
				if w := opts[i].weight; w >= 0 {
					srv.Weight = w
				}
				if mc := opts[i].maxConn; mc > 0 {
					srv.MaxConn = max(1, mc/c.groupSize)
				}
				g.servers = append(g.servers, srv)
			}
		}
	}
}

// serves applies the task state and health rules.
func (c *compiler) serves(a *app, t *task, log *slog.Logger) bool {
	// Marathon before 0.8 had no state field: a listed task was running.
	if t.State != nil && *t.State != "TASK_RUNNING" {
		return false
	}
	for _, r := range t.HealthCheckResults {
		if !r.Alive {
			log.Debug("task failing its health check, skipped", "task", t.ID, "cause", clip(r.LastFailureCause))
			return false
		}
	}
	if len(a.HealthChecks) > 0 && len(t.HealthCheckResults) == 0 {
		log.Debug("task has no health check result yet, skipped", "task", t.ID)
		return false
	}
	return true
}

// serviceName reverses and dots the app id: /product/system/service gives
// service.system.product.
func serviceName(id string) (string, bool) {
	parts := strings.FieldsFunc(strings.ToLower(id), func(r rune) bool { return r == '/' })
	slices.Reverse(parts)
	name := strings.Join(parts, ".")
	return name, services.ValidName(name)
}

// appPorts reads the service ports with their protocols from whichever
// declaration the app's Marathon version and network mode use.
func appPorts(a *app, log *slog.Logger) []portSpec {
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

func protocols(p string, log *slog.Logger) []services.Protocol {
	switch strings.ToLower(p) {
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

// httpHealthPaths maps port index to the path of the app's first HTTP-style
// health check on it.
func httpHealthPaths(a *app, log *slog.Logger) map[int]string {
	paths := map[int]string{}
	for _, hc := range a.HealthChecks {
		switch strings.ToUpper(hc.Protocol) {
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
			continue
		}
		paths[idx] = path
	}
	return paths
}

// portLabels parses the proxymatic labels. Labels are free text set by
// anyone who can deploy an app: only values that parse exactly are used,
// anything else is logged and ignored.
func (c *compiler) portLabels(a *app, n int, log *slog.Logger) []portOpts {
	opts := make([]portOpts, n)
	for i := range opts {
		opts[i].weight = -1
	}
	for key, val := range a.Labels {
		rest, ok := strings.CutPrefix(key, LabelPrefix)
		if !ok {
			continue
		}
		bad := func(why string) {
			log.Warn("invalid label ignored", "label", clip(key), "value", clip(val), "reason", why)
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
			v, ok := intIn(val, 1, 65535)
			if !ok {
				bad("want a port 1-65535")
				continue
			}
			o.servicePort = v
		case "weight":
			v, ok := intIn(val, 0, services.MaxWeight)
			if !ok {
				bad("want an integer 0-1000")
				continue
			}
			o.weight = v
		case "maxconn":
			v, ok := intIn(val, 1, 1<<30)
			if !ok {
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
			if field == "timeout.client" {
				o.timeouts.Client = time.Duration(v) * time.Second
			} else {
				o.timeouts.Server = time.Duration(v) * time.Second
			}
		default:
			bad("unknown setting")
		}
	}
	return opts
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

// taskHosts lists the distinct task hosts to resolve.
func taskHosts(apps []app) []string {
	seen := map[string]bool{}
	var hosts []string
	for i := range apps {
		for j := range apps[i].Tasks {
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
