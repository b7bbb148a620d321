package haproxy

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/templates"
)

// view is what the template sees: flat, pre-formatted and already validated,
// so a template (even an overriding one) cannot reach a raw value.
type view struct {
	GlobalMaxConn int
	MaxConn       int
	AdminSocket   string
	StatsSocket   string
	StateFile     string
	User, Group   string
	Services      []serviceView
}

type serviceView struct {
	Name          string // listen section: "<name>-<port>"
	Port          int
	Mode          string // "tcp" or "http"
	HTTP          bool
	CheckPath     string // "" when no HTTP health check
	TimeoutClient string // "" keeps the default
	TimeoutServer string
	Servers       []serverView
}

type serverView struct {
	// A pointer into the services being rendered, which outlive the view:
	// a copy per server was 2.9 MB of fresh memory at 40,000 servers.
	srv   *services.Server
	ID    uint32
	Check bool
}

// Name is the server's name in HAProxy: "[host_]ip_port". It depends only
// on the server itself.
func (s serverView) Name() string { return string(s.appendName(nil)) }

func (s serverView) appendName(b []byte) []byte {
	if s.srv.Host != "" {
		b = append(b, s.srv.Host...)
		b = append(b, '_')
	}
	b = s.srv.IP.AppendTo(b)
	b = append(b, '_')
	return strconv.AppendInt(b, int64(s.srv.Port), 10)
}

// Address is ip:port, IPv6 bracketed.
func (s serverView) Address() string { return s.srv.Address() }

func (s serverView) appendAddress(b []byte) []byte {
	return netip.AddrPortFrom(s.srv.IP, uint16(s.srv.Port)).AppendTo(b)
}

// Weight is HAProxy's 0..256.
func (s serverView) Weight() int { return Weight(s.srv.Weight) }

// MaxConn is the server's connection limit; 0 is unlimited.
func (s serverView) MaxConn() int { return s.srv.MaxConn }

func loadTemplate(dir string) (*template.Template, error) { return templates.Load(dir, TemplateName) }

// defaultTemplate is the embedded template; the tests hold writeDefault to it.
var defaultTemplate = templates.MustEmbedded(embedded, TemplateName)

func render(p Params, svcs []services.Service) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	v, err := newView(p, svcs)
	if err != nil {
		return nil, err
	}
	size := v.size()
	if p.Template == nil {
		return writeDefault(make([]byte, 0, size), v), nil
	}
	var buf bytes.Buffer
	buf.Grow(size)
	if err := p.Template.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("haproxy template: %w", err)
	}
	return buf.Bytes(), nil
}

func (p *Params) validate() error {
	if !safePath(p.RunDir) {
		return fmt.Errorf("haproxy: run dir %q: want an absolute, clean path of [A-Za-z0-9._/-]", p.RunDir)
	}
	if p.MaxConnections < 1 {
		return fmt.Errorf("haproxy: max connections %d: want at least 1", p.MaxConnections)
	}
	if p.StatsSocket != "" && !safePath(p.StatsSocket) {
		return fmt.Errorf("haproxy: stats socket %q: want an absolute, clean path of [A-Za-z0-9._/-]", p.StatsSocket)
	}
	if p.FDLimit < 0 {
		return fmt.Errorf("haproxy: fd limit %d: want 0 (no cap) or more", p.FDLimit)
	}
	for _, n := range []string{p.User, p.Group} {
		if n != "" && !accountName.MatchString(n) {
			return fmt.Errorf("haproxy: user/group %q: want a plain account name", n)
		}
	}
	return nil
}

// accountName is what useradd accepts by default (no quoting needed).
var accountName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// fdReserve is left to what is not a proxied connection: health checks,
// the CLI and stats sockets, resolvers, logs, the master's own fds.
const fdReserve = 256

// maxConns returns the global and per-listen maxconn: twice and once
// MaxConnections, capped so HAProxy's fd need (about 2 × global maxconn +
// listeners) fits under FDLimit.
func (p *Params) maxConns(listeners int) (global, perListen int, err error) {
	global = 2 * p.MaxConnections
	if p.FDLimit > 0 {
		limit := (p.FDLimit - listeners - fdReserve) / 2
		if limit < 1 {
			return 0, 0, fmt.Errorf("haproxy: fd limit %d leaves no connection for %d listeners (raise ulimit -n)", p.FDLimit, listeners)
		}
		if global > limit {
			logCapOnce(global, limit, p.FDLimit)
			global = limit
		}
	}
	return global, min(p.MaxConnections, global), nil
}

// lastCap remembers the last cap logged, so a cap is logged once and not on
// every render (a new number of listeners logs the new cap).
var lastCap atomic.Int64

func logCapOnce(want, capped, fdLimit int) {
	if lastCap.Swap(int64(capped)) == int64(capped) {
		return
	}
	slog.Warn("haproxy maxconn capped to fit the file-descriptor limit (raise ulimit -Hn for more)",
		"wanted", want, "maxconn", capped, "fd_limit", fdLimit)
}

// safePath admits only paths that need no quoting in any proxy's config.
func safePath(p string) bool { return services.SafeFilePath(p) }

// size is a close upper bound of the rendered config, so that the buffer is
// allocated once and not much larger than the file: at 10,000 services every
// spare megabyte is fresh memory the process must fault in. An overriding
// template may write more; the buffer then simply grows.
func (v *view) size() int {
	n := 3072 + len(v.AdminSocket) + len(v.StatsSocket) + len(v.StateFile) + len(v.User) + len(v.Group)
	for i := range v.Services {
		s := &v.Services[i]
		// listen, bind, mode, balance, maxconn and the blank line.
		n += 84 + len(s.Name)
		if s.HTTP {
			n += len("\n    option forwardfor if-none")
		}
		if s.CheckPath != "" {
			n += len("\n    option httpchk GET ") + len(s.CheckPath)
		}
		if s.TimeoutClient != "" {
			n += len("\n    timeout client ") + len(s.TimeoutClient)
		}
		if s.TimeoutServer != "" {
			n += len("\n    timeout server ") + len(s.TimeoutServer)
		}
		for j := range s.Servers {
			sv := &s.Servers[j]
			// "\n    server host_ip_port ip:port id N weight N", ports and
			// numbers at their longest.
			n += 52 + len(sv.srv.Host) + 2*ipLen(sv.srv.IP)
			if sv.srv.MaxConn != 0 {
				n += len(" maxconn ") + 10
			}
			if sv.Check {
				n += len(" check")
			}
		}
	}
	return n
}

// ipLen is the length of ip's text form, exact for IPv4 (the usual case)
// and the maximum for IPv6.
func ipLen(ip netip.Addr) int {
	if !ip.Is4() {
		return len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]")
	}
	n := 3
	for _, o := range ip.As4() {
		n++
		if o >= 10 {
			n++
		}
		if o >= 100 {
			n++
		}
	}
	return n
}

func newView(p Params, svcs []services.Service) (*view, error) {
	// Defence in depth: the services package's own rules, applied again to
	// whatever the caller built, whether or not it came through Parse.
	f := services.File{Version: services.Version, Services: svcs}
	if _, rejected := f.Split(); len(rejected) > 0 {
		var ps services.Problems
		for _, r := range rejected {
			ps = append(ps, r.Problems...)
		}
		return nil, fmt.Errorf("haproxy: refusing to render invalid services: %w", ps)
	}
	// The services' listens, the stats frontend, the admin and master CLI
	// sockets.
	global, perListen, err := p.maxConns(len(svcs) + 3)
	if err != nil {
		return nil, err
	}
	v := &view{
		GlobalMaxConn: global,
		MaxConn:       perListen,
		User:          p.User,
		Group:         p.Group,
		AdminSocket:   AdminSocket(p.RunDir),
		StatsSocket:   cmp.Or(p.StatsSocket, StatsSocket(p.RunDir)),
		StateFile:     StateFile(p.RunDir),
		Services:      make([]serviceView, 0, len(svcs)),
	}
	for i := range svcs {
		s := &svcs[i]
		if s.Protocol != services.TCP {
			return nil, fmt.Errorf("haproxy: service %s (%s): HAProxy serves TCP services only", s.Name, s.Key())
		}
		sv := serviceView{
			Name: s.Name + "-" + strconv.Itoa(s.Port),
			Port: s.Port,
			Mode: string(s.Mode),
			HTTP: s.Mode == services.ModeHTTP,
		}
		if sv.HTTP && s.HealthCheck != nil {
			sv.CheckPath = s.HealthCheck.Path
		}
		if s.Timeouts != nil {
			sv.TimeoutClient = millis(s.Timeouts.Client)
			sv.TimeoutServer = millis(s.Timeouts.Server)
		}
		sv.Servers = serverViews(s.Servers, sv.CheckPath != "")
		v.Services = append(v.Services, sv)
	}
	return v, nil
}

// serverViews names and numbers the servers. A server's name and id depend
// only on itself (never on its position), so a reload that adds or removes
// other servers leaves them unchanged and HAProxy's server-state file and
// stats keep following the same server.
func serverViews(srvs []services.Server, check bool) []serverView {
	out := make([]serverView, len(srvs))
	// A scan is cheaper than a map for the usual handful of servers; ids
	// are never 0, so the entries not yet filled never match.
	used := func(id uint32) bool {
		for j := range out {
			if out[j].ID == id {
				return true
			}
		}
		return false
	}
	if len(srvs) > 64 {
		seen := make(map[uint32]bool, len(srvs))
		used = func(id uint32) bool {
			if seen[id] {
				return true
			}
			seen[id] = true
			return false
		}
	}
	for i := range srvs {
		srv := &srvs[i]
		id := ServerID(*srv)
		// A collision (1 in ~2^31 per pair) is resolved by probing upwards
		// in the services file's canonical server order; only the later
		// server of the colliding pair can ever move.
		for used(id) {
			id = id%maxID + 1
		}
		out[i] = serverView{srv: srv, ID: id, Check: check}
	}
	return out
}

// maxID keeps ids positive 31-bit integers, which every HAProxy version accepts.
const maxID = 1<<31 - 1

// ServerID is the HAProxy server id a server gets (barring a collision
// within its service): a hash of its address, so it does not depend on which
// other servers exist.
func ServerID(srv services.Server) uint32 {
	// FNV-1a, written out: hash/fnv's interface allocates per call.
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	b := srv.IP.As16()
	for _, c := range b {
		h ^= uint32(c)
		h *= prime
	}
	for _, c := range [2]byte{byte(srv.Port >> 8), byte(srv.Port)} {
		h ^= uint32(c)
		h *= prime
	}
	return h%maxID + 1
}

// Weight scales a services.yaml weight (0..1000) to HAProxy's 0..256. A
// positive weight never rounds down to 0, which would drain the server.
func Weight(w int) int {
	hw := w * 256 / services.MaxWeight
	if hw == 0 && w > 0 {
		hw = 1
	}
	return hw
}

// millis renders a timeout in milliseconds; "" for zero (keep the default).
// A sub-millisecond remainder rounds up so a timeout never becomes 0.
func millis(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(int64(ms), 10) + "ms"
}
