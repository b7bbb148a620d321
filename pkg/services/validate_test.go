package services

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// doc builds a one-service document from the lines of its mapping.
func doc(lines ...string) string {
	return "version: 1\nservices:\n- " + strings.Join(lines, "\n  ") + "\n"
}

const server = "servers:\n  - ip: 10.0.0.1\n    port: 80"

// Each validation rule, one case each: the field named in the error proves
// which rule fired.
func TestValidationRules(t *testing.T) {
	cases := []struct {
		name, doc, field string
	}{
		{"name charset", doc("name: Api", "port: 1"), "name"},
		{"name starts with dot", doc("name: .api", "port: 1"), "name"},
		{"name with newline", doc(`name: "a\nb"`, "port: 1"), "name"},
		{"name with space", doc(`name: "a b"`, "port: 1"), "name"},
		{"name with semicolon", doc(`name: "a;b"`, "port: 1"), "name"},
		{"name with brace", doc(`name: "a{b"`, "port: 1"), "name"},
		{"name with quote", doc(`name: "a'b"`, "port: 1"), "name"},
		{"name too long", doc("name: "+strings.Repeat("a", 254), "port: 1"), "name"},
		{"name missing", doc("port: 1"), "name"},
		{"name not a string", doc("name: [a]", "port: 1"), "name"},
		{"port zero", doc("name: a", "port: 0"), "port"},
		{"port too high", doc("name: a", "port: 65536"), "port"},
		{"port not a number", doc("name: a", "port: eighty"), "port"},
		{"port missing", doc("name: a"), "port"},
		{"protocol", doc("name: a", "port: 1", "protocol: sctp"), "protocol"},
		{"mode", doc("name: a", "port: 1", "mode: grpc"), "mode"},
		{"http over udp", doc("name: a", "port: 1", "protocol: udp", "mode: http"), "mode"},
		{"source", doc("name: a", "port: 1", "source: consul"), "source"},
		{"health path relative", doc("name: a", "port: 1", "healthCheck:\n    path: health"), "healthCheck.path"},
		{"health path space", doc("name: a", "port: 1", "healthCheck:\n    path: \"/a b\""), "healthCheck.path"},
		{"health path hash", doc("name: a", "port: 1", "healthCheck:\n    path: \"/a#b\""), "healthCheck.path"},
		{"health path missing", doc("name: a", "port: 1", "healthCheck: {}"), "healthCheck.path"},
		{"check interval not a duration", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    interval: 20"), "healthCheck.interval"},
		{"check interval zero", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    interval: 0s"), "healthCheck.interval"},
		{"check interval too long", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    interval: 24h0m1s"), "healthCheck.interval"},
		{"check timeout negative", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    timeout: -1s"), "healthCheck.timeout"},
		{"check timeout too long", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    timeout: 596h"), "healthCheck.timeout"},
		{"check failures zero", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    failures: 0"), "healthCheck.failures"},
		{"check failures too many", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    failures: 1001"), "healthCheck.failures"},
		{"check failures not a number", doc("name: a", "port: 1", "healthCheck:\n    path: /\n    failures: three"), "healthCheck.failures"},
		{"check fields without path", doc("name: a", "port: 1", "healthCheck:\n    failures: 3"), "healthCheck.path"},
		{"timeout not a duration", doc("name: a", "port: 1", "timeouts:\n    client: 30"), "timeouts.client"},
		{"timeout negative", doc("name: a", "port: 1", "timeouts:\n    server: -1s"), "timeouts.server"},
		{"server ip", doc("name: a", "port: 1", "servers:\n  - ip: 10.0.0.300\n    port: 80"), "servers[0].ip"},
		{"server ip host name", doc("name: a", "port: 1", "servers:\n  - ip: example.com\n    port: 80"), "servers[0].ip"},
		{"server ip zone", doc("name: a", "port: 1", "servers:\n  - ip: fe80::1%eth0\n    port: 80"), "servers[0].ip"},
		{"server ip missing", doc("name: a", "port: 1", "servers:\n  - port: 80"), "servers[0].ip"},
		{"server port", doc("name: a", "port: 1", "servers:\n  - ip: 10.0.0.1\n    port: 0"), "servers[0].port"},
		{"server port missing", doc("name: a", "port: 1", "servers:\n  - ip: 10.0.0.1"), "servers[0].port"},
		{"server weight high", doc("name: a", "port: 1", server+"\n    weight: 1001"), "servers[0].weight"},
		{"server weight negative", doc("name: a", "port: 1", server+"\n    weight: -1"), "servers[0].weight"},
		{"server maxconn", doc("name: a", "port: 1", server+"\n    maxconn: 0"), "servers[0].maxconn"},
		{"server host", doc("name: a", "port: 1", server+"\n    host: \"x\\ny\""), "servers[0].host"},
		{"server twice", doc("name: a", "port: 1", server+"\n  - ip: 10.0.0.1\n    port: 80"), "servers[1].ip"},
		{"duplicate key", doc("name: a", "port: 1", "port: 2"), "port"},
		{"servers not a list", doc("name: a", "port: 1", "servers: 3"), "servers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode([]byte(c.doc))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			found := false
			for _, p := range ps {
				if p.Field == c.field {
					found = true
					if p.Line == 0 {
						t.Errorf("problem has no line: %v", p)
					}
				}
			}
			if !found {
				t.Errorf("no problem on field %s in: %v", c.field, err)
			}
		})
	}
}

func TestDocumentErrors(t *testing.T) {
	for name, d := range map[string]string{
		"empty":           "",
		"not yaml":        "version: 1\nservices: [\n",
		"no version":      "services: []\n",
		"version 2":       "version: 2\nservices: []\n",
		"version string":  "version: one\n",
		"not a mapping":   "- 1\n",
		"services scalar": "version: 1\nservices: 3\n",
		"two documents":   "version: 1\n---\nversion: 1\n",
		"alias":           "version: 1\nservices:\n- &a\n  name: a\n  port: 1\n- *a\n",
		"duplicate top":   "version: 1\nversion: 1\n",
	} {
		if _, err := Parse([]byte(d)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAliasBombRefusedQuickly(t *testing.T) {
	bomb := "version: 1\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nservices: *g\n"
	if _, err := Parse([]byte(bomb)); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Fatalf("alias bomb: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	if _, err := Parse(make([]byte, MaxFileSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownFieldsWarnOnly(t *testing.T) {
	d := "version: 1\nfuture: yes\nservices:\n- name: a\n  port: 1\n  color: blue\n  servers:\n  - ip: 10.0.0.1\n    port: 2\n    zone: x\n"
	f, warns, err := Decode([]byte(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Services) != 1 || len(warns) != 3 {
		t.Fatalf("services %d, warnings %v", len(f.Services), warns)
	}
	for _, w := range warns {
		if !strings.Contains(w, "line ") {
			t.Errorf("warning without a line: %s", w)
		}
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	d := doc("name: A", "port: 0", "protocol: x", "servers:\n  - ip: nope\n    port: 0\n    weight: 2000")
	_, _, err := Decode([]byte(d))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) < 6 {
		t.Fatalf("want at least 6 problems, got %v", err)
	}
	if !strings.Contains(err.Error(), `service "services[0]" (line 3)`) {
		t.Errorf("error does not name the service and line: %v", err)
	}
}

func TestSplitKeepsGoodServices(t *testing.T) {
	d := "version: 1\nservices:\n" +
		"- name: good\n  port: 1\n" +
		"- name: \"bad\\nname\"\n  port: 2\n" +
		"- name: dup\n  port: 1\n" +
		"- name: udp\n  port: 1\n  protocol: udp\n"
	res, err := Parse([]byte(d))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.File.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "good,udp" {
		t.Errorf("valid services %v", names)
	}
	if len(res.Rejected) != 2 || res.Rejected[0].Service.Line != 5 || res.Rejected[1].Service.Name != "dup" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if !strings.Contains(res.Rejected[1].Problems[0].Msg, "line 3") {
		t.Errorf("duplicate does not point at the first: %v", res.Rejected[1].Problems)
	}
}

// Split's fast path (sorted and valid, no copy) must give the answer of the
// full path: duplicates next to each other and files out of order still get
// the full treatment.
func TestSplitSortedFastPath(t *testing.T) {
	svc := func(name string, port int, proto Protocol) Service {
		return Service{Name: name, Port: port, Protocol: proto, Mode: ModeTCP,
			Servers: []Server{{IP: netip.MustParseAddr("10.0.0.1"), Port: 31000, Weight: 100}}}
	}
	for _, c := range []struct {
		name      string
		in        []Service
		valid     string
		rejected  int
		sameArray bool
	}{
		{"sorted", []Service{svc("a", 1, TCP), svc("b", 1, UDP), svc("c", 2, TCP)}, "a,b,c", 0, true},
		{"adjacent duplicate", []Service{svc("a", 1, TCP), svc("b", 1, TCP), svc("c", 2, TCP)}, "a,c", 1, false},
		{"unsorted", []Service{svc("c", 2, TCP), svc("a", 1, TCP)}, "c,a", 0, false},
		{"unsorted duplicate", []Service{svc("a", 1, TCP), svc("c", 2, TCP), svc("b", 1, TCP)}, "a,c", 1, false},
		{"sorted, one invalid", []Service{svc("a", 1, TCP), svc("B", 2, TCP)}, "a", 1, false},
	} {
		f := File{Version: Version, Services: c.in}
		valid, rejected := f.Split()
		var names []string
		for _, s := range valid {
			names = append(names, s.Name)
		}
		if strings.Join(names, ",") != c.valid || len(rejected) != c.rejected {
			t.Errorf("%s: valid %v, %d rejected; want %s, %d", c.name, names, len(rejected), c.valid, c.rejected)
		}
		if same := len(valid) > 0 && &valid[0] == &c.in[0]; same != c.sameArray {
			t.Errorf("%s: valid shares the input array = %v, want %v", c.name, same, c.sameArray)
		}
	}
}

func TestValidateInMemory(t *testing.T) {
	f := sample()
	f.Services[0].Servers[0].Weight = 5000
	f.Services[1].Name = "x y"
	err := f.Validate()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Fatalf("got %v", err)
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "0": true, "a.b-c_d": true, "service.system.product": true,
		"": false, "-a": false, "_a": false, "A": false, "a b": false, "a\n": false, "a;": false,
		"a{": false, "a\"": false, "a'": false, "é": false, "a\x00": false,
		// DNS label rules: no empty label, 63 bytes a label, 253 in all.
		"api.": false, ".api": false, "a..b": false, "evil.....web.product": false, ".": false,
		strings.Repeat("a", 63) + ".b": true, strings.Repeat("a", 64) + ".b": false, "b." + strings.Repeat("a", 64): false,
		strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61): true,  // 253
		strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 62): false, // 254
		"a.-b": true, "a._b": true, "\u212a": false,
	} {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v", s, got)
		}
	}
}

func TestServiceValidate(t *testing.T) {
	f := sample()
	if err := f.Services[0].Validate(); err != nil {
		t.Fatal(err)
	}
	f.Services[0].HealthCheck.Path = "/a b"
	var ps Problems
	if err := f.Services[0].Validate(); !errors.As(err, &ps) || ps[0].Field != "healthCheck.path" {
		t.Fatalf("got %v", err)
	}
}

func TestSafeFilePath(t *testing.T) {
	for p, want := range map[string]bool{
		"/var/run/proxymatic": true, "/tmp/a_b-c.d/e": true,
		"": false, "relative": false, "/a/../b": false, "/a/": false, "/a b": false, "/a;b": false,
		"/a\nb": false, "/a'b": false, "/a{b": false, "/" + strings.Repeat("a", 200): false,
	} {
		if got := SafeFilePath(p); got != want {
			t.Errorf("SafeFilePath(%q) = %v", p, got)
		}
	}
}

func TestASCIILower(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"Web.Shop":        "web.shop",
		"already":         "already",
		"\u212aelvin":     "\u212aelvin", // a Kelvin sign stays what it is, and ValidName refuses it
		"\u0130stanbul":   "\u0130stanbul",
		"MIXED-\u212a-Ab": "mixed-\u212a-ab",
	} {
		if got := ASCIILower(in); got != want {
			t.Errorf("ASCIILower(%q) = %q, want %q", in, got, want)
		}
	}
	if ValidName(ASCIILower("\u212a8s")) {
		t.Error("a Kelvin sign lowered into a valid name")
	}
	if got := ASCIIUpper("http\u017f"); got != "HTTP\u017f" {
		t.Errorf("ASCIIUpper turned a long s into %q", got)
	}
}

func TestNeverService(t *testing.T) {
	defer AllowLinkLocal(false)
	for _, c := range []struct {
		ip        string
		refused   bool
		linkLocal bool
	}{
		{"0.0.0.0", true, false}, {"0.1.2.3", true, false}, {"::", true, false},
		{"255.255.255.255", true, false}, {"224.0.0.1", true, false}, {"239.255.255.250", true, false},
		{"ff02::1", true, false}, {"::ffff:224.0.0.1", true, false},
		{"169.254.169.254", true, true}, {"fe80::1", true, true},
		{"10.0.0.1", false, false}, {"127.0.0.1", false, false}, {"::1", false, false}, {"2001:db8::1", false, false},
		{"1.0.0.0", false, false}, {"255.255.255.254", false, false},
		{"64:ff9b::a9fe:a9fe", true, true}, {"64:ff9b::e000:1", true, false}, {"64:ff9b::a00:1", false, false},
	} {
		ip := netip.MustParseAddr(c.ip)
		AllowLinkLocal(false)
		if got := NeverService(ip) != ""; got != c.refused {
			t.Errorf("NeverService(%s) refused = %v, want %v", c.ip, got, c.refused)
		}
		AllowLinkLocal(true)
		if got := NeverService(ip) != ""; got != (c.refused && !c.linkLocal) {
			t.Errorf("with link-local allowed, NeverService(%s) refused = %v", c.ip, got)
		}
	}
}

func TestNeverServiceAddressRejected(t *testing.T) {
	doc := "version: 1\nservices:\n- name: meta\n  port: 80\n  servers:\n  - ip: 169.254.169.254\n    port: 80\n" +
		"- name: ok\n  port: 81\n  servers:\n  - ip: 10.0.0.1\n    port: 80\n"
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.File.Services) != 1 || d.File.Services[0].Name != "ok" || len(d.Rejected) != 1 {
		t.Fatalf("valid %v, rejected %v", d.File.Services, d.Rejected)
	}
	if msg := Problems(d.Rejected[0].Problems).Error(); !strings.Contains(msg, "servers[0].ip") || !strings.Contains(msg, "link-local") {
		t.Errorf("problem %q does not name the field and the reason", msg)
	}
}
