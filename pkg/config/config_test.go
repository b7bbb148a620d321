package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parseReload(t *testing.T, args []string, env map[string]string) (*Reload, error) {
	t.Helper()
	var c Reload
	fs := pflag.NewFlagSet("proxymatic-reload", pflag.ContinueOnError)
	BindReload(fs, &c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := ApplyEnvLookup(fs, mapLookup(env)); err != nil {
		return nil, err
	}
	return &c, c.Validate()
}

// mapLookup is a process environment holding exactly env's keys: a key with
// an empty value is a variable set to "".
func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func parseSync(t *testing.T, args []string, env map[string]string) (*Sync, error) {
	t.Helper()
	var c Sync
	fs := pflag.NewFlagSet("proxymatic-sync", pflag.ContinueOnError)
	BindSync(fs, &c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := ApplyEnvLookup(fs, mapLookup(env)); err != nil {
		return nil, err
	}
	return &c, c.Validate()
}

func TestReloadDefaults(t *testing.T) {
	c, err := parseReload(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Services != DefaultServicesFile || c.HAProxy || c.VHostPort != 80 || c.MaxConnections != 8192 ||
		c.PenServers != 32 || c.PenClients != 8192 || c.StatusEndpoint != "0.0.0.0:9090" ||
		c.RunDir != "/var/run/proxymatic" || !c.Check || c.ShutdownDelay != 2*time.Second || c.StopTimeout != 10*time.Second ||
		c.HardStopAfter != 30*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
}

func TestReloadEnvAndFlagPrecedence(t *testing.T) {
	env := map[string]string{"HAPROXY": "true", "VHOST_DOMAIN": "Apps.Example.com.", "VHOST_PORT": "8080",
		"PEN_SERVERS": "8", "PROXY_PROTOCOL": "1", "MAX_CONNECTIONS": ""}
	c, err := parseReload(t, []string{"--vhost-port", "81"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !c.HAProxy || c.VHostDomain != "apps.example.com" || c.VHostPort != 81 || c.PenServers != 8 || !c.ProxyProtocol {
		t.Errorf("got %+v", c)
	}
	if c.MaxConnections != 8192 {
		t.Errorf("an empty variable must count as unset, got MAX_CONNECTIONS %d", c.MaxConnections)
	}
	c, err = parseReload(t, []string{"--haproxy=false"}, env)
	if err != nil || c.HAProxy {
		t.Errorf("flag must win over HAPROXY=true: %v %+v", err, c)
	}
}

func TestBadValuesNameTheirSource(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"VHOST_PORT": "eighty"}, nil, `invalid VHOST_PORT "eighty": want a whole number from 1 to 65535`},
		{map[string]string{"VHOST_PORT": "70000"}, nil, "invalid VHOST_PORT"},
		{map[string]string{"HAPROXY": "maybe"}, nil, `invalid HAPROXY "maybe": want true or false`},
		{map[string]string{"MAX_CONNECTIONS": "0"}, nil, "invalid MAX_CONNECTIONS"},
		{map[string]string{"VHOST_DOMAIN": "a b.com"}, nil, "invalid VHOST_DOMAIN"},
		{map[string]string{"VHOST_DOMAIN": "x;}evil"}, nil, "invalid VHOST_DOMAIN"},
		{map[string]string{"STATUS_ENDPOINT": "nope"}, nil, "invalid STATUS_ENDPOINT"},
		{map[string]string{"SHUTDOWN_DELAY": "soon"}, nil, "invalid SHUTDOWN_DELAY"},
		{map[string]string{"HARD_STOP_AFTER": "30x"}, nil, "invalid HARD_STOP_AFTER"},
		{map[string]string{"HARD_STOP_AFTER": "-1m"}, nil, "invalid HARD_STOP_AFTER"},
		{map[string]string{"HARD_STOP_AFTER": "597h"}, nil, "invalid HARD_STOP_AFTER"},
		{nil, []string{"--dry-run"}, "--dry-run needs --output-dir"},
		{nil, []string{"--output-dir", "x"}, "--output-dir goes with --dry-run"},
		{nil, []string{"--run-dir", "/" + strings.Repeat("r", 100)}, "invalid RUN_DIR"},
		{nil, []string{"--run-dir", "relative/run"}, "invalid RUN_DIR"},
		{map[string]string{"RUN_DIR": "/run/a b"}, nil, "invalid RUN_DIR"},
		{map[string]string{"RUN_DIR": "/run/x;y"}, nil, "invalid RUN_DIR"},
		{nil, []string{"--dry-run", "--output-dir", "out dir"}, "invalid --output-dir"},
	}
	for _, c := range cases {
		_, err := parseReload(t, c.args, c.env)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want a UsageError containing %q", c.env, c.args, err, c.want)
		}
	}
}

func TestHardStopAfter(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		want time.Duration
	}{
		{"0", nil, 0}, // no limit, as the original had
		{"1h", nil, time.Hour},
		{"596h31m23s647ms", nil, MaxHardStopAfter},
		{"0", []string{"--hard-stop-after=45s"}, 45 * time.Second},
		{"90", nil, 90 * time.Second}, // whole seconds, not HAProxy's bare milliseconds
	} {
		c, err := parseReload(t, tc.args, map[string]string{"HARD_STOP_AFTER": tc.env})
		if err != nil || c.HardStopAfter != tc.want {
			t.Errorf("HARD_STOP_AFTER=%s %v: %v, %v; want %s", tc.env, tc.args, c, err, tc.want)
		}
	}
}

func TestBadFlagValue(t *testing.T) {
	_, err := parseReload(t, []string{"--pen-servers", "many"}, nil)
	if err == nil || !strings.Contains(err.Error(), "want a whole number") {
		t.Fatalf("got %v", err)
	}
}

func TestSync(t *testing.T) {
	c, err := parseSync(t, []string{"-i", "5"}, map[string]string{
		"MARATHON_URL": "http://user:secret@m1:8080/, https://m2:8443", "REFRESH_INTERVAL": "30",
		"EXPOSE_HOST": "yes", "GROUP_SIZE": "3", "REGISTRATOR_URL": "etcd3://e1:2379,e2:2379/services",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Marathon) != 2 || c.Marathon[1] != "https://m2:8443" || c.RefreshInterval != 5*time.Second ||
		!c.ExposeHost || c.GroupSize != 3 || c.Output != DefaultServicesFile || c.StatusEndpoint != "0.0.0.0:9091" ||
		c.HealthCacheSize != 100000 {
		t.Errorf("got %+v", c)
	}
}

func TestSyncErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{nil, "no discovery source"},
		{map[string]string{"MARATHON_URL": "ftp://x"}, "invalid MARATHON_URL"},
		{map[string]string{"MARATHON_URL": "http://m", "REFRESH_INTERVAL": "abc"}, `invalid REFRESH_INTERVAL "abc": want whole seconds`},
		{map[string]string{"MARATHON_URL": "http://m", "REFRESH_INTERVAL": "1.5"}, "invalid REFRESH_INTERVAL"},
		{map[string]string{"MARATHON_URL": "http://m", "GROUP_SIZE": "0"}, "invalid GROUP_SIZE"},
		{map[string]string{"MARATHON_URL": "http://m", "HEALTH_CACHE_SIZE": "0"}, `invalid HEALTH_CACHE_SIZE "0": want a whole number from 1 to 100000000`},
		{map[string]string{"MARATHON_URL": "http://m", "HEALTH_CACHE_SIZE": "lots"}, "invalid HEALTH_CACHE_SIZE"},
		{map[string]string{"REGISTRATOR_URL": "consul://c/x"}, "invalid REGISTRATOR_URL"},
		{map[string]string{"MARATHON_URL": "http://m", "SYNC_STATUS_ENDPOINT": ":99999"}, "invalid SYNC_STATUS_ENDPOINT"},
	}
	for _, c := range cases {
		_, err := parseSync(t, nil, c.env)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.env, err, c.want)
		}
	}
}

func TestPasswordNotInErrors(t *testing.T) {
	_, err := parseSync(t, nil, map[string]string{"MARATHON_URL": "gopher://user:hunter2@m"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got %v", err)
	}
}

func TestSyncHealthCacheSize(t *testing.T) {
	c, err := parseSync(t, []string{"--health-cache-size", "500"}, map[string]string{"MARATHON_URL": "http://m", "HEALTH_CACHE_SIZE": "7"})
	if err != nil || c.HealthCacheSize != 500 {
		t.Fatalf("flag: %d, %v", c.HealthCacheSize, err)
	}
	c, err = parseSync(t, nil, map[string]string{"MARATHON_URL": "http://m", "HEALTH_CACHE_SIZE": "7"})
	if err != nil || c.HealthCacheSize != 7 {
		t.Fatalf("variable: %d, %v", c.HealthCacheSize, err)
	}
}

func TestSyncInitialWait(t *testing.T) {
	c, err := parseSync(t, nil, map[string]string{"MARATHON_URL": "http://m"})
	if err != nil || c.InitialWait != 10*time.Second {
		t.Fatalf("default initial wait: %v %v, want 10s", err, c)
	}
	c, err = parseSync(t, []string{"--initial-wait", "1m30s"}, map[string]string{"MARATHON_URL": "http://m", "INITIAL_WAIT": "2s"})
	if err != nil || c.InitialWait != 90*time.Second {
		t.Fatalf("flag over variable: %v %v", err, c)
	}
	c, err = parseSync(t, nil, map[string]string{"MARATHON_URL": "http://m", "INITIAL_WAIT": "500ms"})
	if err != nil || c.InitialWait != 500*time.Millisecond {
		t.Fatalf("INITIAL_WAIT=500ms: %v %v", err, c)
	}
	// A bare number is whole seconds, as --marathon-timeout and the
	// original's times take it.
	c, err = parseSync(t, nil, map[string]string{"MARATHON_URL": "http://m", "INITIAL_WAIT": "5"})
	if err != nil || c.InitialWait != 5*time.Second {
		t.Fatalf("INITIAL_WAIT=5: %v %v, want 5s", err, c)
	}
	for _, bad := range []string{"soon", "-1s", "-1", "1e3", "5 s"} {
		_, err := parseSync(t, nil, map[string]string{"MARATHON_URL": "http://m", "INITIAL_WAIT": bad})
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), `invalid INITIAL_WAIT "`+bad+`": want a duration`) {
			t.Errorf("INITIAL_WAIT=%s: got %v", bad, err)
		}
	}
}

func TestSyncMarathonFile(t *testing.T) {
	for _, args := range [][]string{
		{"--once", "-m", "file:///ci/apps.json"},
		{"--dry-run", "-m", "file://localhost/ci/apps.json"},
		{"--dry-run", "-m", "file:apps.json"},
	} {
		c, err := parseSync(t, args, nil)
		if err != nil || len(c.Marathon) != 1 {
			t.Errorf("%v: %v %+v", args, err, c)
		}
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-m", "file:///ci/apps.json"}, nil, "--marathon file:// (MARATHON_URL) reads a saved answer once: it goes with --once or --dry-run"},
		{nil, map[string]string{"MARATHON_URL": "file:///ci/apps.json"}, "goes with --once or --dry-run"},
		{[]string{"--once", "-m", "http://m:8080,file:///ci/apps.json"}, nil, "cannot be combined with other replicas"},
		{[]string{"--once", "-m", "file://apps.json"}, nil, `invalid MARATHON_URL (--marathon) entry "file://apps.json": want file:///path/to/apps.json`},
		{[]string{"--once", "-m", "file://"}, nil, "invalid MARATHON_URL (--marathon) entry"},
	} {
		_, err := parseSync(t, tc.args, tc.env)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want a UsageError containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestMarathonLimits(t *testing.T) {
	c, err := parseSync(t, []string{"-m", "http://m:8080"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MarathonMaxBody != DefaultMarathonMaxBody || c.MarathonTimeout != DefaultMarathonTimeout || c.AllowLinkLocal {
		t.Errorf("defaults: %d %s %v", c.MarathonMaxBody, c.MarathonTimeout, c.AllowLinkLocal)
	}
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "64KiB": 64 << 10, "256MiB": 256 << 20, "256mib": 256 << 20, "1G": 1 << 30,
		"100MB": 100e6, " 2 GiB ": 2 << 30, "512K": 512 << 10, "70000B": 70000,
	} {
		c, err := parseSync(t, []string{"-m", "http://m:8080"}, map[string]string{"MARATHON_MAX_BODY": in})
		if err != nil || c.MarathonMaxBody != want {
			t.Errorf("MARATHON_MAX_BODY=%q: %v, %d; want %d", in, err, c.MarathonMaxBody, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1KB", "10", "1.5GiB", "17GiB", "256 furlongs", "99999999999999999999"} {
		if bad == "" {
			continue
		}
		_, err := parseSync(t, []string{"-m", "http://m:8080", "--marathon-max-body", bad}, nil)
		if err == nil || !strings.Contains(err.Error(), "marathon-max-body") && !strings.Contains(err.Error(), "want a size") {
			t.Errorf("--marathon-max-body %q: %v", bad, err)
		}
	}
	for in, want := range map[string]time.Duration{"45": 45 * time.Second, "1500ms": 1500 * time.Millisecond, "2m": 2 * time.Minute} {
		c, err := parseSync(t, []string{"-m", "http://m:8080"}, map[string]string{"MARATHON_TIMEOUT": in})
		if err != nil || c.MarathonTimeout != want {
			t.Errorf("MARATHON_TIMEOUT=%q: %v %s", in, err, c.MarathonTimeout)
		}
	}
	for _, bad := range []string{"0", "-5s", "soon", "0s"} {
		if _, err := parseSync(t, []string{"-m", "http://m:8080"}, map[string]string{"MARATHON_TIMEOUT": bad}); err == nil || !strings.Contains(err.Error(), "MARATHON_TIMEOUT") {
			t.Errorf("MARATHON_TIMEOUT=%q: %v", bad, err)
		}
	}
	c, err = parseSync(t, []string{"-m", "http://m:8080"}, map[string]string{"ALLOW_LINK_LOCAL": "true"})
	if err != nil || !c.AllowLinkLocal {
		t.Errorf("ALLOW_LINK_LOCAL: %v %v", err, c.AllowLinkLocal)
	}
	r, err := parseReload(t, []string{"--allow-link-local"}, nil)
	if err != nil || !r.AllowLinkLocal {
		t.Errorf("reload --allow-link-local: %v %v", err, r.AllowLinkLocal)
	}
}

// A Marathon or registrator URL that does not parse (no scheme; a password
// with '/', '#' or '?' unescaped) must not print its password.
func TestSchemelessURLRedacted(t *testing.T) {
	for _, raw := range []string{"alice:s3cr3t@host:8080", "alice:s3cr3t@host", "http://alice:s3cr3t/x@host:8080", "alice:s3cr3t@host:8080/v2?x#y",
		"http://alice:s3#cr3t@host:8080", "http://alice:s3?cr3t@host:8080"} {
		_, err := parseSync(t, []string{"-m", raw}, nil)
		if err == nil {
			continue
		}
		if strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "cr3t") {
			t.Errorf("%q: error shows the password: %v", raw, err)
		}
	}
	for _, raw := range []string{"http://alice:s3#cr3t@host:8080", "http://alice:s3?cr3t@host:8080"} {
		_, err := parseSync(t, []string{"-m", raw}, nil)
		if err == nil || !strings.Contains(err.Error(), "alice:xxxxx@host:8080") {
			t.Errorf("%q: %v, want an error naming alice:xxxxx@host:8080", raw, err)
		}
	}
	_, err := parseSync(t, []string{"-m", "http://m:8080", "-r", "etcd://u:s3#cr3t@h:2379/p"}, nil)
	if err == nil || strings.Contains(err.Error(), "cr3t") || !strings.Contains(err.Error(), "etcd://u:xxxxx@h:2379/p") {
		t.Errorf("REGISTRATOR_URL with '#' in its password: %v", err)
	}
}

func TestVHostDomainLoweredAsASCII(t *testing.T) {
	if _, err := parseReload(t, []string{"--vhost-domain", "\u212Aube.example"}, nil); err == nil {
		t.Error("a Kelvin sign in --vhost-domain was accepted (lowered into a 'k')")
	}
}

// The original image disabled its status endpoint with STATUS_ENDPOINT set
// to the empty string (its help: "Specify an empty string to disable this
// endpoint"); an operator who did so must not find a listener on 9090. The
// same holds for sync's SYNC_STATUS_ENDPOINT. Unset, both keep their default;
// the getenv form (no way to tell set from unset) keeps the default too.
func TestEmptyStatusEndpointVariableDisables(t *testing.T) {
	r, err := parseReload(t, nil, map[string]string{"STATUS_ENDPOINT": ""})
	if err != nil || r.StatusEndpoint != "" {
		t.Errorf("STATUS_ENDPOINT set to \"\": endpoint %q, %v; want disabled", r.StatusEndpoint, err)
	}
	s, err := parseSync(t, []string{"-m", "http://m:8080"}, map[string]string{"SYNC_STATUS_ENDPOINT": ""})
	if err != nil || s.StatusEndpoint != "" {
		t.Errorf("SYNC_STATUS_ENDPOINT set to \"\": endpoint %q, %v; want disabled", s.StatusEndpoint, err)
	}
	r, err = parseReload(t, []string{"--status-endpoint", "127.0.0.1:1"}, map[string]string{"STATUS_ENDPOINT": ""})
	if err != nil || r.StatusEndpoint != "127.0.0.1:1" {
		t.Errorf("the flag must win over an empty STATUS_ENDPOINT: %q, %v", r.StatusEndpoint, err)
	}
	var c Reload
	fs := pflag.NewFlagSet("proxymatic-reload", pflag.ContinueOnError)
	BindReload(fs, &c)
	if err := ApplyEnv(fs, func(string) string { return "" }); err != nil || c.StatusEndpoint != "0.0.0.0:9090" {
		t.Errorf("getenv form: %q, %v; want the default", c.StatusEndpoint, err)
	}
}
