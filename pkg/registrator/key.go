package registrator

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/resolve"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Registration is one registrator key, parsed and validated.
type Registration struct {
	Name     string            // the service name, without an @port suffix
	Port     int               // the port the proxy listens on
	Protocol services.Protocol // tcp, or udp for a ":udp" key
	Host     string            // the key's hostname when valid as a services host, else ""
	Addr     netip.AddrPort    // where the proxy forwards to; only the port when Target is set
	// Target is the host name the value gave instead of an IP address
	// (lowercased, resolve.ValidHost); the state resolves it.
	Target string
}

// ParseKey parses one registration: rel is the key below the prefix,
// "<service-name>/<hostname>:<container-name>:<port>[:udp]", and value is
// "ip:port" (IPv6 bracketed) or "hostname:port". "<service-name>@<port>"
// overrides the listening port. It is a pure function: anything it accepts
// is valid by the services contract (name, host, ports, address, once a
// Target is resolved), and anything else is a *KeyError saying why. On an error, r holds
// what was parsed before it.
func ParseKey(rel, value string) (Registration, error) {
	var r Registration
	name, id, ok := strings.Cut(rel, "/")
	if !ok || name == "" || id == "" || strings.Contains(id, "/") {
		return r, keyErr(explain.MalformedKey, "key is not <service-name>/<hostname>:<container-name>:<port>[:udp]")
	}
	override := 0
	if base, p, ok := strings.Cut(name, "@"); ok {
		n, ok := parsePort(p)
		if !ok {
			return r, keyErr(explain.MalformedKey, "service name %q: port after '@' is not a number in 1..65535", clip(name))
		}
		name, override = base, n
	}
	// Registrator takes SERVICE_NAME from the image or the environment, so
	// "MyService" happens; the contract is lowercase, as Marathon app ids
	// are lowercased. Only ASCII is folded: strings.ToLower would turn a
	// Kelvin sign into "k".
	name = services.ASCIILower(name)
	if !services.ValidName(name) {
		return r, keyErr(explain.InvalidName, "service name %q is not a valid name: want lowercase [a-z0-9._-], starting with a letter or digit", clip(name))
	}
	r.Name = name

	parts := strings.Split(id, ":")
	r.Protocol = services.TCP
	switch last := parts[len(parts)-1]; last {
	case "udp":
		r.Protocol = services.UDP
		parts = parts[:len(parts)-1]
	case "tcp":
		parts = parts[:len(parts)-1]
	}
	if len(parts) < 3 {
		return r, keyErr(explain.MalformedKey, "service id %q is not <hostname>:<container-name>:<port>[:udp]", clip(id))
	}
	port, ok := parsePort(parts[len(parts)-1])
	if !ok {
		return r, keyErr(explain.MalformedKey, "service id %q: port %q is not a number in 1..65535", clip(id), clip(parts[len(parts)-1]))
	}
	r.Port = port
	if override != 0 {
		r.Port = override
	}
	// The hostname is informational: one that is not a valid name is
	// dropped rather than the whole registration.
	if h := services.ASCIILower(parts[0]); services.ValidName(h) {
		r.Host = h
	}

	ap, err := netip.ParseAddrPort(strings.TrimSpace(value))
	if err != nil {
		// A host name, as the original resolved: "node-1.example.com:31001".
		h, p, ok := strings.Cut(strings.TrimSpace(value), ":")
		h = strings.TrimSuffix(services.ASCIILower(h), ".")
		port, okPort := parsePort(p)
		if !ok || !okPort || !resolve.ValidHost(h) {
			return r, keyErr(explain.MalformedKey, "value %q is not ip:port (IPv6 bracketed) or hostname:port", clip(value))
		}
		r.Target, r.Addr = h, netip.AddrPortFrom(netip.Addr{}, uint16(port))
		return r, nil
	}
	ip := ap.Addr().Unmap()
	if ip.Zone() != "" || !ip.IsValid() {
		return r, keyErr(explain.InvalidAddress, "value %q: want a routable IPv4 or IPv6 address without zone", clip(value))
	}
	if why := services.NeverService(ip); why != "" {
		return r, keyErr(explain.InvalidAddress, "value %q: %s is %s, never a service", clip(value), ip, why)
	}
	if ap.Port() == 0 {
		return r, keyErr(explain.InvalidAddress, "value %q: port 0 is not a port to forward to", clip(value))
	}
	r.Addr = netip.AddrPortFrom(ip, ap.Port())
	return r, nil
}

// KeyError is why ParseKey refused a key; Reason is the explain code the
// status endpoint reports it under.
type KeyError struct {
	Reason explain.Reason
	msg    string
}

func (e *KeyError) Error() string { return e.msg }

func keyErr(reason explain.Reason, format string, args ...any) error {
	return &KeyError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// parsePort accepts only plain decimal digits (no sign, no spaces) in 1..65535.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= 65535
}

// relKey returns the part of an etcd key below prefix ("" for the root),
// and false when the key is not below it.
func relKey(prefix, key string) (string, bool) {
	p := prefix + "/"
	if !strings.HasPrefix(key, p) {
		return "", false
	}
	return key[len(p):], true
}
