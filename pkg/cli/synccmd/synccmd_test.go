package synccmd

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/cli"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// syncRun runs proxymatic-sync as the binary would, with the given
// arguments and environment, and returns its exit code and output.
func syncRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := cli.Env{
		Args:   args,
		Getenv: func(k string) string { return env[k] },
		Stdout: &out,
		Stderr: &errOut,
	}
	code = cli.Execute(New(e), e)
	return code, out.String(), errOut.String()
}

func webMarathon(t *testing.T) *marathontest.Server {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001).WithTask("10.0.0.2", 31002))
	return m
}

func decodeOutput(t *testing.T, out string) *services.File {
	t.Helper()
	f, _, err := services.Decode([]byte(out))
	if err != nil {
		t.Fatalf("output is not a valid services.yaml: %v\n%s", err, out)
	}
	return f
}

func TestSyncOnceDryRunPrintsAndWritesNothing(t *testing.T) {
	m := webMarathon(t)
	output := filepath.Join(t.TempDir(), "services.yaml")
	code, stdout, stderr := syncRun(t, nil, "--marathon", m.URL, "--once", "--dry-run", "--output", output)
	if code != cli.ExitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	f := decodeOutput(t, stdout)
	if len(f.Services) != 1 || f.Services[0].Name != "web.product" || f.Services[0].Port != 10001 || len(f.Services[0].Servers) != 2 {
		t.Errorf("services: %+v", f.Services)
	}
	if !strings.HasPrefix(stdout, services.Header) {
		t.Errorf("output does not start with the generated-file header:\n%s", stdout)
	}
	if _, err := os.Stat(output); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--dry-run wrote %s (%v)", output, err)
	}

	// The same state prints the same bytes: the CI path is deterministic.
	_, again, _ := syncRun(t, nil, "--marathon", m.URL, "--once", "--dry-run", "--output", output)
	if again != stdout {
		t.Errorf("second run printed different bytes:\n%s\nfirst:\n%s", again, stdout)
	}
}

func TestSyncDryRunImpliesOnce(t *testing.T) {
	m := webMarathon(t)
	// No --once: the command still returns instead of following Marathon.
	code, stdout, stderr := syncRun(t, nil, "--marathon", m.URL, "--dry-run", "--status-endpoint", "")
	if code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	decodeOutput(t, stdout)
	if m.Subscribers() != 0 || m.Requests("/v2/events") != 0 {
		t.Error("--dry-run followed Marathon's event stream")
	}
}

func TestSyncOnceWritesFile(t *testing.T) {
	m := webMarathon(t)
	output := filepath.Join(t.TempDir(), "new", "services.yaml")
	code, stdout, stderr := syncRun(t, nil, "--marathon", m.URL, "--once", "--output", output)
	if code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("--once without --dry-run printed to stdout:\n%s", stdout)
	}
	data, err := os.ReadFile(output)
	if err != nil {
		t.Fatal(err)
	}
	decodeOutput(t, string(data))
	if !strings.Contains(stderr, "msg=Added service=web.product port=10001/tcp") {
		t.Errorf("the added service is not logged:\n%s", stderr)
	}
}

func TestSyncOnceSourceFailureExitsNonZero(t *testing.T) {
	m := webMarathon(t)
	m.Fail(http.StatusServiceUnavailable)
	output := filepath.Join(t.TempDir(), "services.yaml")
	code, stdout, stderr := syncRun(t, nil, "--marathon", m.URL, "--once", "--output", output)
	if code != cli.ExitError {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, cli.ExitError, stderr)
	}
	if !strings.Contains(stderr, "proxymatic-sync: nothing written: source marathon:") {
		t.Errorf("stderr does not say which source failed:\n%s", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout: %s", stdout)
	}
	if _, err := os.Stat(output); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed --once wrote %s", output)
	}
	code, stdout, _ = syncRun(t, nil, "--marathon", m.URL, "--once", "--dry-run")
	if code != cli.ExitError || stdout != "" {
		t.Errorf("--dry-run with a failed source: exit %d, printed %q; want 1 and nothing", code, stdout)
	}
}

func TestSyncEnvironmentFallback(t *testing.T) {
	m := webMarathon(t)
	output := filepath.Join(t.TempDir(), "services.yaml")
	env := map[string]string{"MARATHON_URL": m.URL, "SERVICES_FILE": output, "REFRESH_INTERVAL": "30", "GROUP_SIZE": "2"}
	code, _, stderr := syncRun(t, env, "--once")
	if code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(output); err != nil {
		t.Errorf("SERVICES_FILE not used: %v", err)
	}

	// The flag wins over the variable: a dead MARATHON_URL is not read.
	env["MARATHON_URL"] = "http://127.0.0.1:1"
	code, stdout, stderr := syncRun(t, env, "--once", "--dry-run", "--marathon", m.URL)
	if code != cli.ExitOK {
		t.Fatalf("flag over variable: exit %d; stderr:\n%s", code, stderr)
	}
	decodeOutput(t, stdout)

	// The deprecated callback variable is accepted and warned about once.
	env["MARATHON_CALLBACK_URL"] = "http://me:5090/"
	code, _, stderr = syncRun(t, env, "--once", "--dry-run", "--marathon", m.URL)
	if code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "is deprecated and ignored"); n != 1 {
		t.Errorf("callback warning %d times, want once:\n%s", n, stderr)
	}
}

func TestSyncBadValuesExitTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no source", nil, []string{"--once"}, "no discovery source: set --marathon (MARATHON_URL) and/or --registrator (REGISTRATOR_URL)"},
		{"marathon scheme", nil, []string{"--marathon", "ftp://marathon:8080"}, `invalid MARATHON_URL (--marathon) entry "ftp://marathon:8080": want an http:// or https:// URL`},
		{"marathon password redacted", nil, []string{"--marathon", "ftp://user:secret@marathon:8080"}, `entry "ftp://user:xxxxx@marathon:8080"`},
		{"marathon query", map[string]string{"MARATHON_URL": "http://m1:8080,http://user:secret@m2:8080/?embed=x"}, nil, `invalid MARATHON_URL (--marathon) entry "http://user:xxxxx@m2:8080/?embed=x": no query or fragment allowed`},
		{"registrator scheme", nil, []string{"--registrator", "http://etcd:2379/services"}, `invalid REGISTRATOR_URL (--registrator) "http://etcd:2379/services": want etcd://`},
		{"refresh interval variable", map[string]string{"MARATHON_URL": "http://m:8080", "REFRESH_INTERVAL": "soon"}, nil, `invalid REFRESH_INTERVAL "soon": want whole seconds`},
		{"refresh interval zero", nil, []string{"--marathon", "http://m:8080", "--refresh-interval", "0"}, `invalid argument "0" for "-i, --refresh-interval" flag: want whole seconds`},
		{"group size", nil, []string{"--marathon", "http://m:8080", "--group-size", "0"}, "want a whole number from 1 to 1000000"},
		{"group size variable", map[string]string{"MARATHON_URL": "http://m:8080", "GROUP_SIZE": "many"}, nil, `invalid GROUP_SIZE "many": want a whole number from 1 to 1000000`},
		{"expose host variable", map[string]string{"MARATHON_URL": "http://m:8080", "EXPOSE_HOST": "maybe"}, nil, `invalid EXPOSE_HOST "maybe": want true or false`},
		{"status endpoint", nil, []string{"--marathon", "http://m:8080", "--status-endpoint", "9091"}, `invalid SYNC_STATUS_ENDPOINT (--status-endpoint) "9091": want host:port`},
		{"empty output", nil, []string{"--marathon", "http://m:8080", "--output", ""}, "invalid SERVICES_FILE (--output): empty"},
		{"log format", map[string]string{"MARATHON_URL": "http://m:8080", "LOG_FORMAT": "xml"}, nil, `invalid LOG_FORMAT "xml": want text or json`},
		{"reload status url", nil, []string{"--marathon", "http://m:8080", "--reload-status-url", "ftp://reload:9090"}, `invalid RELOAD_STATUS_URL (--reload-status-url) "ftp://reload:9090": want an http:// or https:// URL`},
		{"reload status url variable", map[string]string{"MARATHON_URL": "http://m:8080", "RELOAD_STATUS_URL": ":0"}, nil, `invalid RELOAD_STATUS_URL (--reload-status-url) ":0"`},
		{"explain while following", nil, []string{"--marathon", "http://m:8080", "--explain"}, "--explain goes with --once or --dry-run"},
		{"unknown flag", nil, []string{"--marathon-url", "http://m:8080"}, "unknown flag: --marathon-url"},
		{"argument", nil, []string{"--marathon", "http://m:8080", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := syncRun(t, tc.env, tc.args...)
			if code != cli.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, cli.ExitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "proxymatic-sync: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not hold %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("stderr shows a password: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
		})
	}
}

func TestSyncHelpMentionsVariables(t *testing.T) {
	code, stdout, _ := syncRun(t, nil, "--help")
	if code != cli.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"[$MARATHON_URL]", "[$REGISTRATOR_URL]", "[$REFRESH_INTERVAL]", "--once", "implies --once", "--explain", "[$RELOAD_STATUS_URL]", "--version"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestSyncMarathonFileMatchesLiveAnswer: the CI path without cluster
// access. A saved /v2/apps?embed=apps.tasks answer prints the same
// services.yaml, byte for byte, as the live Marathon it was saved from.
func TestSyncMarathonFileMatchesLiveAnswer(t *testing.T) {
	m := marathontest.New(t)
	web := marathontest.BridgeApp("/product/web", 10001).WithLabel("com.meltwater.proxymatic.port.0.mode", "http").
		WithHealthCheck(marathontest.HealthCheck{Path: "/ping"})
	web.AddTask("10.0.0.1", 31001)
	web.AddTask("10.0.0.2", 31002).Unhealthy("HTTP 500")
	m.SetApps(web,
		marathontest.HostApp("/infra/dns", 53).WithProtocol(0, "udp").WithTask("10.0.0.3", 31053),
		marathontest.HostApp("/infra/vault", 8200).WithTask("10.0.0.4", 8200))
	resp, err := http.Get(m.URL + "/v2/apps?embed=apps.tasks")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, saved, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, mode := range [][]string{{"--once", "--dry-run"}, {"--dry-run"}} {
		code, live, stderr := syncRun(t, nil, append([]string{"--marathon", m.URL}, mode...)...)
		if code != cli.ExitOK {
			t.Fatalf("live: exit %d; stderr:\n%s", code, stderr)
		}
		code, fromFile, stderr := syncRun(t, nil, append([]string{"--marathon", "file://" + path}, mode...)...)
		if code != cli.ExitOK {
			t.Fatalf("file: exit %d; stderr:\n%s", code, stderr)
		}
		if fromFile != live {
			t.Errorf("%v: the saved answer printed:\n%s\nthe live one:\n%s", mode, fromFile, live)
		}
		if !strings.Contains(live, "web.product") || !strings.Contains(live, "protocol: udp") || strings.Contains(live, "10.0.0.2") {
			t.Errorf("unexpected output for the fixture:\n%s", live)
		}
	}

	// From the variable too, and with --once writing the file.
	out := filepath.Join(t.TempDir(), "services.yaml")
	code, _, stderr := syncRun(t, map[string]string{"MARATHON_URL": "file://" + path, "SERVICES_FILE": out}, "--once")
	if code != cli.ExitOK {
		t.Fatalf("MARATHON_URL=file://... --once: exit %d; stderr:\n%s", code, stderr)
	}
	_, live, _ := syncRun(t, nil, "--marathon", m.URL, "--dry-run")
	if data, err := os.ReadFile(out); err != nil || string(data) != live {
		t.Errorf("--once wrote (err %v):\n%s\nwant:\n%s", err, data, live)
	}

	// A missing file is a failed source: exit 1, naming it, nothing printed.
	code, stdout, stderr := syncRun(t, nil, "--marathon", "file://"+path+".missing", "--dry-run")
	if code != cli.ExitError || stdout != "" || !strings.Contains(stderr, path+".missing") {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestSyncMarathonFileNeedsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, []byte(`{"apps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"--marathon", "file://" + path, "--status-endpoint", ""}},
		{map[string]string{"MARATHON_URL": "file://" + path}, []string{"--status-endpoint", ""}},
	} {
		code, stdout, stderr := syncRun(t, tc.env, tc.args...)
		if code != cli.ExitUsage {
			t.Errorf("%v %v: exit %d, want %d; stderr:\n%s", tc.env, tc.args, code, cli.ExitUsage, stderr)
		}
		if !strings.Contains(stderr, "--marathon file:// (MARATHON_URL) reads a saved answer once: it goes with --once or --dry-run") || stdout != "" {
			t.Errorf("stderr %q does not name the flag (stdout %q)", stderr, stdout)
		}
	}
}
