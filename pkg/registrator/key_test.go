package registrator

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/resolve"
	"github.com/meltwater/proxymatic/pkg/services"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		rel, value string
		want       Registration
	}{
		{"web/host1:web_1:80", "10.0.0.1:31000",
			Registration{Name: "web", Port: 80, Protocol: services.TCP, Host: "host1", Addr: netip.MustParseAddrPort("10.0.0.1:31000")}},
		{"dns/Host-1.Example.com:dns:53:udp", "10.0.0.2:31053",
			Registration{Name: "dns", Port: 53, Protocol: services.UDP, Host: "host-1.example.com", Addr: netip.MustParseAddrPort("10.0.0.2:31053")}},
		{"web@8080/h:web:80", "[2001:db8::1]:31000",
			Registration{Name: "web", Port: 8080, Protocol: services.TCP, Host: "h", Addr: netip.MustParseAddrPort("[2001:db8::1]:31000")}},
		// A hostname outside the contract is dropped, not the registration.
		{"web/HOST_!:web:80", "10.0.0.1:1", Registration{Name: "web", Port: 80, Protocol: services.TCP, Addr: netip.MustParseAddrPort("10.0.0.1:1")}},
		// Container names with colons: the port is the last field.
		{"web/h:a:b:80:tcp", " 10.0.0.1:1\n", Registration{Name: "web", Port: 80, Protocol: services.TCP, Host: "h", Addr: netip.MustParseAddrPort("10.0.0.1:1")}},
		{"web/h:c:80", "[::ffff:10.0.0.1]:1", Registration{Name: "web", Port: 80, Protocol: services.TCP, Host: "h", Addr: netip.MustParseAddrPort("10.0.0.1:1")}},
		// A host name instead of an address: resolved later, by the state.
		{"web/h:c:80", "Node-1.Example.com.:31000\n", Registration{Name: "web", Port: 80, Protocol: services.TCP, Host: "h", Target: "node-1.example.com", Addr: netip.AddrPortFrom(netip.Addr{}, 31000)}},
		{"web/h:c:80", "localhost:8080", Registration{Name: "web", Port: 80, Protocol: services.TCP, Host: "h", Target: "localhost", Addr: netip.AddrPortFrom(netip.Addr{}, 8080)}},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.rel, tt.value)
		if err != nil {
			t.Errorf("ParseKey(%q, %q): %v", tt.rel, tt.value, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseKey(%q, %q) = %+v, want %+v", tt.rel, tt.value, got, tt.want)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	tests := []struct{ rel, value, mention string }{
		{"web", "10.0.0.1:1", "key is not"},
		{"web/h:c:80/extra", "10.0.0.1:1", "key is not"},
		{"/h:c:80", "10.0.0.1:1", "key is not"},
		{"web/h:80", "10.0.0.1:1", "service id"},
		{"web/h:c:0", "10.0.0.1:1", "port"},
		{"web/h:c:65536", "10.0.0.1:1", "port"},
		{"web/h:c:+80", "10.0.0.1:1", "port"},
		{"web@/h:c:80", "10.0.0.1:1", "after '@'"},
		{"web@x/h:c:80", "10.0.0.1:1", "after '@'"},
		{"W\u212Aeb/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"web\nbackend evil/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"web;x/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"web{/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"we b/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"web/h:c:80", "host_x.example:1", "not ip:port"},
		{"web/h:c:80", "host.example:0", "not ip:port"},
		{"web/h:c:80", "host.example", "not ip:port"},
		{"web/h:c:80", "host.example:80:81", "not ip:port"},
		{"web/h:c:80", "10.0.0.300:80", "not ip:port"},
		{"web/h:c:80", "host;evil:80", "not ip:port"},
		{"web/h:c:80", "-host:80", "not ip:port"},
		{"web/h:c:80", "10.0.0.1", "not ip:port"},
		{"web/h:c:80", "2001:db8::1:80", "not ip:port"},
		{"web/h:c:80", "[fe80::1%eth0]:80", "without zone"},
		{"web/h:c:80", "0.0.0.0:80", "unspecified"},
		{"web/h:c:80", "169.254.169.254:80", "link-local"},
		{"web/h:c:80", "[fe80::1]:80", "link-local"},
		{"web/h:c:80", "255.255.255.255:80", "broadcast"},
		{"web/h:c:80", "224.0.0.1:80", "multicast"},
		{"web/h:c:80", "[ff02::1]:80", "multicast"},
		{"api./h:c:80", "10.0.0.1:1", "not a valid name"},
		{"a..b/h:c:80", "10.0.0.1:1", "not a valid name"},
		{"web/h:c:80", "10.0.0.1:0", "port 0"},
		{"web/h:c:80", "10.0.0.1:80\nserver x", "not ip:port"},
	}
	for _, tt := range tests {
		_, err := ParseKey(tt.rel, tt.value)
		if err == nil {
			t.Errorf("ParseKey(%q, %q): accepted", tt.rel, tt.value)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParseKey(%q, %q) = %q, want it to mention %q", tt.rel, tt.value, err, tt.mention)
		}
	}
}

// FuzzParseKey checks that whatever ParseKey accepts passes the services
// contract's validation. Its seeds run in every normal test run.
func FuzzParseKey(f *testing.F) {
	for _, s := range [][2]string{
		{"web/host1:web_1:80", "10.0.0.1:31000"},
		{"dns/h:dns:53:udp", "[2001:db8::1]:53"},
		{"web@8080/h:c:80", "10.0.0.1:1"},
		{"web\n/h:c:80", "10.0.0.1:1"},
		{"web/h;x:c:80", "10.0.0.1:1"},
		{"a/b:c:99999", "1.2.3.4:5"},
		{"a/B{:c:1", "[::ffff:1.2.3.4]:5"},
		{"a/b:c:1", "node-1.example.com:5"},
		{"a/b:c:1", "no de:5"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rel, value string) {
		r, err := ParseKey(rel, value)
		if err != nil {
			return
		}
		if r.Target != "" {
			// What reaches a config is the resolved address; the name
			// itself must be one a resolver can be asked about.
			if !resolve.ValidHost(r.Target) {
				t.Fatalf("ParseKey(%q, %q) accepted target %q", rel, value, r.Target)
			}
			r.Addr = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), r.Addr.Port())
		}
		file := services.File{Services: []services.Service{{
			Name: r.Name, Port: r.Port, Protocol: r.Protocol, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{{Host: r.Host, IP: r.Addr.Addr(), Port: int(r.Addr.Port()), Weight: services.DefaultWeight}},
		}}}
		file.Normalize()
		if err := file.Validate(); err != nil {
			t.Fatalf("ParseKey(%q, %q) accepted %+v, which the contract rejects: %v", rel, value, r, err)
		}
		if strings.ContainsAny(r.Name+r.Host, " \n\r\t;{}'\"#") {
			t.Fatalf("ParseKey(%q, %q) let config syntax through: %+v", rel, value, r)
		}
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseKeyLowercasesServiceNames(t *testing.T) {
	r, err := ParseKey("MyService@8080/Host-1:c:80", "10.0.0.1:31000")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "myservice" {
		t.Errorf("name %q, want myservice", r.Name)
	}
	// The host is lowered as ASCII only: a Kelvin sign is not a 'k'.
	r, err = ParseKey("web/\u212Aube:c:80", "10.0.0.1:31000")
	if err != nil {
		t.Fatal(err)
	}
	if r.Host != "" {
		t.Errorf("host %q from a Kelvin sign, want it dropped", r.Host)
	}
}
