package nginx

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
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
