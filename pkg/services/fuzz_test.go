package services

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// FuzzParse holds the fast path to yaml.v3 on every input: Parse (which
// takes the fast path when it can) and the general decoder alone must give
// the same services, rejections and warnings, or both an error. What the
// fast path accepts must be, byte for byte, what Encode writes for what it
// read; and Encode's output must read back through yaml.v3 as the File it
// was written from, which is what makes the fast path agree by
// construction. The seed corpus runs in every normal test run.
func FuzzParse(f *testing.F) {
	for _, seed := range parseSeeds() {
		f.Add(seed)
	}
	// Health-check fields: canonical, out of order, repeated, out of range,
	// and spellings only one of the parsers might take.
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  protocol: tcp\n  mode: http\n  healthCheck:\n    path: /\n    interval: 20s\n    timeout: 10s\n    failures: 3\n  servers: []\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  mode: http\n  healthCheck:\n    failures: 3\n    path: /x\n    interval: 1m0s\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    interval: 20s\n    interval: 30s\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 0\n    timeout: 25h\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 03\n    interval: \"20s\"\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 1001\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		slow, serr := parseYAML(data)
		if (err == nil) != (serr == nil) {
			t.Fatalf("Parse error %v, YAML decoder error %v", err, serr)
		}
		if err == nil && !sameDecoded(res, slow) {
			t.Fatalf("Parse and the YAML decoder disagree:\n%+v\n%+v", res, slow)
		}
		if fast, ok := parseCanonical(append([]byte(nil), data...)); ok {
			if serr != nil || !sameDecoded(fast, slow) {
				t.Fatalf("fast path accepted what YAML reads otherwise (%v):\n%+v\n%+v", serr, fast, slow)
			}
			if enc := fast.File.Encode(); !bytes.Equal(enc, data) {
				t.Fatalf("fast path accepted a document Encode would not write:\n%q\nEncode:\n%q", data, enc)
			}
		}
		if err != nil {
			return
		}
		file := res.File
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse accepted services that do not validate: %v", err)
		}
		file.Normalize()
		enc := file.Encode()
		// The encoder's contract, through the general decoder: this is
		// what the fast path's byte comparison relies on.
		back, berr := parseYAML(enc)
		if berr != nil || len(back.Rejected) > 0 || len(back.Warnings) > 0 {
			t.Fatalf("own encoding does not decode through YAML: %v %+v\n%s", berr, back, enc)
		}
		if !sameServices(back.File.Services, file.Services) {
			t.Fatalf("own encoding reads back through YAML as another file:\n%s", enc)
		}
		if fast, ok := parseCanonical(enc); !ok || !sameServices(fast.File.Services, file.Services) {
			t.Fatalf("own encoding not taken by the fast path (%v):\n%s", ok, enc)
		}
		if again := back.File.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("encoding not stable:\n%s\n---\n%s", enc, again)
		}
	})
}

// sameServices compares services as Encode sees them (lines aside).
func sameServices(a, b []Service) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(&b[i]) {
			return false
		}
	}
	return true
}

func sameDecoded(a, b *Decoded) bool {
	if len(a.File.Services) != len(b.File.Services) || len(a.Rejected) != len(b.Rejected) || !slices.Equal(a.Warnings, b.Warnings) {
		return false
	}
	for i := range a.File.Services {
		x, y := a.File.Services[i], b.File.Services[i]
		if x.Line != y.Line || !x.Equal(&y) {
			return false
		}
	}
	for i := range a.Rejected {
		x, y := a.Rejected[i], b.Rejected[i]
		if x.Service.Line != y.Service.Line || !slices.Equal(x.Problems, y.Problems) {
			return false
		}
	}
	return true
}

// parseSeeds are hand-written documents, most of them one edit away from a
// canonical one: the inputs a byte-level fast path is most likely to read
// differently from YAML (issue 17 found `weight: -` read as 0 and an
// unquoted `fd00::` accepted).
func parseSeeds() [][]byte {
	canonical := sample()
	canonical.Normalize()
	enc := string(canonical.Encode())
	seeds := []string{
		example,
		enc,
		Header + "version: 1\nservices: []\n",
		"version: 1\nservices: []\n",
		"version: 1\nservices:\n- name: \"a\\nb\"\n  port: 1\n",
		"version: 1\nservices:\n- name: a\n  port: 99999\n  servers:\n  - ip: ::1\n    port: 1\n",
		"version: 1\nservices:\n- {name: a, port: 1, servers: [{ip: 1.2.3.4, port: 5, weight: 0}]}\n",
		"version: 1\nservices: &x [*x]\n",
		"\xff\xfe",
		"",
		"---\n" + enc,
		enc + "---\nversion: 1\n",
		enc + "...\n",
		enc + "# trailing comment\n",
		enc + "\n",
		enc + "garbage\n",
		strings.TrimSuffix(enc, "\n"),
		"\ufeff" + enc, // BOM
		strings.ReplaceAll(enc, "\n", "\r\n"),
		strings.Replace(enc, Header, "", 1),
		strings.Replace(enc, Header, "#\n", 1),
	}
	// One edit at a time to the canonical text.
	edits := [][2]string{
		{"weight: 500", "weight: -"},
		{"weight: 250", "weight: -250"},
		{"weight: 500", "weight: 0500"},
		{"weight: 500", "weight: +500"},
		{"weight: 500", "weight: 5_00"},
		{"weight: 500", "weight: 0x1f4"},
		{"weight: 500", "weight: 500.0"},
		{"weight: 500", "weight: ~"},
		{"weight: 500", "weight: null"},
		{"weight: 500", "weight: \"500\""},
		{"weight: 500", "weight:  500"},
		{"weight: 500", "weight: 500 # half"},
		{"weight: 500", "weight:\t500"},
		{"maxconn: 100", "maxconn: 0"},
		{"port: 53", "port: 0o65"},
		{"\"2001:db8::1\"", "2001:db8::1"},
		{"\"2001:db8::1\"", "\"fd00::\""},
		{"\"2001:db8::1\"", "fd00::"},
		{"\"2001:db8::1\"", "'2001:db8::1'"},
		{"\"2001:db8::1\"", "\"2001:DB8::1\""},
		{"\"2001:db8::1\"", "\"::ffff:10.0.0.3\""},
		{"ip: 10.0.0.1", "ip: 010.0.0.1"},
		{"ip: 10.0.0.1", "ip: \"10.0.0.1\""},
		{"ip: 10.0.0.1", "ip: 10.0.0.1%eth0"},
		{"name: dns", "name: \"dns\""},
		{"name: dns", "name: 'dns'"},
		{"name: dns", "name: dns # comment"},
		{"name: dns", "name: true"},
		{"name: dns", "name: \"true\""},
		{"name: dns", "name: null"},
		{"name: dns", "name: &a dns"},
		{"name: dns", "name: !!str dns"},
		{"name: dns", "name: |\n    dns"},
		{"path: /health", "path: \"/health\""},
		{"path: /health", "path: /health#x"},
		{"client: 30s", "client: 30000ms"},
		{"client: 30s", "client: \"30s\""},
		{"client: 30s", "client: 0s"},
		{"server: 45s", "server: -45s"},
		{"mode: http", "mode: HTTP"},
		{"protocol: tcp", "protocol: \"tcp\""},
		{"source: marathon", "source: \"marathon\""},
		{"  port: 10001\n  protocol: tcp\n", "  protocol: tcp\n  port: 10001\n"},                 // reordered keys
		{"    port: 31001\n    weight: 250\n", "    weight: 250\n    port: 31001\n"},             // reordered server keys
		{"  port: 10001\n", "  port: 10001\n  port: 10002\n"},                                    // duplicate key
		{"    weight: 250\n", "    weight: 250\n    weight: 0\n"},                                // duplicate server key
		{"  protocol: tcp\n", "  protocol: tcp\n  extra: 1\n"},                                   // unknown field
		{"  protocol: tcp\n", "  protocol: tcp\n\n"},                                             // blank line
		{"  protocol: tcp\n", "  protocol: tcp\n  # comment\n"},                                  // comment line
		{"  servers:\n  - host", "  servers:\n    - host"},                                       // other indentation
		{"  mode: http\n", "  mode: http\n  source: marathon\n"},                                 // duplicate source
		{"  servers: []\n", "  servers:\n"},                                                      // null servers
		{"  servers: []\n", ""},                                                                  // no servers key
		{"- name: dns\n  port: 53\n  protocol: tcp", "- name: dns\n  port: 53\n  protocol: udp"}, // duplicate key (port, protocol)
		{"version: 1", "version: 2"},
		{"version: 1", "version: \"1\""},
		{"services:\n", "services: &anchor\n"},
		{"  - host: node-1.example.com\n", "  - &s host: node-1.example.com\n"},
		{"  healthCheck:\n    path: /health", "  healthCheck: {path: /health}"},
		{"  servers:\n  - host: node-1", "  servers: [{host: node-1"},
	}
	for _, e := range edits {
		if !strings.Contains(enc, e[0]) {
			panic("seed edit does not apply: " + e[0])
		}
		seeds = append(seeds, strings.Replace(enc, e[0], e[1], 1))
	}
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// parseIPv4 is a shortcut for netip.ParseAddr: what it accepts, netip must
// accept as the same IPv4 address.
func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3",
		"1.2.3.4.", "1..2.3", "1.2.3.4 ", "::1", "::ffff:1.2.3.4", "10.0.0.1%eth0", "", "1.2.3.0004", "99.999.9.9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIPv4([]byte(s))
		want, err := netip.ParseAddr(s)
		if ok && (err != nil || !want.Is4() || got != want) {
			t.Fatalf("parseIPv4(%q) = %v; netip says %v, %v", s, got, want, err)
		}
		// The dotted quads netip reads must not be sent to the slow path.
		if !ok && err == nil && want.Is4() {
			t.Fatalf("parseIPv4(%q) refused an IPv4 address netip reads as %v", s, want)
		}
	})
}
