package services

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzParse: whatever the input, Parse must not panic, and every service it
// accepts must survive validation and an encode/parse round trip unchanged.
// The seed corpus runs in every normal test run.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("version: 1\nservices: []\n"))
	f.Add([]byte("version: 1\nservices:\n- name: \"a\\nb\"\n  port: 1\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 99999\n  servers:\n  - ip: ::1\n    port: 1\n"))
	f.Add([]byte("version: 1\nservices:\n- {name: a, port: 1, servers: [{ip: 1.2.3.4, port: 5, weight: 0}]}\n"))
	f.Add([]byte("version: 1\nservices: &x [*x]\n"))
	f.Add([]byte("\xff\xfe"))
	// Health-check fields: canonical, out of order, repeated, out of range,
	// and spellings only one of the parsers might take.
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  protocol: tcp\n  mode: http\n  healthCheck:\n    path: /\n    interval: 20s\n    timeout: 10s\n    failures: 3\n  servers: []\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  mode: http\n  healthCheck:\n    failures: 3\n    path: /x\n    interval: 1m0s\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    interval: 20s\n    interval: 30s\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 0\n    timeout: 25h\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 03\n    interval: \"20s\"\n"))
	f.Add([]byte("version: 1\nservices:\n- name: a\n  port: 1\n  healthCheck:\n    path: /\n    failures: 1001\n"))
	canonical := sample()
	canonical.Normalize()
	f.Add(canonical.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		if fast, ok := parseCanonical(append([]byte(nil), data...)); ok {
			slow, serr := parseYAML(data)
			if serr != nil {
				t.Fatalf("fast path accepted what YAML refuses: %v", serr)
			}
			if !sameDecoded(fast, slow) {
				t.Fatalf("fast and YAML paths disagree:\n%+v\n%+v", fast, slow)
			}
		}
		// Split at the middle whatever the size, the halves read as the
		// whole does (or both give up).
		whole, okWhole := parseCanonicalSplit(data, 1<<62)
		halves, okHalves := parseCanonicalSplit(data, 0)
		if okWhole != okHalves || (okWhole && !sameDecoded(whole, halves)) {
			t.Fatalf("read in halves: %v, whole: %v\n%+v\n%+v", okHalves, okWhole, halves, whole)
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
		back, _, err := Decode(enc)
		if err != nil {
			t.Fatalf("own encoding does not decode: %v\n%s", err, enc)
		}
		if again := back.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("encoding not stable:\n%s\n---\n%s", enc, again)
		}
	})
}

func sameDecoded(a, b *Decoded) bool {
	if len(a.File.Services) != len(b.File.Services) || len(a.Rejected) != len(b.Rejected) || len(a.Warnings) != len(b.Warnings) {
		return false
	}
	for i := range a.File.Services {
		x, y := a.File.Services[i], b.File.Services[i]
		if x.Line != y.Line || !x.Equal(&y) {
			return false
		}
	}
	return true
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
