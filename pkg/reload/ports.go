package reload

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/meltwater/proxymatic/pkg/services"
)

// portGuard keeps one service whose port another process holds from taking
// a whole proxy down: HAProxy refuses to start, and a reload fails, when any
// one of its listeners cannot bind ("Address already in use"), and its
// config check cannot see that. Before a file is applied, every port our
// proxies do not already listen on is bound and released once; a service
// whose port is taken is left out (logged, counted) and the file is applied
// again later, so the service comes up once the port is free.
type portGuard struct {
	// ours holds the keys the last apply gave the proxies: they may be
	// bound by our own proxies (HAProxy uses SO_REUSEPORT, pen does not),
	// so probing them would report our own listeners as conflicts.
	ours map[services.Key]bool
	// vhostPort is nginx's port (0 without --vhost-domain): services on it
	// are not bound by HAProxy or pen (render's plan skips them there).
	vhostPort int
	probe     func(services.Key) error
}

func newPortGuard(vhostPort int) *portGuard {
	return &portGuard{ours: map[services.Key]bool{}, vhostPort: vhostPort, probe: probePort}
}

// portBusy is a service left out because another process holds its port.
type portBusy struct {
	Service services.Service
	Err     error
}

// filter returns the services whose ports are ours or free, and the ones
// another process holds. It remembers the kept keys as ours.
func (g *portGuard) filter(svcs []services.Service) (kept []services.Service, busy []portBusy) {
	kept = make([]services.Service, 0, len(svcs))
	next := make(map[services.Key]bool, len(svcs))
	for _, s := range svcs {
		k := s.Key()
		if !g.ours[k] && s.Port != g.vhostPort {
			if err := g.probe(k); err != nil {
				busy = append(busy, portBusy{Service: s, Err: err})
				continue
			}
		}
		kept = append(kept, s)
		next[k] = true
	}
	g.ours = next
	portConflicts.Set(float64(len(busy)))
	return kept, busy
}

// probePort binds the service's port on all addresses, as the proxies do,
// and releases it. Only "address in use" counts: a permission error would
// hit a non-root agent whose proxies may hold the capability it lacks.
func probePort(k services.Key) error {
	addr := ":" + strconv.Itoa(k.Port)
	var err error
	if k.Protocol == services.UDP {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			return c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l.Close()
		}
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is held by another process", k)
	}
	return nil
}
