package haproxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/services"
)

// breakingTemplate is the embedded template with extra lines in the listen
// sections of some services: a parse error (an unknown keyword) for
// "bad-9001", and for "late-9002" an error HAProxy only finds after parsing
// (a default_backend that does not exist), which it reports by name.
func breakingTemplate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("templates", haproxy.TemplateName))
	if err != nil {
		t.Fatal(err)
	}
	const listen = "listen {{.Name}}\n"
	if !strings.Contains(string(b), listen) {
		t.Fatalf("template has no %q line", listen)
	}
	dir := t.TempDir()
	tpl := strings.Replace(string(b), listen, listen+
		`{{if eq .Name "bad-9001"}}    bogus-keyword on`+"\n{{end}}"+
		`{{if eq .Name "late-9002"}}    default_backend nowhere`+"\n{{end}}", 1)
	if err := os.WriteFile(filepath.Join(dir, haproxy.TemplateName), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Blame, on the real `haproxy -c` message, names the service whose section
// the error is in, first by line, then (post-parse errors) by name; and an
// error in a section of no service blames nobody.
func TestBlameNamesTheRefusedService(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	tpl, err := haproxy.LoadTemplate(breakingTemplate(t))
	if err != nil {
		t.Fatal(err)
	}
	svc := func(name string, port int) services.Service {
		return services.Service{Name: name, Port: port, Protocol: services.TCP, Mode: services.ModeTCP,
			Servers: []services.Server{srv("10.0.0.1", 31000+port%1000, 500)}}
	}
	check := func(svcs []services.Service) (cfg []byte, path, msg string) {
		t.Helper()
		cfg, err := haproxy.Render(haproxy.Params{RunDir: "/run/p", MaxConnections: 10, Template: tpl}, svcs)
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(t.TempDir(), ".haproxy.cfg.new")
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := haproxy.Check(context.Background(), bin, path); err != nil {
			return cfg, path, err.Error()
		}
		return cfg, path, ""
	}
	good, bad, late := svc("good", 9000), svc("bad", 9001), svc("late", 9002)

	cfg, path, msg := check([]services.Service{good, bad, late})
	blamed, all := haproxy.Blame(cfg, path, msg, []services.Service{good, bad, late})
	if !all || len(blamed) != 1 || !strings.Contains(blamed[bad.Key()], "unknown keyword 'bogus-keyword'") {
		t.Fatalf("round 1: blamed %q, all %v; message:\n%s", blamed, all, msg)
	}
	cfg, path, msg = check([]services.Service{good, late})
	blamed, all = haproxy.Blame(cfg, path, msg, []services.Service{good, late})
	if !all || len(blamed) != 1 || !strings.Contains(blamed[late.Key()], "default_backend: 'nowhere'") {
		t.Fatalf("round 2: blamed %q, all %v; message:\n%s", blamed, all, msg)
	}
	if _, _, msg = check([]services.Service{good}); msg != "" {
		t.Fatalf("the good service alone is refused: %s", msg)
	}

	// The same error outside any service's section blames nobody.
	cfg, path, msg = check([]services.Service{good, bad})
	moved := strings.Replace(string(cfg), "    bogus-keyword on\n", "", 1)
	moved = strings.Replace(moved, "defaults\n", "defaults\n    bogus-keyword on\n", 1)
	if err := os.WriteFile(path, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	err = haproxy.Check(context.Background(), bin, path)
	if err == nil {
		t.Fatal("haproxy accepted an unknown keyword in defaults")
	}
	if blamed, all := haproxy.Blame([]byte(moved), path, err.Error(), []services.Service{good, bad}); all || len(blamed) != 0 {
		t.Errorf("an error in defaults blamed %q (all %v)", blamed, all)
	}
	// A message that is not HAProxy's blames nobody either.
	if blamed, all := haproxy.Blame(cfg, path, "exit status 1", []services.Service{good, bad}); all || len(blamed) != 0 {
		t.Errorf("a bare exit status blamed %q (all %v)", blamed, all)
	}
}

// An overriding template that splits a service into a frontend and a
// backend named after it is understood too.
func TestBlameSectionNamesContainingTheService(t *testing.T) {
	cfg := "global\n    maxconn 10\nfrontend fe_web-8080\n    bind :8080\n    default_backend be_web-8080\n" +
		"backend be_web-8080\n    server s 10.0.0.1:80\nbackend web-80800x\n    server s 10.0.0.1:80\n"
	svcs := []services.Service{{Name: "web", Port: 8080, Protocol: services.TCP}, {Name: "api", Port: 80, Protocol: services.TCP}}
	for _, c := range []struct {
		msg  string
		want string // "" blames nobody
	}{
		{"[ALERT]    (1) : config : parsing [/x/haproxy.cfg:7] : bad", "web"},
		{"[ALERT]    (1) : config : parsing [/x/haproxy.cfg:4] : bad", "web"},
		{"[ALERT]    (1) : config : Proxy 'be_web-8080': bad", "web"},
		{"[ALERT]    (1) : config : [/x/haproxy.cfg:7] : 'server be_web-8080/s' : bad", "web"},
		{"[ALERT]    (1) : config : parsing [/x/haproxy.cfg:9] : bad", ""}, // web-80800x: port 80800
		{"[ALERT]    (1) : config : parsing [/x/haproxy.cfg:2] : bad", ""}, // global
		{"[ALERT]    (1) : config : parsing [/other/file.cfg:7] : bad", ""},
		{"[WARNING]  (1) : config : parsing [/x/haproxy.cfg:7] : only a warning", ""},
	} {
		blamed, all := haproxy.Blame([]byte(cfg), "/x/haproxy.cfg", c.msg, svcs)
		got := ""
		for k := range blamed {
			for _, s := range svcs {
				if s.Key() == k {
					got = s.Name
				}
			}
		}
		if got != c.want || all != (c.want != "") {
			t.Errorf("%q: blamed %q (all %v), want %q", c.msg, got, all, c.want)
		}
	}
}
