package render_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/render"
)

func opts() render.Options {
	return render.Options{HAProxy: true, VHostDomain: "apps.example.com", VHostPort: 8000, MaxConnections: 1024,
		PenServers: 4, PenClients: 1024, RunDir: "/var/run/proxymatic"}
}

func requireProxies(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
}

func readAll(t *testing.T, dir string) string {
	t.Helper()
	var all strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	return all.String()
}

// The example file has five valid services and two hostile ones: the valid
// ones are rendered and checked by the real proxies, the error lists both
// rejected ones, and nothing of theirs reaches any file.
func TestDryRun(t *testing.T) {
	requireProxies(t)
	var out bytes.Buffer
	dir := t.TempDir()
	err := render.DryRun(context.Background(), opts(), "testdata/services.yaml", dir, true, &out)
	var rej *render.RejectedError
	if !errors.As(err, &rej) || len(rej.Rejected) != 2 {
		t.Fatalf("DryRun = %v, want the two rejected services", err)
	}
	for _, want := range []string{`(line 46): name: "Evil\nlisten x" is not a valid name`, `service "evil-path" (line 52): healthCheck.path`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var ce *render.CheckError
	if errors.As(err, &ce) {
		t.Errorf("a proxy rejected the rendered config: %v", ce)
	}
	summary := out.String()
	for _, want := range []string{
		"services: 5 valid, 2 rejected, from testdata/services.yaml\n",
		"haproxy:  4 services, 4 servers -> " + dir + "/haproxy.cfg (haproxy -c: ok)\n",
		"nginx:    3 virtual hosts *.apps.example.com on port 8000, 3 servers -> " + dir + "/nginx.conf (nginx -t: ok)\n",
		"pen:      1 services (0 tcp, 1 udp), 1 servers -> " + dir + "/pen/ (parsed: ok)\n",
		"skipped:  service \"api.checkout.shop\" (10002/tcp): no virtual host",
		"rejected: service \"evil-path\" (line 52)",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	all := readAll(t, dir)
	for _, evil := range []string{"evil", "Evil", "6.6.6.6", "10.0.0.66", "10.0.0.67", "10004", "10005"} {
		if strings.Contains(all, evil) {
			t.Errorf("%q from a rejected service reached a config", evil)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pen", "53-udp.cfg")); err != nil {
		t.Error(err)
	}
	// Every rendered file is 0640 or stricter.
	for _, rel := range []string{"haproxy.cfg", "nginx.conf", "pen/53-udp.cfg"} {
		if st, err := os.Stat(filepath.Join(dir, rel)); err != nil || st.Mode().Perm()&^0o640 != 0 {
			t.Errorf("%s: mode %v (%v), want 0640 or stricter", rel, st.Mode(), err)
		}
	}

	// Run again without --haproxy: pen takes the TCP services and the
	// haproxy.cfg of the previous run is gone.
	o := opts()
	o.HAProxy = false
	out.Reset()
	render.DryRun(context.Background(), o, "testdata/services.yaml", dir, true, &out)
	if _, err := os.Stat(filepath.Join(dir, "haproxy.cfg")); !os.IsNotExist(err) {
		t.Errorf("stale haproxy.cfg left behind: %v", err)
	}
	if !strings.Contains(out.String(), "pen:      5 services (4 tcp, 1 udp)") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// A clean file: no error, every proxy checked and passed, nothing rejected,
// skipped, refused or warned about, and each file holds its service.
func TestDryRunClean(t *testing.T) {
	requireProxies(t)
	src := filepath.Join(t.TempDir(), "services.yaml")
	os.WriteFile(src, []byte("version: 1\nservices:\n"+
		"- name: dns\n  port: 53\n  protocol: udp\n  servers:\n  - ip: 10.0.0.2\n    port: 5353\n"+
		"- name: web\n  port: 9000\n  servers:\n  - ip: 10.0.0.1\n    port: 80\n"), 0o644)
	var out bytes.Buffer
	dir := t.TempDir()
	if err := render.DryRun(context.Background(), opts(), src, dir, true, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	summary := out.String()
	for _, want := range []string{
		"services: 2 valid, 0 rejected, from " + src + "\n",
		"haproxy:  1 services, 1 servers -> " + dir + "/haproxy.cfg (haproxy -c: ok)\n",
		"nginx:    1 virtual hosts *.apps.example.com on port 8000, 1 servers -> " + dir + "/nginx.conf (nginx -t: ok)\n",
		"pen:      1 services (0 tcp, 1 udp), 1 servers -> " + dir + "/pen/ (parsed: ok)\n",
		"wrote 3 files\n",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	for _, bad := range []string{"rejected:", "skipped:", "refused:", "warning:", "FAILED"} {
		if strings.Contains(summary, bad) {
			t.Errorf("a clean file's summary says %q:\n%s", bad, summary)
		}
	}
	for file, want := range map[string]string{
		"haproxy.cfg":    "listen web-9000\n",
		"nginx.conf":     "server_name web.apps.example.com;",
		"pen/53-udp.cfg": "address 10.0.0.2 port 5353 ",
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s (%v) lacks %q", file, err, want)
		}
	}
}

func TestDryRunBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nservices:\n  - name: [unclosed\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.yaml"), "missing.yaml: no such file"},
		{bad, "bad.yaml: services.yaml is not valid YAML: yaml: line 2"},
	} {
		var out bytes.Buffer
		err := render.DryRun(context.Background(), opts(), tc.path, t.TempDir(), false, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DryRun(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// An overriding template that HAProxy refuses fails the run with HAProxy's
// own message; --validate=false skips the proxies' checks.
func TestDryRunProxyRejects(t *testing.T) {
	requireProxies(t)
	tpl := t.TempDir()
	os.WriteFile(filepath.Join(tpl, "haproxy.cfg.tmpl"), []byte("global\n    frobnicate {{.MaxConn}}\n"), 0o644)
	src := filepath.Join(t.TempDir(), "services.yaml")
	os.WriteFile(src, []byte("version: 1\nservices: []\n"), 0o644)
	o := opts()
	o.TemplateDir = tpl
	var out bytes.Buffer
	err := render.DryRun(context.Background(), o, src, t.TempDir(), true, &out)
	var ce *render.CheckError
	if !errors.As(err, &ce) || ce.Proxy != "haproxy" || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("DryRun = %v, want haproxy's complaint", err)
	}
	if !strings.Contains(out.String(), "(haproxy -c: FAILED)") {
		t.Errorf("summary:\n%s", out.String())
	}
	if err := render.DryRun(context.Background(), o, src, t.TempDir(), false, &out); err != nil {
		t.Errorf("--validate=false still checked: %v", err)
	}
}
