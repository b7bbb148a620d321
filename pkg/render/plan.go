package render

import (
	"fmt"
	"slices"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

// maxHostLen is DNS's limit for a virtual host name.
const maxHostLen = 253

func (o *Options) validate() error {
	if !safePath(o.RunDir) {
		return fmt.Errorf("run dir %q: want an absolute, clean path of [A-Za-z0-9._/-]", o.RunDir)
	}
	if o.StatusSocket != "" && !safePath(o.StatusSocket) {
		return fmt.Errorf("status socket %q: want an absolute, clean path of [A-Za-z0-9._/-]", o.StatusSocket)
	}
	if o.VHostDomain != "" {
		if !services.ValidName(o.VHostDomain) {
			return fmt.Errorf("vhost domain %q: want a DNS name of lowercase [a-z0-9._-]", clip(o.VHostDomain))
		}
		if o.VHostPort < 1 || o.VHostPort > 65535 {
			return fmt.Errorf("vhost port %d is out of range 1..65535", o.VHostPort)
		}
	}
	if o.MaxConnections < 1 {
		return fmt.Errorf("max connections %d: want at least 1", o.MaxConnections)
	}
	if o.PenServers < 1 || o.PenServers > pen.MaxSlots {
		return fmt.Errorf("pen servers %d: want 1..%d", o.PenServers, pen.MaxSlots)
	}
	if o.PenClients < 1 {
		return fmt.Errorf("pen clients %d: want at least 1", o.PenClients)
	}
	return nil
}

// safePath admits only paths that need no quoting in any proxy's config.
func safePath(p string) bool { return services.SafeFilePath(p) }

func newPlan(o Options, svcs []services.Service, held *VHostClaims) Plan {
	var p Plan
	vhostOn := o.VHostDomain != ""
	byKey := func(a, b services.Service) int { return a.Key().Compare(b.Key()) }
	// services.yaml as sync writes it is already in key order; only read
	// here, so it needs no sorted copy (1.2 MB at 10,000 services).
	sorted := svcs
	if !slices.IsSortedFunc(sorted, byKey) {
		sorted = slices.Clone(svcs)
		slices.SortStableFunc(sorted, byKey)
	}
	if o.HAProxy && !vhostOn && !slices.ContainsFunc(sorted, func(s services.Service) bool { return s.Protocol != services.TCP }) {
		// All TCP, no virtual hosts: HAProxy gets every service, and the
		// plan (read only) can share the sorted list instead of copying it.
		p.HAProxy = sorted
		return p
	}
	// Nearly every service lands in one of the two lists: size it once
	// rather than growing it by doubling.
	if o.HAProxy {
		p.HAProxy = make([]services.Service, 0, len(sorted))
	} else {
		p.Pen = make([]services.Service, 0, len(sorted))
	}
	var owners map[string]services.Key
	if vhostOn {
		owners = vhostOwners(o, sorted, held)
	}
	for _, s := range sorted {
		if s.Protocol == services.TCP && vhostOn {
			host := s.Name + "." + o.VHostDomain
			switch owner := owners[host]; {
			case len(host) > maxHostLen:
				p.Skipped = append(p.Skipped, Skip{Service: s.Key(), Name: s.Name, Code: explain.InvalidName,
					Reason: fmt.Sprintf("no virtual host: %d-byte name %s... is longer than DNS allows", len(host), host[:40])})
			case owner != s.Key():
				p.Skipped = append(p.Skipped, Skip{Service: s.Key(), Name: s.Name, Code: explain.VHostConflict,
					Reason: fmt.Sprintf("no virtual host: %s is served by port %d", host, owner.Port), Holder: owner})
			default:
				p.VHosts = append(p.VHosts, nginx.VHost{Host: host, Service: s.Key(), Servers: s.Servers})
			}
		}
		if s.Protocol == services.TCP && vhostOn && s.Port == o.VHostPort {
			// nginx holds this port: binding it again would stop either.
			// port-taken: the vhost listener wins it, as by precedence
			// (port-in-use is another process holding it).
			p.Skipped = append(p.Skipped, Skip{Service: s.Key(), Name: s.Name, Code: explain.PortTaken,
				Reason: fmt.Sprintf("not listened on: port %d is the vhost port", s.Port)})
			continue
		}
		if s.Protocol == services.TCP && o.HAProxy {
			p.HAProxy = append(p.HAProxy, s)
		} else {
			p.Pen = append(p.Pen, s)
		}
	}
	if held != nil {
		held.keep(owners)
	}
	return p
}

// vhostOwners decides which service serves each virtual host name. Two
// services can claim one (/shop/web and /web.shop both become web.shop):
// the one that held the name at the last plan keeps it, so a newcomer
// never takes a virtual host away from the app serving it; a name nobody
// held goes to the lowest port (the original rule). sorted is in key
// order.
func vhostOwners(o Options, sorted []services.Service, held *VHostClaims) map[string]services.Key {
	owners := make(map[string]services.Key, len(sorted))
	for _, s := range sorted {
		if s.Protocol != services.TCP {
			continue
		}
		host := s.Name + "." + o.VHostDomain
		if len(host) > maxHostLen {
			continue
		}
		if _, taken := owners[host]; !taken {
			owners[host] = s.Key() // the lowest port, visited first
		}
		if held != nil && held.byHost[host] == s.Key() {
			owners[host] = s.Key()
		}
	}
	return owners
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
