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
	if err := ApplyEnv(fs, func(k string) string { return env[k] }); err != nil {
		return nil, err
	}
	return &c, c.Validate()
}

func parseSync(t *testing.T, args []string, env map[string]string) (*Sync, error) {
	t.Helper()
	var c Sync
	fs := pflag.NewFlagSet("proxymatic-sync", pflag.ContinueOnError)
	BindSync(fs, &c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := ApplyEnv(fs, func(k string) string { return env[k] }); err != nil {
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
		c.RunDir != "/var/run/proxymatic" || !c.Check || c.ShutdownDelay != 2*time.Second || c.StopTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

func TestReloadEnvAndFlagPrecedence(t *testing.T) {
	env := map[string]string{"HAPROXY": "true", "VHOST_DOMAIN": "Apps.Example.com.", "VHOST_PORT": "8080",
		"PEN_SERVERS": "8", "PROXY_PROTOCOL": "1", "STATUS_ENDPOINT": ""}
	c, err := parseReload(t, []string{"--vhost-port", "81"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !c.HAProxy || c.VHostDomain != "apps.example.com" || c.VHostPort != 81 || c.PenServers != 8 || !c.ProxyProtocol {
		t.Errorf("got %+v", c)
	}
	if c.StatusEndpoint != "0.0.0.0:9090" {
		t.Errorf("an empty variable must count as unset, got %q", c.StatusEndpoint)
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
