package services

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Each limit at its largest accepted value and one above it, through the
// reader (both the YAML and the canonical fast path) and in memory. The real
// proxies' side of the same boundaries is tested in pkg/haproxy, pkg/nginx
// and pkg/pen (TestLimitsAcceptedByProxy).
func TestLimits(t *testing.T) {
	maxT := MaxTimeout.String() // 596h31m23.647s
	over := (MaxTimeout + time.Nanosecond).String()
	cases := []struct {
		name, doc, field string // field "" means valid
	}{
		{"client timeout at the limit", doc("name: a", "port: 1", "timeouts:\n    client: "+maxT), ""},
		{"server timeout at the limit", doc("name: a", "port: 1", "timeouts:\n    server: "+maxT), ""},
		{"client timeout 1ns over", doc("name: a", "port: 1", "timeouts:\n    client: "+over), "timeouts.client"},
		{"client timeout 600h", doc("name: a", "port: 1", "timeouts:\n    client: 600h"), "timeouts.client"},
		{"server timeout at Go's maximum", doc("name: a", "port: 1", "timeouts:\n    server: 2562047h47m16.854775807s"), "timeouts.server"},
		{"maxconn at the limit", doc("name: a", "port: 1", server+"\n    maxconn: 2147483647"), ""},
		// The reader takes 32-bit integers only; in memory (what sync
		// builds) the limit is checked by Validate (TestLimitsCanonical).
		{"maxconn over", doc("name: a", "port: 1", server+"\n    maxconn: 2147483648"), "servers[0].maxconn"},
		{"maxconn wraps to 0 in a 32-bit int", doc("name: a", "port: 1", server+"\n    maxconn: 4294967296"), "servers[0].maxconn"},
		{"weight at the limit", doc("name: a", "port: 65535", "servers:\n  - ip: 10.0.0.1\n    port: 65535\n    weight: 1000"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Parse([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if c.field == "" {
				if len(res.Rejected) > 0 || len(res.File.Services) != 1 {
					t.Fatalf("rejected: %+v", res.Rejected)
				}
				return
			}
			if len(res.Rejected) != 1 || len(res.File.Services) != 0 {
				t.Fatalf("not rejected: valid %d, rejected %+v", len(res.File.Services), res.Rejected)
			}
			p := res.Rejected[0].Problems
			if len(p) != 1 || p[0].Field != c.field || p[0].Line == 0 {
				t.Errorf("problems %v; want one on %s, with its line", p, c.field)
			}
		})
	}
}

// The canonical bytes Encode writes for values at the limits read back (the
// fast path's territory), and one nanosecond over is refused there too.
func TestLimitsCanonical(t *testing.T) {
	f := File{Version: Version, Services: []Service{{
		Name: "a", Port: 65535, Protocol: TCP, Mode: ModeTCP,
		Timeouts: &Timeouts{Client: MaxTimeout, Server: MaxTimeout},
		Servers:  []Server{{IP: netip.MustParseAddr("10.0.0.1"), Port: 65535, Weight: MaxWeight, MaxConn: MaxServerConns}},
	}}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	b := f.Encode()
	res, err := Parse(b)
	if err != nil || len(res.Rejected) != 0 || len(res.File.Services) != 1 {
		t.Fatalf("%v %+v\n%s", err, res, b)
	}
	f.Services[0].Timeouts.Server = MaxTimeout + time.Nanosecond
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "timeouts.server") {
		t.Errorf("1ns over the limit: %v", err)
	}
	f.Services[0].Timeouts.Server = MaxTimeout
	f.Services[0].Servers[0].MaxConn = MaxServerConns + 1
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "servers[0].maxconn") {
		t.Errorf("maxconn over the limit: %v", err)
	}
}

// One service over a limit is rejected on its own; the others stay.
func TestLimitRejectsOnlyThatService(t *testing.T) {
	d := "version: 1\nservices:\n" +
		"- name: good\n  port: 1\n" +
		"- name: forever\n  port: 2\n  timeouts:\n    client: 600h\n" +
		"- name: also-good\n  port: 3\n"
	res, err := Parse([]byte(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.File.Services) != 2 || len(res.Rejected) != 1 || res.Rejected[0].Service.Name != "forever" {
		t.Fatalf("valid %+v rejected %+v", res.File.Services, res.Rejected)
	}
	if msg := res.Rejected[0].Problems[0].Error(); !strings.Contains(msg, `service "forever" (line 5): timeouts.client: 600h0m0s is above the limit`) {
		t.Errorf("message %q", msg)
	}
}
