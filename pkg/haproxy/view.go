package haproxy

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
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
	HardStopAfter string // "" omits hard-stop-after
	AdminSocket   string
	StatsSocket   string
	StateFile     string
	User, Group   string
	Services      []serviceView

	vhostDomain string // names the health checks' Host header
}

type serviceView struct {
	Name          string // listen section: "<name>-<port>"
	Port          int
	Mode          string // "tcp" or "http"
	HTTP          bool
	CheckPath     string // "" when no HTTP health check
	CheckHost     string // the Host header of the check
	CheckTimeout  string // "" keeps the default (timeout check)
	TimeoutClient string // "" keeps the default
	TimeoutServer string
	Servers       []serverView

	check *serverCheck // what every server's line says about checks
}

// serverCheck is the health check settings on a service's server lines
// (not default-server: `add server` at run time does not read it).
type serverCheck struct {
	inter string // "" keeps HAProxy's default (2s)
	fall  int    // 0 keeps HAProxy's default (3)
}

type serverView struct {
	// A pointer into the services being rendered, which outlive the view:
	// a copy per server was 2.9 MB of fresh memory at 40,000 servers.
	srv   *services.Server
	check *serverCheck // nil: not checked
	ID    uint32
}

// appendCheck writes the check keywords of the server's line.
func (s serverView) appendCheck(b []byte) []byte {
	if s.check == nil {
		return b
	}
	b = append(b, " check"...)
	if s.check.inter != "" {
		b = append(b, " inter "...)
		b = append(b, s.check.inter...)
	}
	if s.check.fall != 0 {
		b = append(b, " fall "...)
		b = strconv.AppendInt(b, int64(s.check.fall), 10)
	}
	return b
}

// Check reports whether the server is health checked.
func (s serverView) Check() bool { return s.check != nil }

// Inter is the time between two checks, "" for HAProxy's default.
func (s serverView) Inter() string {
	if s.check == nil {
		return ""
	}
	return s.check.inter
}

// Fall is how many failed checks mark the server down, 0 for HAProxy's default.
func (s serverView) Fall() int {
	if s.check == nil {
		return 0
	}
	return s.check.fall
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
	if p.Template == nil {
		v, err := headerView(p, svcs)
		if err != nil {
			return nil, err
		}
		return writeDirect(v, svcs), nil
	}
	v, err := newView(p, svcs)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(v.size(svcs))
	if err := p.Template.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("haproxy template: %w", err)
	}
	return buf.Bytes(), nil
}

// parallelRenderMin is the number of services from which the default
// config is written in two halves at once.
const parallelRenderMin = 2048

// writeDirect writes what writeDefault writes for v with svcs as its
// services, without holding a view of every service: each listen's view is
// built as it is written (the views of 10,000 services were 2.5 MB of fresh
// memory), and from parallelRenderMin services on, the second half is
// written concurrently into its own part of the one buffer, then moved
// down to follow the first.
func writeDirect(v *view, svcs []services.Service) []byte {
	size := v.size(svcs)
	buf := writeHeader(make([]byte, 0, size), v)
	if len(svcs) < parallelRenderMin || len(buf) == 0 {
		return writeListens(buf, v, svcs)
	}
	mid := len(svcs) / 2
	split := len(buf)
	for i := range svcs[:mid] {
		split += listenSize(&svcs[i])
	}
	full := buf[:size]
	var second []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		second = writeListens(full[split:split:size], v, svcs[mid:])
	}()
	first := writeListens(buf[:len(buf):split], v, svcs[:mid])
	<-done
	if &first[0] == &full[0] && (len(second) == 0 || &second[0] == &full[split]) {
		n := copy(full[len(first):], second) // overlapping: copy moves
		return full[:len(first)+n]
	}
	// A half outgrew its part (size is a bound, so only a bug gets here).
	return append(first[:len(first):len(first)], second...)
}

// writeListens writes the listen sections of svcs, reusing one slice for
// the server views.
func writeListens(b []byte, v *view, svcs []services.Service) []byte {
	var servers []serverView
	for i := range svcs {
		s := &svcs[i]
		chk := checkOf(s)
		servers = serverViewsInto(servers, s.Servers, chk)
		sv := listenView(s, servers, chk, v.vhostDomain)
		b = writeListen(b, &sv, v.MaxConn)
	}
	return b
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
	if p.HardStopAfter < 0 || p.HardStopAfter > MaxHardStopAfter {
		return fmt.Errorf("haproxy: hard-stop-after %s: want 0 (none) up to %s", p.HardStopAfter, MaxHardStopAfter)
	}
	if p.VHostDomain != "" && !services.ValidName(p.VHostDomain) {
		return fmt.Errorf("haproxy: vhost domain %q: want a DNS name of lowercase [a-z0-9._-]", p.VHostDomain)
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

// size is a close upper bound of the config rendered for svcs under v's
// header, so that the buffer is allocated once and not much larger than the
// file: at 10,000 services every spare megabyte is fresh memory the process
// must fault in. An overriding template may write more; its buffer then
// simply grows.
func (v *view) size(svcs []services.Service) int {
	n := 3072 + len(v.AdminSocket) + len(v.StatsSocket) + len(v.StateFile) + len(v.User) + len(v.Group)
	for i := range svcs {
		n += listenSize(&svcs[i])
	}
	return n
}

// listenSize bounds the listen section of s.
func listenSize(s *services.Service) int {
	// listen name-port, bind, mode, balance, maxconn and the blank line.
	n := 90 + len(s.Name)
	if s.Mode == services.ModeHTTP {
		n += len("\n    option forwardfor if-none")
	}
	path := checkPath(s)
	if path != "" {
		n += len("\n    option httpchk\n    http-check send meth GET uri  ver HTTP/1.1 hdr Host ") + len(path) + services.MaxNameLen
		// timeout check: at most 24h in millis.
		n += len("\n    timeout check 86400000ms")
	}
	if s.Timeouts != nil {
		// millis: at most 10 digits and "ms".
		n += 2 * (len("\n    timeout client ") + 12)
	}
	for j := range s.Servers {
		srv := &s.Servers[j]
		// "\n    server host_ip_port ip:port id N weight N", ports and
		// numbers at their longest.
		n += 52 + len(srv.Host) + 2*ipLen(srv.IP)
		if srv.MaxConn != 0 {
			n += len(" maxconn ") + 10
		}
		if path != "" {
			n += len(" check inter 86400000ms fall 1000")
		}
	}
	return n
}

// checkOf is the check on s's server lines, nil when they are not checked.
func checkOf(s *services.Service) *serverCheck {
	if checkPath(s) == "" {
		return nil
	}
	hc := s.HealthCheck
	if hc.Interval == 0 && hc.Failures == 0 {
		return &defaultCheck // shared: most checks carry no settings of their own
	}
	return &serverCheck{inter: millis(hc.Interval), fall: hc.Failures}
}

// defaultCheck is a bare " check" with HAProxy's interval and fall.
var defaultCheck serverCheck

// checkHost is the Host header of s's health checks: its virtual host name
// under domain, as nginx serves it, or its name without a domain (or when
// the virtual host name would be longer than DNS allows).
func checkHost(s *services.Service, domain string) string {
	if domain == "" || len(s.Name)+1+len(domain) > services.MaxNameLen {
		return s.Name
	}
	return s.Name + "." + domain
}

// checkPath is the HTTP health check path HAProxy checks s's servers with,
// or "".
func checkPath(s *services.Service) string {
	if s.Mode == services.ModeHTTP && s.HealthCheck != nil {
		return s.HealthCheck.Path
	}
	return ""
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
	v, err := headerView(p, svcs)
	if err != nil {
		return nil, err
	}
	v.Services = make([]serviceView, 0, len(svcs))
	for i := range svcs {
		s := &svcs[i]
		chk := checkOf(s)
		v.Services = append(v.Services, listenView(s, serverViews(s.Servers, chk), chk, v.vhostDomain))
	}
	return v, nil
}

// headerView checks svcs and returns the view of everything but the
// services' listen sections.
func headerView(p Params, svcs []services.Service) (*view, error) {
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
	for i := range svcs {
		if s := &svcs[i]; s.Protocol != services.TCP {
			return nil, fmt.Errorf("haproxy: service %s (%s): HAProxy serves TCP services only", s.Name, s.Key())
		}
	}
	// The services' listens, the stats frontend, the admin and master CLI
	// sockets.
	global, perListen, err := p.maxConns(len(svcs) + 3)
	if err != nil {
		return nil, err
	}
	return &view{
		GlobalMaxConn: global,
		MaxConn:       perListen,
		HardStopAfter: haproxyTime(p.HardStopAfter),
		vhostDomain:   p.VHostDomain,
		User:          p.User,
		Group:         p.Group,
		AdminSocket:   AdminSocket(p.RunDir),
		StatsSocket:   cmp.Or(p.StatsSocket, StatsSocket(p.RunDir)),
		StateFile:     StateFile(p.RunDir),
	}, nil
}

// listenView is the view of one service's listen section; chk is
// checkOf(s), shared with its servers' views.
func listenView(s *services.Service, servers []serverView, chk *serverCheck, domain string) serviceView {
	sv := serviceView{
		Name:      s.Name + "-" + strconv.Itoa(s.Port),
		Port:      s.Port,
		Mode:      string(s.Mode),
		HTTP:      s.Mode == services.ModeHTTP,
		CheckPath: checkPath(s),
		Servers:   servers,
		check:     chk,
	}
	if chk != nil {
		sv.CheckHost = checkHost(s, domain)
		sv.CheckTimeout = millis(s.HealthCheck.Timeout)
	}
	if s.Timeouts != nil {
		sv.TimeoutClient = millis(s.Timeouts.Client)
		sv.TimeoutServer = millis(s.Timeouts.Server)
	}
	return sv
}

// serverViews names and numbers the servers. A server's name and id depend
// only on itself (never on its position), so a reload that adds or removes
// other servers leaves them unchanged and HAProxy's server-state file and
// stats keep following the same server.
func serverViews(srvs []services.Server, check *serverCheck) []serverView {
	return serverViewsInto(nil, srvs, check)
}

// serverViewsInto is serverViews reusing dst's array.
func serverViewsInto(dst []serverView, srvs []services.Server, check *serverCheck) []serverView {
	out := slices.Grow(dst[:0], len(srvs))[:len(srvs)]
	clear(out)
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
		out[i] = serverView{srv: srv, ID: id, check: check}
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

// MaxHardStopAfter is the longest hard-stop-after HAProxy takes: its timers
// hold 2^31-1 milliseconds.
const MaxHardStopAfter = (1<<31 - 1) * time.Millisecond

// haproxyTime renders a duration in HAProxy's time format with the largest
// unit that is exact ("30m", "90s"), "" for zero.
func haproxyTime(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return millis(d)
}

// millis renders a timeout in milliseconds; "" for zero (keep the default).
// A sub-millisecond remainder rounds up so a timeout never becomes 0. The
// result saturates at HAProxy's limit (services.MaxTimeout, which Validate
// enforces): rounding up by adding first overflowed near the largest
// Duration into a negative timeout.
func millis(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	ms = min(ms, services.MaxTimeout/time.Millisecond)
	return strconv.FormatInt(int64(ms), 10) + "ms"
}
