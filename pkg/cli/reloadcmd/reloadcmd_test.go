package reloadcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/cli"
)

func reloadRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := cli.Env{Args: args, Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errOut}
	code = cli.Execute(New(e), e)
	return code, out.String(), errOut.String()
}

const goodAndBad = `version: 1
services:
- name: web
  port: 10001
  mode: http
  healthCheck:
    path: /health
  servers:
  - ip: 10.0.0.1
    port: 31001
- name: "evil\nbackend x"
  port: 10002
- name: dns
  port: 53
  protocol: udp
  servers:
  - ip: 10.0.0.3
    port: 5353
`

// The CI path through the real command line: every valid service rendered
// and checked by the real proxies, the rejected one named, exit non-zero,
// and nothing of it in any file.
func TestReloadDryRun(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	dir := t.TempDir()
	in := filepath.Join(dir, "services.yaml")
	os.WriteFile(in, []byte(goodAndBad), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := reloadRun(t, map[string]string{"HAPROXY": "true", "VHOST_DOMAIN": "apps.example.com"},
		"--dry-run", "--services", in, "--output-dir", out)
	if code != cli.ExitError {
		t.Fatalf("exit %d, want %d (a rejected service); stderr:\n%s", code, cli.ExitError, stderr)
	}
	if !strings.Contains(stderr, "(line 11)") || !strings.Contains(stdout, "1 rejected") {
		t.Errorf("the rejected service is not reported with its line:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	for _, f := range []string{"haproxy.cfg", "nginx.conf", "pen/53-udp.cfg"} {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatalf("%s not rendered: %v", f, err)
		}
		if strings.Contains(string(data), "evil") || strings.Contains(string(data), "10002") {
			t.Errorf("%s holds the rejected service:\n%s", f, data)
		}
	}
	if !strings.Contains(stdout, "haproxy -c: ok") || !strings.Contains(stdout, "nginx -t: ok") {
		t.Errorf("the summary does not show the proxies' own checks:\n%s", stdout)
	}

	// Without the bad entry the same run succeeds.
	good := strings.Replace(goodAndBad, "- name: \"evil\\nbackend x\"\n  port: 10002\n", "", 1)
	os.WriteFile(in, []byte(good), 0o644)
	if code, _, stderr := reloadRun(t, map[string]string{"HAPROXY": "true"}, "--dry-run", "--services", in, "--output-dir", out); code != cli.ExitOK {
		t.Errorf("a clean file: exit %d; stderr:\n%s", code, stderr)
	}
}

func TestReloadBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{map[string]string{"VHOST_PORT": "http"}, nil, cli.ExitUsage, `invalid VHOST_PORT "http"`},
		{map[string]string{"PEN_SERVERS": "-1"}, nil, cli.ExitUsage, "invalid PEN_SERVERS"},
		{map[string]string{"LOG_FORMAT": "xml"}, nil, cli.ExitUsage, "invalid LOG_FORMAT"},
		{nil, []string{"--dry-run"}, cli.ExitUsage, "--dry-run needs --output-dir"},
		{nil, []string{"extra"}, cli.ExitUsage, `unexpected argument "extra"`},
		{map[string]string{"SYNC_STATUS_URL": "javascript:alert(1)"}, nil, cli.ExitUsage, `invalid SYNC_STATUS_URL (--sync-status-url) "javascript:alert(1)"`},
		{nil, []string{"--sync-status-url", ":99999"}, cli.ExitUsage, "want :PORT with a port from 1 to 65535"},
		{nil, []string{"--dry-run", "--services", filepath.Join(dir, "missing.yaml"), "--output-dir", dir}, cli.ExitError, "missing.yaml"},
	}
	for _, c := range cases {
		code, _, stderr := reloadRun(t, c.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit %d mentioning %q", c.env, c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestReloadHelpListsVariables(t *testing.T) {
	_, stdout, _ := reloadRun(t, nil, "--help")
	for _, v := range []string{"$SERVICES_FILE", "$HAPROXY", "$VHOST_DOMAIN", "$VHOST_PORT", "$PROXY_PROTOCOL",
		"$MAX_CONNECTIONS", "$PEN_SERVERS", "$PEN_CLIENTS", "$STATUS_ENDPOINT", "$RUN_DIR", "$TEMPLATE_DIR", "$VERBOSE",
		"$SYNC_STATUS_URL", "--version",
		"--dry-run", "--output-dir", "--validate", "(default 8192)"} {
		if !strings.Contains(stdout, v) {
			t.Errorf("--help does not mention %s", v)
		}
	}
}

// --hard-stop-after / HARD_STOP_AFTER and --vhost-domain reach haproxy.cfg
// through the real command line: 30m by default, 0 drops the limit, and
// the HTTP check's Host is the virtual host name.
func TestReloadDryRunHAProxySettings(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	dir := t.TempDir()
	in := filepath.Join(dir, "services.yaml")
	good := strings.Replace(goodAndBad, "- name: \"evil\\nbackend x\"\n  port: 10002\n", "", 1)
	good = strings.Replace(good, "    path: /health\n", "    path: /health\n    interval: 20s\n    timeout: 10s\n    failures: 3\n", 1)
	os.WriteFile(in, []byte(good), 0o644)
	for _, tc := range []struct {
		env        map[string]string
		args       []string
		want, lack []string
	}{
		{map[string]string{"HAPROXY": "true"}, nil,
			[]string{"\n    hard-stop-after 30m\n", "hdr Host web\n", "\n    timeout check 10000ms\n", " check inter 20000ms fall 3\n"}, nil},
		{map[string]string{"HAPROXY": "true", "HARD_STOP_AFTER": "0", "VHOST_DOMAIN": "apps.example.com"}, nil,
			[]string{"hdr Host web.apps.example.com\n"}, []string{"hard-stop-after"}},
		{map[string]string{"HAPROXY": "true", "HARD_STOP_AFTER": "0"}, []string{"--hard-stop-after=90s"},
			[]string{"\n    hard-stop-after 90s\n"}, nil},
	} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := reloadRun(t, tc.env, append([]string{"--dry-run", "--services", in, "--output-dir", out}, tc.args...)...)
		if code != cli.ExitOK {
			t.Fatalf("%v %v: exit %d; stderr:\n%s", tc.env, tc.args, code, stderr)
		}
		cfg, _ := os.ReadFile(filepath.Join(out, "haproxy.cfg"))
		for _, w := range tc.want {
			if !strings.Contains(string(cfg), w) {
				t.Errorf("%v %v: haproxy.cfg lacks %q:\n%s", tc.env, tc.args, w, cfg)
			}
		}
		for _, l := range tc.lack {
			if strings.Contains(string(cfg), l) {
				t.Errorf("%v %v: haproxy.cfg holds %q:\n%s", tc.env, tc.args, l, cfg)
			}
		}
	}
	if code, _, stderr := reloadRun(t, map[string]string{"HARD_STOP_AFTER": "forever"}, "--dry-run", "--services", in, "--output-dir", dir+"/x"); code != cli.ExitUsage || !strings.Contains(stderr, "HARD_STOP_AFTER") {
		t.Errorf("HARD_STOP_AFTER=forever: exit %d, stderr:\n%s", code, stderr)
	}
}
