package services

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const example = `# hand written
version: 1
services:
- name: api.checkout.shop
  port: 10001
  protocol: tcp
  mode: http
  source: marathon
  healthCheck:
    path: /health
  timeouts:
    client: 30s
    server: 45s
  servers:
  - host: node-1.example.com
    ip: 10.0.0.1
    port: 31001
    weight: 250
    maxconn: 100
  - host: node-2.example.com
    ip: 10.0.0.2
    port: 31002
- name: dns
  port: 53
  protocol: udp
  source: registrator
  servers:
  - ip: "2001:db8::1"
    port: 5353
`

func sample() File {
	return File{Version: 1, Services: []Service{
		{Name: "api.checkout.shop", Port: 10001, Protocol: TCP, Mode: ModeHTTP, Source: SourceMarathon,
			HealthCheck: &HealthCheck{Path: "/health"},
			Timeouts:    &Timeouts{Client: 30 * time.Second, Server: 45 * time.Second},
			Servers: []Server{
				{Host: "node-2.example.com", IP: netip.MustParseAddr("10.0.0.2"), Port: 31002, Weight: 500},
				{Host: "node-1.example.com", IP: netip.MustParseAddr("10.0.0.1"), Port: 31001, Weight: 250, MaxConn: 100},
			}},
		{Name: "dns", Port: 53, Protocol: UDP, Mode: ModeTCP, Source: SourceRegistrator,
			Servers: []Server{{IP: netip.MustParseAddr("2001:db8::1"), Port: 5353, Weight: 500}}},
		{Name: "dns", Port: 53, Protocol: TCP, Mode: ModeTCP, Source: SourceRegistrator, Servers: []Server{}},
	}}
}

func TestExampleDecodes(t *testing.T) {
	f, warns, err := Decode([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if len(f.Services) != 2 {
		t.Fatalf("got %d services", len(f.Services))
	}
	api := f.Services[0]
	if api.Name != "api.checkout.shop" || api.Mode != ModeHTTP || api.HealthCheck.Path != "/health" ||
		api.Timeouts.Server != 45*time.Second || api.Line != 4 {
		t.Errorf("api decoded as %+v", api)
	}
	if got := api.Servers[1].Weight; got != DefaultWeight {
		t.Errorf("missing weight decoded as %d, want %d", got, DefaultWeight)
	}
	if f.Services[1].Mode != ModeTCP || f.Services[1].Servers[0].IP.String() != "2001:db8::1" {
		t.Errorf("dns decoded as %+v", f.Services[1])
	}
}

func TestRoundTrip(t *testing.T) {
	f := sample()
	f.Normalize()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	data := f.Encode()
	if !bytes.HasPrefix(data, []byte(Header)) {
		t.Errorf("encoding does not start with the generated header:\n%s", data)
	}
	g, _, err := Decode(data)
	if err != nil {
		t.Fatalf("decode of own encoding: %v\n%s", err, data)
	}
	if len(g.Services) != len(f.Services) {
		t.Fatalf("round trip lost services: %d != %d", len(g.Services), len(f.Services))
	}
	for i := range f.Services {
		g.Services[i].Line = 0
		if !f.Services[i].Equal(&g.Services[i]) {
			t.Errorf("service %d changed in the round trip:\n%+v\n%+v", i, f.Services[i], g.Services[i])
		}
	}
	if again := g.Encode(); !bytes.Equal(again, data) {
		t.Errorf("re-encoding differs:\n%s\n---\n%s", data, again)
	}
}

func TestCanonicalOrder(t *testing.T) {
	f := sample()
	f.Normalize()
	var keys []string
	for _, s := range f.Services {
		keys = append(keys, s.Key().String())
	}
	if got := strings.Join(keys, " "); got != "53/tcp 53/udp 10001/tcp" {
		t.Errorf("services ordered %s", got)
	}
	if f.Services[2].Servers[0].Port != 31001 {
		t.Errorf("servers not ordered by ip: %+v", f.Services[2].Servers)
	}
}

func TestDeterministicUnderShuffle(t *testing.T) {
	base := sample()
	for i := 0; i < 40; i++ {
		base.Services = append(base.Services, Service{Name: "svc" + itoa(i), Port: 20000 + i, Protocol: TCP, Mode: ModeTCP,
			Servers: []Server{
				{IP: netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), Port: 1000 + i, Weight: 1},
				{IP: netip.AddrFrom4([4]byte{10, 1, byte(i), 2}), Port: 1000 + i, Weight: 2},
				{IP: netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), Port: 999, Weight: 3},
			}})
	}
	want := func() []byte { f := clone(base); f.Normalize(); return f.Encode() }()
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 50; n++ {
		f := clone(base)
		r.Shuffle(len(f.Services), func(i, j int) { f.Services[i], f.Services[j] = f.Services[j], f.Services[i] })
		for i := range f.Services {
			s := f.Services[i].Servers
			r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		}
		f.Normalize()
		if got := f.Encode(); !bytes.Equal(got, want) {
			t.Fatalf("shuffle %d encoded differently", n)
		}
	}
}

func clone(f File) File {
	g := File{Version: f.Version}
	for i := range f.Services {
		g.Services = append(g.Services, f.Services[i].Clone())
	}
	return g
}

func TestEncodeQuotesWordsYAMLWouldNotReadAsStrings(t *testing.T) {
	for _, name := range []string{"true", "null", "no", "1e3", "0x10", "123", "1.5", "y", "on", "off", ".inf"} {
		if !ValidName(name) {
			continue
		}
		f := File{Services: []Service{{Name: name, Port: 1, Servers: []Server{{Host: name, IP: netip.MustParseAddr("127.0.0.1"), Port: 2, Weight: 1}}}}}
		f.Normalize()
		g, _, err := Decode(f.Encode())
		if err != nil {
			t.Errorf("%q: %v\n%s", name, err, f.Encode())
			continue
		}
		if g.Services[0].Name != name || g.Services[0].Servers[0].Host != name {
			t.Errorf("%q came back as %q / %q", name, g.Services[0].Name, g.Services[0].Servers[0].Host)
		}
	}
}

func TestEmptyFile(t *testing.T) {
	f := File{}
	f.Normalize()
	data := f.Encode()
	g, _, err := Decode(data)
	if err != nil || len(g.Services) != 0 {
		t.Fatalf("empty file: %v %+v\n%s", err, g, data)
	}
}

// TestDottedDigitsAgreeWithYAML: the shortcut plainString takes for
// addresses gives the resolver's own answer for every such shape.
func TestDottedDigitsAgreeWithYAML(t *testing.T) {
	for _, s := range []string{
		"10.2.0.1", "0.0.0.0", "255.255.255.255", "1.2.3", "1..2", "..", "1.2.", ".1.2", "01.02.03.04",
		"1.2.3.4.5", "1.5", "1.", ".5", "1", "1e5.2.3", "1.2.3e4", "1_0.2.3", "10.2.0.1 ", "0x1.2.3",
	} {
		n := yaml.Node{Kind: yaml.ScalarNode, Value: s}
		resolverStr := n.ShortTag() == "!!str"
		if dottedDigits(s) && !resolverStr {
			t.Errorf("%q: shortcut says string, yaml.v3 says %s", s, n.ShortTag())
		}
		if got, want := plainString(s), resolverStr && onlyPlainChars(s); got != want {
			t.Errorf("plainString(%q) = %v, want %v", s, got, want)
		}
	}
}

// WriteTo streams exactly what Encode returns, in blocks no larger than a
// service past encodeBlock, and reports a failing writer.
func TestWriteToMatchesEncode(t *testing.T) {
	for _, n := range []int{0, 1, 3000} {
		f := large(n, 4)
		var w blockWriter
		written, err := f.WriteTo(&w)
		want := f.Encode()
		if err != nil || written != int64(len(want)) || !bytes.Equal(w.buf.Bytes(), want) {
			t.Fatalf("%d services: WriteTo wrote %d bytes (err %v), Encode %d; equal %v",
				n, written, err, len(want), bytes.Equal(w.buf.Bytes(), want))
		}
		if n == 3000 && (w.writes < 2 || w.largest > encodeBlock+4096) {
			t.Errorf("%d writes, largest %d bytes: want several writes of about %d", w.writes, w.largest, encodeBlock)
		}
	}
	f := large(3000, 4)
	if _, err := f.WriteTo(failingWriter{}); !errors.Is(err, errWriteFailed) {
		t.Fatalf("WriteTo to a failing writer: %v", err)
	}
}

type blockWriter struct {
	buf             bytes.Buffer
	writes, largest int
}

func (w *blockWriter) Write(p []byte) (int, error) {
	w.writes++
	w.largest = max(w.largest, len(p))
	return w.buf.Write(p)
}

var errWriteFailed = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errWriteFailed }

// A file large enough to be parsed in two halves reads the same as through
// the general YAML decoder, line numbers included, whichever half a service
// is in.
func TestParseLargeFileInHalves(t *testing.T) {
	f := large(3000, 4)
	f.Services[2000].Servers = nil // a service without servers in the second half
	data := f.Encode()
	if len(data) < 2*parallelParseMin {
		t.Fatalf("test file is only %d bytes: not split", len(data))
	}
	fast, ok := parseCanonical(data)
	if !ok {
		t.Fatal("canonical parser refused an encoded file")
	}
	slow, err := parseYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(fast.File.Services) != len(slow.File.Services) {
		t.Fatalf("%d services, YAML decoder %d", len(fast.File.Services), len(slow.File.Services))
	}
	lines := bytes.Split(data, []byte("\n"))
	for i := range fast.File.Services {
		a, b := &fast.File.Services[i], &slow.File.Services[i]
		if !a.Equal(b) || a.Line != b.Line {
			t.Fatalf("service %d: %+v (line %d) vs YAML %+v (line %d)", i, *a, a.Line, *b, b.Line)
		}
		if want := "- name: " + a.Name; string(lines[a.Line-1]) != want {
			t.Fatalf("service %d: line %d is %q, want %q", i, a.Line, lines[a.Line-1], want)
		}
	}
}

// The optional health-check fields: written only when set, in a fixed
// order, read back equal by both parsers, and a file without them (any
// file written before they existed) reads as it always did.
func TestHealthCheckFields(t *testing.T) {
	f := File{Version: 1, Services: []Service{
		{Name: "a", Port: 1, Protocol: TCP, Mode: ModeHTTP, HealthCheck: &HealthCheck{Path: "/h", Interval: 20 * time.Second, Timeout: 1500 * time.Millisecond, Failures: 3}},
		{Name: "b", Port: 2, Protocol: TCP, Mode: ModeHTTP, HealthCheck: &HealthCheck{Path: "/h", Failures: 1000}},
		{Name: "c", Port: 3, Protocol: TCP, Mode: ModeHTTP, HealthCheck: &HealthCheck{Path: "/", Interval: 24 * time.Hour}},
		{Name: "d", Port: 4, Protocol: TCP, Mode: ModeHTTP, HealthCheck: &HealthCheck{Path: "/only"}},
	}}
	f.Normalize()
	enc := f.Encode()
	for _, want := range []string{
		"  healthCheck:\n    path: /h\n    interval: 20s\n    timeout: 1.5s\n    failures: 3\n  servers: []\n",
		"  healthCheck:\n    path: /h\n    failures: 1000\n  servers: []\n",
		"  healthCheck:\n    path: /\n    interval: 24h0m0s\n  servers: []\n",
		"  healthCheck:\n    path: /only\n  servers: []\n",
	} {
		if !strings.Contains(string(enc), want) {
			t.Errorf("encoding lacks %q:\n%s", want, enc)
		}
	}
	fast, ok := parseCanonical(enc)
	if !ok {
		t.Fatalf("the fast path gave up on Encode's own output:\n%s", enc)
	}
	slow, err := parseYAML(enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Decoded{fast, slow} {
		if len(d.Rejected) > 0 || len(d.File.Services) != len(f.Services) {
			t.Fatalf("decoded %d services, %d rejected: %+v", len(d.File.Services), len(d.Rejected), d.Rejected)
		}
		for i := range f.Services {
			if got, want := d.File.Services[i], f.Services[i]; !got.Equal(&want) {
				t.Errorf("service %d decoded as %+v, want %+v", i, *got.HealthCheck, *want.HealthCheck)
			}
		}
	}

	// Any order, as a hand-written file may have them: the YAML path reads
	// the same values (the fast path may decline, never disagree).
	hand := "version: 1\nservices:\n- name: a\n  port: 1\n  mode: http\n  healthCheck:\n    failures: 3\n    timeout: 1500ms\n    path: /h\n    interval: 20s\n"
	d, err := Parse([]byte(hand))
	if err != nil || len(d.File.Services) != 1 {
		t.Fatalf("hand-written order: %v %+v", err, d)
	}
	want := *f.Services[0].HealthCheck
	if got := *d.File.Services[0].HealthCheck; got != want {
		t.Errorf("hand-written order read as %+v, want %+v", got, want)
	}
	if fd, ok := parseCanonical([]byte(hand)); ok && *fd.File.Services[0].HealthCheck != want {
		t.Errorf("fast path read %+v, want %+v", *fd.File.Services[0].HealthCheck, want)
	}
}
