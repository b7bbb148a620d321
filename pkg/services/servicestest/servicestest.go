// Package servicestest generates valid, normalized services.yaml services
// of every shape the contract allows, deterministically from a seed, for
// the tests that hold a hand-written fast path (the proxies' config
// writers) to its reference (their templates) on more than a handful of
// fixed services.
package servicestest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// Generate returns n valid services (unique keys, normalized order) drawn
// from seed: names of every length and character class, TCP and UDP, tcp
// and http modes, health-check paths, timeouts from a millisecond to days,
// weights 0-1000 (0: drained), maxconn absent, 1 or large, servers with and
// without a host name, IPv4 and IPv6 (fd00:: and ::1 included), none to many
// servers per service. The same seed gives the same services.
func Generate(seed uint64, n int) []services.Service {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]services.Service, 0, n)
	used := map[services.Key]bool{}
	for len(out) < n {
		s := service(r, len(out))
		if used[s.Key()] {
			continue
		}
		used[s.Key()] = true
		out = append(out, s)
	}
	f := services.File{Version: services.Version, Services: out}
	f.Normalize()
	if err := f.Validate(); err != nil {
		panic(fmt.Sprintf("servicestest generated invalid services: %v", err))
	}
	return f.Services
}

const (
	nameFirst = "abcdefghijklmnopqrstuvwxyz0123456789"
	// labelChars may follow within a label (a name's first byte is one of
	// nameFirst).
	labelChars = nameFirst + "_-"
	pathChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/%?=&+:@,"
)

// Name returns a valid name (services.ValidName): mostly dotted words,
// sometimes a single character, sometimes the longest allowed (labels of
// up to 63 bytes, 253 in all).
func Name(r *rand.Rand, i int) string {
	switch r.IntN(10) {
	case 0:
		return string(nameFirst[r.IntN(len(nameFirst))])
	case 1:
		var b []byte
		// Another label needs room for its dot and one byte.
		for len(b) == 0 || len(b) <= services.MaxNameLen-2 {
			if len(b) > 0 {
				b = append(b, '.')
			}
			n := min(1+r.IntN(services.MaxLabelLen), services.MaxNameLen-len(b))
			b = append(b, label(r, n, len(b) == 0)...)
		}
		return string(b)
	}
	words := 1 + r.IntN(4)
	parts := make([]string, words)
	for j := range parts {
		parts[j] = string(label(r, 1+r.IntN(12), j == 0))
	}
	parts[0] = fmt.Sprintf("%s%d", parts[0], i)
	return strings.Join(parts, ".")
}

// label is one DNS label of n bytes; the first of a name starts with a
// letter or digit.
func label(r *rand.Rand, n int, first bool) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		if len(b) == 0 && first {
			b = append(b, nameFirst[r.IntN(len(nameFirst))])
			continue
		}
		b = append(b, labelChars[r.IntN(len(labelChars))])
	}
	return b
}

func path(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return "/"
	}
	b := []byte{'/'}
	for range 1 + r.IntN(40) {
		b = append(b, pathChars[r.IntN(len(pathChars))])
	}
	return string(b)
}

func duration(r *rand.Rand) time.Duration {
	switch r.IntN(5) {
	case 0:
		return time.Duration(1+r.IntN(999)) * time.Millisecond
	case 1:
		return time.Duration(1+r.IntN(86400)) * time.Second
	case 2:
		return time.Duration(1+r.IntN(500)) * time.Hour // up to ~20 days
	case 3:
		return time.Duration(1+r.IntN(3_600_000)) * time.Millisecond
	}
	return time.Duration(1+r.IntN(300)) * time.Second
}

// addr is a backend address the contract accepts: never one that
// services.NeverService refuses (unspecified, multicast, broadcast,
// link-local, 0.0.0.0/8).
func addr(r *rand.Rand) netip.Addr {
	for {
		if a := anyAddr(r); services.NeverService(a) == "" {
			return a
		}
	}
}

func anyAddr(r *rand.Rand) netip.Addr {
	switch r.IntN(8) {
	case 0:
		return netip.MustParseAddr("fd00::")
	case 1:
		return netip.IPv6Loopback()
	case 2, 3:
		var a [16]byte
		for i := range a {
			a[i] = byte(r.IntN(256))
		}
		if r.IntN(2) == 0 {
			clear(a[4:14]) // runs of zeros: "::" in the middle
		}
		if a[0] == 0 && a[1] == 0 { // keep it from being an IPv4-mapped or compatible address
			a[0] = 0xfd
		}
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
}

func service(r *rand.Rand, i int) services.Service {
	s := services.Service{
		Name:     Name(r, i),
		Port:     1 + r.IntN(65535),
		Protocol: services.TCP,
		Mode:     services.ModeTCP,
		Source:   []services.Source{"", services.SourceMarathon, services.SourceRegistrator}[r.IntN(3)],
	}
	switch r.IntN(4) {
	case 0:
		s.Protocol = services.UDP
	case 1, 2:
		s.Mode = services.ModeHTTP
		if r.IntN(2) == 0 {
			hc := &services.HealthCheck{Path: path(r)}
			// The optional timing fields, each present or not.
			if r.IntN(2) == 0 {
				hc.Interval = checkDuration(r)
			}
			if r.IntN(2) == 0 {
				hc.Timeout = checkDuration(r)
			}
			if r.IntN(2) == 0 {
				hc.Failures = 1 + r.IntN(services.MaxFailures)
			}
			s.HealthCheck = hc
		}
	}
	if r.IntN(3) == 0 {
		t := &services.Timeouts{}
		if r.IntN(3) != 0 {
			t.Client = duration(r)
		}
		if r.IntN(3) != 0 || t.Client == 0 {
			t.Server = duration(r)
		}
		s.Timeouts = t
	}
	var n int
	switch r.IntN(10) {
	case 0:
		n = 0
	case 1:
		n = 20 + r.IntN(60)
	default:
		n = 1 + r.IntN(6)
	}
	seen := map[netip.AddrPort]bool{}
	for len(s.Servers) < n {
		srv := services.Server{IP: addr(r), Port: 1 + r.IntN(65535), Weight: services.DefaultWeight}
		ap := netip.AddrPortFrom(srv.IP, uint16(srv.Port))
		if seen[ap] {
			continue
		}
		seen[ap] = true
		switch r.IntN(6) {
		case 0:
			srv.Weight = 0
		case 1:
			srv.Weight = services.MaxWeight
		case 2, 3:
			srv.Weight = r.IntN(services.MaxWeight + 1)
		}
		switch r.IntN(5) {
		case 0:
			srv.MaxConn = 1
		case 1:
			srv.MaxConn = 1 + r.IntN(1<<20)
		}
		if r.IntN(3) != 0 {
			srv.Host = Name(r, r.IntN(100))
		}
		s.Servers = append(s.Servers, srv)
	}
	slices.SortFunc(s.Servers, func(a, b services.Server) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	return s
}

// checkDuration is a health-check interval or timeout: from a millisecond
// to services.MaxCheckDuration, round values more often than not.
func checkDuration(r *rand.Rand) time.Duration {
	switch r.IntN(4) {
	case 0:
		return services.MaxCheckDuration
	case 1:
		return time.Duration(1+r.IntN(1000)) * time.Millisecond
	default:
		return time.Duration(1+r.IntN(120)) * time.Second
	}
}
