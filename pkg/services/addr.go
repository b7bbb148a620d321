package services

import (
	"net/netip"
	"sync/atomic"
)

// allowLinkLocal is the process-wide link-local policy (see AllowLinkLocal).
var allowLinkLocal atomic.Bool

// AllowLinkLocal admits link-local unicast addresses (169.254.0.0/16,
// fe80::/10) as servers. It is process-wide and set once at start-up from
// --allow-link-local (ALLOW_LINK_LOCAL), before any file is read or
// written: both binaries validate with the same rule, so what sync writes
// with the flag, reload must be started with the flag to serve.
func AllowLinkLocal(allow bool) { allowLinkLocal.Store(allow) }

// LinkLocalAllowed reports the policy AllowLinkLocal set.
func LinkLocalAllowed() bool { return allowLinkLocal.Load() }

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	broadcast   = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	// nat64 is the well-known NAT64 prefix (RFC 6052): a gateway connects
	// to the IPv4 address in its last 32 bits.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// NeverService says why ip can never be a backend a proxy should forward
// to, or "" when it can. Refused: the unspecified address and the rest of
// 0.0.0.0/8 ("this network": connecting to it reaches the proxy's own
// host), the limited broadcast address, multicast, and link-local unicast
// (169.254.0.0/16 and fe80::/10: cloud metadata endpoints live there, and a
// link-local address means nothing beyond one link) unless AllowLinkLocal.
// An address in the NAT64 prefix is refused when the IPv4 address it
// reaches is. Loopback stays allowed: a proxy in front of a service on its
// own host is a real set-up.
func NeverService(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not an address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.Is4() && thisNetwork.Contains(ip):
		return "in 0.0.0.0/8 (this host's network)"
	case ip == broadcast:
		return "the broadcast address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsLinkLocalUnicast() && !allowLinkLocal.Load():
		return "a link-local address (169.254.0.0/16, fe80::/10; --allow-link-local admits them)"
	case nat64.Contains(ip):
		b := ip.As16()
		if why := NeverService(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return "a NAT64 address (64:ff9b::/96) of " + why
		}
	}
	return ""
}
