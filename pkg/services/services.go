// Package services owns the services.yaml v1 contract between proxymatic-sync
// and proxymatic-reload: the types, decoding, validation and the canonical
// encoding. Both binaries go through this package, so a file one writes is
// exactly what the other reads.
//
// Names, hosts and health-check paths are the only free text that reaches a
// proxy config. Their character sets are the guard against config injection:
// validation here is the single place that enforces them.
package services

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Version is the only schema version this package reads and writes.
const Version = 1

// DefaultWeight is written for a server whose source gave no weight.
const DefaultWeight = 500

// MaxWeight is the top of the weight scale (the proxies' own scales are derived from it).
const MaxWeight = 1000

// Protocol is the transport a service listens on.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Mode says whether a TCP service is proxied at layer 4 or layer 7.
type Mode string

const (
	ModeTCP  Mode = "tcp"
	ModeHTTP Mode = "http"
)

// Source names the discovery source that produced a service.
type Source string

const (
	SourceMarathon    Source = "marathon"
	SourceRegistrator Source = "registrator"
)

// File is one services.yaml document.
type File struct {
	Version  int
	Services []Service
}

// Service is one listening (port, protocol) and the servers behind it.
type Service struct {
	Name        string
	Port        int
	Protocol    Protocol
	Mode        Mode
	Source      Source // empty when a hand-written file omits it
	HealthCheck *HealthCheck
	Timeouts    *Timeouts
	Servers     []Server

	// Line is the line the service starts on in the decoded document (0 when
	// the service was built in memory). It is never encoded.
	Line int
}

// HealthCheck is the layer 7 check used when Mode is http. Interval,
// Timeout and Failures are optional (zero: the proxy's default); sync takes
// them from the app's Marathon health check.
type HealthCheck struct {
	Path     string
	Interval time.Duration // between checks of one server
	Timeout  time.Duration // for one check's answer
	Failures int           // consecutive failed checks before a server is down; 1..MaxFailures
}

// Timeouts override the proxies' defaults; a zero value keeps the default.
type Timeouts struct {
	Client time.Duration
	Server time.Duration
}

// Server is one backend address of a service.
type Server struct {
	Host    string // the name the source reported; may be empty
	IP      netip.Addr
	Port    int
	Weight  int // 0..MaxWeight
	MaxConn int // 0 means unlimited
}

// Key identifies a service: (port, protocol) is unique in a file.
type Key struct {
	Port     int
	Protocol Protocol
}

// Key returns the service's unique key.
func (s *Service) Key() Key { return Key{Port: s.Port, Protocol: s.Protocol} }

// String renders the key as "10001/tcp".
func (k Key) String() string { return itoa(k.Port) + "/" + string(k.Protocol) }

// Address renders the server address as host:port, IPv6 bracketed.
func (s Server) Address() string {
	return netip.AddrPortFrom(s.IP, uint16(s.Port)).String()
}

// Compare orders keys by port, then protocol.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Port, o.Port); c != 0 {
		return c
	}
	return cmp.Compare(k.Protocol, o.Protocol)
}

func compareServers(a, b Server) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Normalize puts a file in canonical order and fills defaults, so the same
// state always encodes to the same bytes whatever order the sources gave it.
// It does not validate.
func (f *File) Normalize() {
	f.Version = Version
	for i := range f.Services {
		s := &f.Services[i]
		if s.Protocol == "" {
			s.Protocol = TCP
		}
		if s.Mode == "" {
			s.Mode = ModeTCP
		}
		if s.Timeouts != nil && s.Timeouts.Client == 0 && s.Timeouts.Server == 0 {
			s.Timeouts = nil
		}
		if s.HealthCheck != nil && s.HealthCheck.Path == "" {
			s.HealthCheck = nil
		}
		for j := range s.Servers {
			s.Servers[j].IP = s.Servers[j].IP.Unmap()
		}
		// Checked first: a stable sort of a sorted list still costs
		// n log n comparisons and moves, and Normalize mostly meets files
		// that are normalized already (each merge normalizes again).
		if !slices.IsSortedFunc(s.Servers, compareServers) {
			slices.SortStableFunc(s.Servers, compareServers)
		}
	}
	byKey := func(a, b Service) int { return a.Key().Compare(b.Key()) }
	if !slices.IsSortedFunc(f.Services, byKey) {
		slices.SortStableFunc(f.Services, byKey)
	}
}

// Equal reports whether two services would encode to the same bytes.
func (s *Service) Equal(o *Service) bool {
	if s.Name != o.Name || s.Port != o.Port || s.Protocol != o.Protocol || s.Mode != o.Mode || s.Source != o.Source {
		return false
	}
	if (s.HealthCheck == nil) != (o.HealthCheck == nil) || (s.HealthCheck != nil && *s.HealthCheck != *o.HealthCheck) {
		return false
	}
	if (s.Timeouts == nil) != (o.Timeouts == nil) || (s.Timeouts != nil && *s.Timeouts != *o.Timeouts) {
		return false
	}
	return slices.Equal(s.Servers, o.Servers)
}

// Clone returns a deep copy, so a consumer can keep a snapshot that later
// changes to the original do not reach.
func (s *Service) Clone() Service {
	c := *s
	if s.HealthCheck != nil {
		hc := *s.HealthCheck
		c.HealthCheck = &hc
	}
	if s.Timeouts != nil {
		t := *s.Timeouts
		c.Timeouts = &t
	}
	c.Servers = slices.Clone(s.Servers)
	return c
}
