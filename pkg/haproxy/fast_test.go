package haproxy

import (
	"bytes"
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
				{IP: ip("255.255.255.255"), Port: 65535, Weight: 1000, MaxConn: 1000000, Host: "agent-255.a.long.domain.example.com"},
				{IP: ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Port: 65535, Weight: 999, MaxConn: 1000000, Host: "v6.example"},
			}},
	}
	for n := 0; n <= len(all); n++ {
		for _, p := range []Params{
			{RunDir: "/run", MaxConnections: 1},
			{RunDir: "/var/run/x", MaxConnections: 9999, StatsSocket: "/s.sock", User: "haproxy"},
			{RunDir: "/var/run/x", MaxConnections: 9999, FDLimit: 1000, User: "haproxy", Group: "haproxy"},
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
			if got, bound := len(want.Bytes())-len(writeDefault(nil, v0)), v.size()-v0.size(); got > bound {
				t.Errorf("%d services: size() allows %d bytes for them, %d rendered", n, bound, got)
			}
			if got := len(want.Bytes()); got > v.size() {
				t.Errorf("%d services: size() = %d, less than the %d bytes rendered", n, v.size(), got)
			}
		}
	}
}

// size must bound every server line, the longest shapes included: with many
// servers per service the per-service slack cannot hide a short estimate.
func TestSizeBoundsLongestServerLines(t *testing.T) {
	long := "agent-" + string(bytes.Repeat([]byte("x"), 240))
	for _, ipText := range []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1.2.3.4"} {
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
		if got, bound := len(writeDefault(nil, v))-len(writeDefault(nil, v0)), v.size()-v0.size(); got > bound {
			t.Errorf("%s: size() allows %d bytes for 500 servers, %d rendered", ipText, bound, got)
		}
	}
}
