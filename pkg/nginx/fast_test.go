package nginx

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/services/servicestest"
)

// The hand-written writer must render byte for byte what the embedded
// template renders, for every branch of the template.
func TestWriteDefaultMatchesTemplate(t *testing.T) {
	ip := netip.MustParseAddr
	all := []VHost{
		{Host: "a.example"},
		{Host: "b.example", Servers: []services.Server{{IP: ip("10.0.0.1"), Port: 80, Weight: 1000, MaxConn: 7}}},
		{Host: "c.example", Servers: []services.Server{{IP: ip("::1"), Port: 80}, {IP: ip("10.0.0.2"), Port: 81, Weight: 1}}},
	}
	for n := 0; n <= len(all); n++ {
		for _, p := range []Params{
			{RunDir: "/run", Port: 80, MaxConnections: 1},
			{RunDir: "/var/run/x", Port: 8080, MaxConnections: 500, ProxyProtocol: true, User: "nobody"},
			{RunDir: "/r", Port: 1, MaxConnections: 2, User: "nobody", Group: "nogroup"},
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
				t.Fatalf("%d vhosts, %+v: writer and template differ\nwriter:\n%s\ntemplate:\n%s", n, p, got, want.Bytes())
			}
		}
	}
}

// The writer against the template on generated virtual hosts (from
// servicestest's services: every name length, drained and limited
// servers, IPv4 and IPv6, none to many servers), seeded.
func TestWriterMatchesTemplateGenerated(t *testing.T) {
	for seed, n := range map[uint64]int{1: 0, 2: 1, 3: 40, 4: 700, 5: 2500} {
		matchTemplate(t, seed, n)
	}
}

// FuzzWriterMatchesTemplate is TestWriterMatchesTemplateGenerated over any
// seed and size.
func FuzzWriterMatchesTemplate(f *testing.F) {
	f.Add(uint64(1), uint16(5))
	f.Add(uint64(77), uint16(300))
	f.Fuzz(func(t *testing.T, seed uint64, n uint16) {
		matchTemplate(t, seed, int(n)%3000)
	})
}

func matchTemplate(t *testing.T, seed uint64, n int) {
	t.Helper()
	var vhosts []VHost
	seen := map[string]bool{}
	for _, s := range servicestest.Generate(seed, n) {
		host := s.Name + ".example.com"
		if len(host) > services.MaxNameLen {
			host = s.Name
		}
		if seen[host] {
			continue
		}
		seen[host] = true
		vhosts = append(vhosts, VHost{Host: host, Service: s.Key(), Servers: s.Servers})
	}
	p := Params{RunDir: "/run/proxymatic", Port: 1 + int(seed%65535), MaxConnections: 1 + int(seed%10000), ProxyProtocol: seed%2 == 0}
	if seed%3 == 0 {
		p.User, p.Group = "nobody", "nogroup"
	}
	got, err := render(p, vhosts)
	if err != nil {
		t.Fatalf("seed %d, %d vhosts: %v", seed, len(vhosts), err)
	}
	v, err := newView(p, vhosts)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := defaultTemplate.Execute(&want, v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < min(len(got), len(want.Bytes())) && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("seed %d, %d vhosts: writer and template differ at byte %d:\n%q\nvs\n%q", seed, len(vhosts), i,
			got[max(0, i-120):min(len(got), i+120)], want.Bytes()[max(0, i-120):min(want.Len(), i+120)])
	}
}
