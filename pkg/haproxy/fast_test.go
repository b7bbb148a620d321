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
		}
	}
}
