package haproxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// The hand-written writer must render byte for byte what the embedded
// template renders, for every branch of the template.
func TestWriteDefaultMatchesTemplate(t *testing.T) {
	ip := netip.MustParseAddr
	all := []services.Service{
		{Name: "a", Port: 1, Protocol: services.TCP, Mode: services.ModeTCP},
		{Name: "b", Port: 2, Protocol: services.TCP, Mode: services.ModeHTTP,
			Servers: []services.Server{{IP: ip("10.0.0.1"), Port: 80, Weight: 1000, MaxConn: 7, Host: "h.example"}}},
		{Name: "c", Port: 3, Protocol: services.TCP, Mode: services.ModeHTTP, HealthCheck: &services.HealthCheck{Path: "/x?y=1"},
			Timeouts: &services.Timeouts{Client: time.Second}, Servers: []services.Server{{IP: ip("::1"), Port: 80}, {IP: ip("10.0.0.2"), Port: 81, Weight: 1}}},
		{Name: "d", Port: 4, Protocol: services.TCP, Mode: services.ModeTCP, Timeouts: &services.Timeouts{Server: time.Minute},
			Servers: []services.Server{{IP: ip("10.0.0.3"), Port: 80, Weight: 3, MaxConn: 1}}},
		{Name: "e.with.a.longer.name", Port: 65535, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/health/check/path"},
			Timeouts:    &services.Timeouts{Client: 90 * time.Minute, Server: 1500 * time.Millisecond},
			Servers: []services.Server{
				{IP: ip("255.255.255.254"), Port: 65535, Weight: 1000, MaxConn: 1000000, Host: "agent-255.a.long.domain.example.com"},
				{IP: ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Port: 65535, Weight: 999, MaxConn: 1000000, Host: "v6.example"},
			}},
		{Name: "f", Port: 6, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/h", Interval: 24 * time.Hour, Timeout: time.Nanosecond, Failures: 1000},
			Servers:     []services.Server{{IP: ip("10.0.0.6"), Port: 80, Weight: 500}}},
		{Name: "g", Port: 7, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/h", Failures: 2},
			Servers:     []services.Server{{IP: ip("10.0.0.7"), Port: 80, Weight: 500}}},
		{Name: "h." + string(bytes.Repeat([]byte(string(bytes.Repeat([]byte("x"), 60))+"."), 3)) + string(bytes.Repeat([]byte("x"), 47)), Port: 8, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/h", Interval: 1500 * time.Millisecond},
			Servers:     []services.Server{{IP: ip("10.0.0.8"), Port: 80, Weight: 500}}},
	}
	for n := 0; n <= len(all); n++ {
		for _, p := range []Params{
			{RunDir: "/run", MaxConnections: 1},
			{RunDir: "/var/run/x", MaxConnections: 9999, StatsSocket: "/s.sock", User: "haproxy", HardStopAfter: 30 * time.Minute},
			{RunDir: "/var/run/x", MaxConnections: 9999, FDLimit: 1000, User: "haproxy", Group: "haproxy", HardStopAfter: 1500 * time.Millisecond, VHostDomain: "apps.example.com"},
			{RunDir: "/run", MaxConnections: 5, HardStopAfter: MaxHardStopAfter, VHostDomain: "a"},
		} {
			v, err := newView(p, all[:n])
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := defaultTemplate.Execute(&want, v); err != nil {
				t.Fatal(err)
			}
			if got := writeDefault(nil, v); !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%d services: writer and template differ\nwriter:\n%s\ntemplate:\n%s", n, got, want.Bytes())
			}
			// render allocates its buffer once, from size: the bound must hold
			// for the services' part alone, not only thanks to the header's slack.
			v0, _ := newView(p, nil)
			if got, bound := len(want.Bytes())-len(writeDefault(nil, v0)), v.size(all[:n])-v0.size(nil); got > bound {
				t.Errorf("%d services: size() allows %d bytes for them, %d rendered", n, bound, got)
			}
			if got := len(want.Bytes()); got > v.size(all[:n]) {
				t.Errorf("%d services: size() = %d, less than the %d bytes rendered", n, v.size(all[:n]), got)
			}
		}
	}
}

// size must bound every server line, the longest shapes included: with many
// servers per service the per-service slack cannot hide a short estimate.
func TestSizeBoundsLongestServerLines(t *testing.T) {
	// The longest valid host: 253 bytes in labels of at most 63.
	label := string(bytes.Repeat([]byte("x"), 63))
	long := "agent-" + label[6:] + "." + label + "." + label + "." + label[:61]
	// The longest addresses a server may have (broadcast and multicast are
	// never one).
	for _, ipText := range []string{"255.255.255.254", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1.2.3.4"} {
		s := services.Service{Name: "svc", Port: 65535, Protocol: services.TCP, Mode: services.ModeHTTP,
			HealthCheck: &services.HealthCheck{Path: "/"}}
		base := netip.MustParseAddr(ipText)
		for i := range 500 {
			s.Servers = append(s.Servers, services.Server{IP: base, Port: 65535 - i, Weight: 1000, MaxConn: 1 << 30, Host: long})
		}
		p := Params{RunDir: "/run", MaxConnections: 1 << 20}
		v, err := newView(p, []services.Service{s})
		if err != nil {
			t.Fatal(err)
		}
		v0, _ := newView(p, nil)
		if got, bound := len(writeDefault(nil, v))-len(writeDefault(nil, v0)), v.size([]services.Service{s})-v0.size(nil); got > bound {
			t.Errorf("%s: size() allows %d bytes for 500 servers, %d rendered", ipText, bound, got)
		}
	}
}

// render writes the default config straight from the services, in two
// halves at once from parallelRenderMin services on; it must match the
// view-based writer (held to the template above) byte for byte, on both
// sides of that threshold and whichever half holds which shapes.
func TestWriteDirectMatchesWriteDefault(t *testing.T) {
	shapes := func(i int) services.Service {
		s := services.Service{Name: fmt.Sprintf("svc%d.example", i), Port: 1000 + i, Protocol: services.TCP, Mode: services.ModeTCP}
		switch i % 5 {
		case 1:
			s.Mode = services.ModeHTTP
			s.HealthCheck = &services.HealthCheck{Path: "/health"}
		case 2:
			s.Mode = services.ModeHTTP
			s.Timeouts = &services.Timeouts{Client: time.Duration(i) * time.Millisecond, Server: time.Minute}
		case 3:
			s.Timeouts = &services.Timeouts{Server: time.Second}
		}
		for j := range i % 7 {
			srv := services.Server{IP: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}), Port: 31000 + j, Weight: (i * j) % 1001}
			if j%3 == 1 {
				srv.IP = netip.MustParseAddr(fmt.Sprintf("fd00::%x:%x", i, j))
				srv.MaxConn = i
			}
			if j%2 == 0 {
				srv.Host = fmt.Sprintf("agent-%d.example.com", j)
			}
			s.Servers = append(s.Servers, srv)
		}
		return s
	}
	for _, n := range []int{0, 1, 7, parallelRenderMin - 1, parallelRenderMin, parallelRenderMin + 1, 5001} {
		svcs := make([]services.Service, n)
		for i := range svcs {
			svcs[i] = shapes(i)
		}
		p := Params{RunDir: "/run", MaxConnections: 4096, User: "haproxy"}
		got, err := render(p, svcs)
		if err != nil {
			t.Fatal(err)
		}
		v, err := newView(p, svcs)
		if err != nil {
			t.Fatal(err)
		}
		if want := writeDefault(nil, v); !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%d services: render and writeDefault differ at byte %d of %d/%d:\n%q\nvs\n%q",
				n, i, len(got), len(want), got[max(0, i-80):min(len(got), i+80)], want[max(0, i-80):min(len(want), i+80)])
		}
		if cap(got) > v.size(svcs) {
			t.Errorf("%d services: buffer grew past size(): cap %d > %d", n, cap(got), v.size(svcs))
		}
	}
}
