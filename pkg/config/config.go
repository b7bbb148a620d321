package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/redact"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/spf13/pflag"
)

// DefaultServicesFile is where sync writes and reload reads by default.
const DefaultServicesFile = "/var/run/proxymatic/services.yaml"

// Sync is proxymatic-sync's configuration.
type Sync struct {
	Marathon         []string // replica base URLs
	marathonRaw      string
	MarathonCallback string // deprecated, ignored
	Registrator      string
	RefreshInterval  time.Duration
	ExposeHost       bool
	GroupSize        int
	HealthCacheSize  int
	Output           string
	Once             bool
	DryRun           bool
	StatusEndpoint   string
	Verbose          bool
	InitialWait      time.Duration
	// MarathonMaxBody caps one decompressed Marathon answer, in bytes.
	MarathonMaxBody int64
	// MarathonTimeout bounds one Marathon request from connect to the
	// last byte of its body.
	MarathonTimeout time.Duration
	// AllowLinkLocal admits link-local backend addresses (see
	// services.AllowLinkLocal).
	AllowLinkLocal  bool
	Explain         bool   // --explain: with --once, reasons to stderr
	ReloadStatusURL string // link from the status page to reload's
}

// Defaults of the Marathon request limits. 256 MiB is about six times a
// cluster of 10,000 apps with 4 tasks each (44 MB, docs/performance.md).
const (
	DefaultMarathonMaxBody = 256 << 20
	DefaultMarathonTimeout = 30 * time.Second
)

// BindSync registers proxymatic-sync's flags.
func BindSync(fs *pflag.FlagSet, c *Sync) {
	b := binder{fs}
	b.str(&c.marathonRaw, "marathon", "m", "MARATHON_URL", "", `comma-separated Marathon replicas, e.g. "http://marathon-01:8080/,http://marathon-02:8080/"; or, with --once/--dry-run, "file:///path/apps.json", a saved answer of GET /v2/apps?embed=apps.tasks`)
	b.str(&c.MarathonCallback, "marathon-callback", "c", "MARATHON_CALLBACK_URL", "", "deprecated: accepted and ignored; events come from Marathon's /v2/events stream")
	b.str(&c.Registrator, "registrator", "r", "REGISTRATOR_URL", "", `where registrator publishes services: "etcd://host:port[,host:port]/prefix" (etcd v2 keys API) or "etcd3://..." (etcd v3 API)`)
	b.seconds(&c.RefreshInterval, "refresh-interval", "i", "REFRESH_INTERVAL", 60, "seconds between polls of sources that are not event driven, and the safety-net poll of those that are")
	b.boolean(&c.ExposeHost, "expose-host", "e", "EXPOSE_HOST", false, "keep tasks in net=host mode (may collide with ports of a proxymatic in net=host mode)")
	b.integer(&c.GroupSize, "group-size", "", "GROUP_SIZE", 1, 1, 1000000, "number of proxymatic instances; per-server maxconn is divided by it")
	b.integer(&c.HealthCacheSize, "health-cache-size", "", "HEALTH_CACHE_SIZE", 100000, 1, 100000000, "Marathon tasks whose last health result is kept, so that a task last seen healthy keeps serving while a new Marathon leader has no results yet")
	b.str(&c.Output, "output", "o", "SERVICES_FILE", DefaultServicesFile, "where services.yaml is written")
	b.boolean(&c.Once, "once", "", "", false, "refresh every source once, write (or print) and exit; non-zero if a source failed")
	b.boolean(&c.DryRun, "dry-run", "", "", false, "print services.yaml to stdout and write nothing; implies --once")
	b.str(&c.StatusEndpoint, "status-endpoint", "", "SYNC_STATUS_ENDPOINT", "0.0.0.0:9091", "address for /status and /metrics; empty disables")
	b.emptyDisables("status-endpoint")
	b.boolean(&c.Verbose, "verbose", "v", "VERBOSE", false, "debug logging")
	b.duration(&c.InitialWait, "initial-wait", "INITIAL_WAIT", 10*time.Second, "with no previous services.yaml, how long start-up waits for every source before publishing those that answered (the others are added when they answer)")
	b.size(&c.MarathonMaxBody, "marathon-max-body", "MARATHON_MAX_BODY", DefaultMarathonMaxBody, 64<<10, 16<<30, "largest Marathon answer read, decompressed (bytes, or 64KiB, 256MiB, 1GiB...); a larger one fails that replica")
	b.durationOrSeconds(&c.MarathonTimeout, "marathon-timeout", "MARATHON_TIMEOUT", DefaultMarathonTimeout, "longest one Marathon request may take, from connect to the last byte of the answer (a duration such as 30s, or whole seconds); then the next replica is asked")
	b.boolean(&c.AllowLinkLocal, "allow-link-local", "", "ALLOW_LINK_LOCAL", false, "accept link-local backend addresses (169.254.0.0/16, fe80::/10), refused by default")
	b.boolean(&c.Explain, "explain", "", "", false, "with --once or --dry-run: print why each app, task, port or key left out is not served to stderr, as a table")
	b.str(&c.ReloadStatusURL, "reload-status-url", "", "RELOAD_STATUS_URL", "", `proxymatic-reload's status endpoint, for a link from the status page: "http://host:9090" or ":9090" (this host)`)
}

// Validate checks the settings together, after flags and variables are read.
func (c *Sync) Validate() error {
	c.Marathon = nil
	savedAnswer := false
	for _, raw := range strings.Split(c.marathonRaw, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if strings.HasPrefix(strings.ToLower(raw), "file:") {
			if err := checkFileURL(raw); err != nil {
				return usagef("invalid MARATHON_URL (--marathon) entry %q: %v", redact.URL(raw), err)
			}
			savedAnswer = true
		} else if err := checkHTTPURL(raw); err != nil {
			return usagef("invalid MARATHON_URL (--marathon) entry %q: %v", redact.URL(raw), err)
		}
		c.Marathon = append(c.Marathon, raw)
	}
	if savedAnswer {
		// A saved answer of /v2/apps is read once: there is no event
		// stream to follow, and a daemon serving a frozen file would look
		// live while it is not.
		if len(c.Marathon) > 1 {
			return usagef("invalid MARATHON_URL (--marathon): a file:// answer cannot be combined with other replicas")
		}
		if !c.Once && !c.DryRun {
			return usagef("--marathon file:// (MARATHON_URL) reads a saved answer once: it goes with --once or --dry-run")
		}
	}
	if c.Registrator != "" {
		u, err := url.Parse(c.Registrator)
		if err != nil || (u.Scheme != "etcd" && u.Scheme != "etcd3" && u.Scheme != "etcds" && u.Scheme != "etcd3s") || u.Host == "" {
			return usagef("invalid REGISTRATOR_URL (--registrator) %q: want etcd://host:port[,host:port]/prefix or etcd3://host:port[,host:port]/prefix (etcds://, etcd3s:// for TLS)", redact.URL(c.Registrator))
		}
	}
	if len(c.Marathon) == 0 && c.Registrator == "" {
		return usagef("no discovery source: set --marathon (MARATHON_URL) and/or --registrator (REGISTRATOR_URL)")
	}
	if c.Output == "" && !c.DryRun {
		return usagef("invalid SERVICES_FILE (--output): empty")
	}
	if c.Output != "" {
		c.Output = filepath.Clean(c.Output)
	}
	if err := checkEndpoint(c.StatusEndpoint); err != nil {
		return usagef("invalid SYNC_STATUS_ENDPOINT (--status-endpoint) %q: %v", c.StatusEndpoint, err)
	}
	if c.Explain && !c.Once && !c.DryRun {
		return usagef("--explain goes with --once or --dry-run (a running proxymatic-sync serves its reasons on /status/explain)")
	}
	if err := checkStatusURL(c.ReloadStatusURL); err != nil {
		return usagef("invalid RELOAD_STATUS_URL (--reload-status-url) %q: %v", clipValue(c.ReloadStatusURL), err)
	}
	return nil
}

// Reload is proxymatic-reload's configuration.
type Reload struct {
	Services       string
	HAProxy        bool
	VHostDomain    string
	VHostPort      int
	ProxyProtocol  bool
	MaxConnections int
	PenServers     int
	PenClients     int
	StatusEndpoint string
	RunDir         string
	TemplateDir    string
	DryRun         bool
	OutputDir      string
	Check          bool // --validate
	Verbose        bool
	ShutdownDelay  time.Duration
	StopTimeout    time.Duration
	AllowLinkLocal bool          // see services.AllowLinkLocal
	HardStopAfter  time.Duration // 0: no limit
	SyncStatusURL  string        // link from the status page to sync's
}

// MaxHardStopAfter is the longest --hard-stop-after HAProxy takes (its
// timers hold 2^31-1 ms).
const MaxHardStopAfter = (1<<31 - 1) * time.Millisecond

// BindReload registers proxymatic-reload's flags.
func BindReload(fs *pflag.FlagSet, c *Reload) {
	b := binder{fs}
	b.str(&c.Services, "services", "s", "SERVICES_FILE", DefaultServicesFile, "the services.yaml to follow")
	b.boolean(&c.HAProxy, "haproxy", "", "HAPROXY", false, "HAProxy serves TCP services instead of pen")
	b.str(&c.VHostDomain, "vhost-domain", "", "VHOST_DOMAIN", "", `enables nginx with a virtual host per service under this domain, e.g. "services.example.com"`)
	b.integer(&c.VHostPort, "vhost-port", "", "VHOST_PORT", 80, 1, 65535, "nginx virtual host port")
	b.boolean(&c.ProxyProtocol, "proxy-protocol", "", "PROXY_PROTOCOL", false, "proxy protocol on the nginx vhost listener (AWS ELB in TCP mode)")
	b.integer(&c.MaxConnections, "max-connections", "", "MAX_CONNECTIONS", 8192, 1, 10000000, "maximum connections per service")
	b.integer(&c.PenServers, "pen-servers", "", "PEN_SERVERS", 32, 1, 10000, "server slots per pen service")
	b.integer(&c.PenClients, "pen-clients", "", "PEN_CLIENTS", 8192, 1, 10000000, "pen client table size")
	b.str(&c.StatusEndpoint, "status-endpoint", "", "STATUS_ENDPOINT", "0.0.0.0:9090", "address for /status, /metrics and the HAProxy stats page (/haproxy); empty disables")
	// The original image: "Specify an empty string to disable this endpoint".
	b.emptyDisables("status-endpoint")
	b.str(&c.RunDir, "run-dir", "", "RUN_DIR", "/var/run/proxymatic", "where rendered configs, pid files and sockets live")
	b.str(&c.TemplateDir, "template-dir", "", "TEMPLATE_DIR", "", "directory overriding the embedded templates (same file names)")
	b.boolean(&c.DryRun, "dry-run", "", "", false, "render into --output-dir, check with the real proxies, exit; starts nothing")
	b.str(&c.OutputDir, "output-dir", "", "", "", "where --dry-run writes the configs")
	b.boolean(&c.Check, "validate", "", "", true, "with --dry-run: check what was rendered with haproxy -c / nginx -t")
	b.boolean(&c.Verbose, "verbose", "v", "VERBOSE", false, "debug logging")
	b.duration(&c.ShutdownDelay, "shutdown-delay", "SHUTDOWN_DELAY", 2*time.Second, "after SIGTERM, how long /status reports TERMINATING before the proxies stop")
	b.duration(&c.StopTimeout, "stop-timeout", "STOP_TIMEOUT", 10*time.Second, "how long the proxies get to stop gracefully before they are killed")
	b.boolean(&c.AllowLinkLocal, "allow-link-local", "", "ALLOW_LINK_LOCAL", false, "serve link-local backend addresses (169.254.0.0/16, fe80::/10), refused by default")
	b.duration(&c.HardStopAfter, "hard-stop-after", "HARD_STOP_AFTER", 30*time.Minute, "after a reload, how long HAProxy's old workers may finish their connections before they are cut; 0 disables the limit")
	b.str(&c.SyncStatusURL, "sync-status-url", "", "SYNC_STATUS_URL", "", `proxymatic-sync's status endpoint, for a link from the status page: "http://host:9091" or ":9091" (this host)`)
}

// Validate checks the settings together, after flags and variables are read.
func (c *Reload) Validate() error {
	if c.Services == "" {
		return usagef("invalid SERVICES_FILE (--services): empty")
	}
	if c.VHostDomain != "" {
		c.VHostDomain = strings.TrimSuffix(services.ASCIILower(c.VHostDomain), ".")
		if !services.ValidName(c.VHostDomain) {
			return usagef("invalid VHOST_DOMAIN (--vhost-domain) %q: want a DNS name of [a-z0-9.-]", clipValue(c.VHostDomain))
		}
	}
	if err := checkEndpoint(c.StatusEndpoint); err != nil {
		return usagef("invalid STATUS_ENDPOINT (--status-endpoint) %q: %v", c.StatusEndpoint, err)
	}
	if c.DryRun {
		if c.OutputDir == "" {
			return usagef("--dry-run needs --output-dir")
		}
		// Rendered as the run dir of the configs under check: the same
		// rule, once the path is absolute.
		abs, err := filepath.Abs(c.OutputDir)
		if err != nil || !services.SafeFilePath(abs) {
			return usagef("invalid --output-dir %q: want a path of [A-Za-z0-9._/-]", clipValue(c.OutputDir))
		}
	} else if c.OutputDir != "" {
		return usagef("--output-dir goes with --dry-run")
	}
	if c.HardStopAfter > MaxHardStopAfter {
		return usagef("invalid HARD_STOP_AFTER (--hard-stop-after) %s: want 0 (no limit) up to %s", c.HardStopAfter, MaxHardStopAfter)
	}
	if err := checkStatusURL(c.SyncStatusURL); err != nil {
		return usagef("invalid SYNC_STATUS_URL (--sync-status-url) %q: %v", clipValue(c.SyncStatusURL), err)
	}
	if c.RunDir == "" {
		return usagef("invalid RUN_DIR (--run-dir): empty")
	}
	c.RunDir = filepath.Clean(c.RunDir)
	// The run dir is written into every proxy config (sockets, pid files,
	// temp paths): only characters that need no quoting in any of them.
	if !services.SafeFilePath(c.RunDir) {
		return usagef("invalid RUN_DIR (--run-dir) %q: want an absolute path of [A-Za-z0-9._/-]", clipValue(c.RunDir))
	}
	// Unix socket paths are limited to 108 bytes; the longest we create is
	// the HAProxy stats socket.
	if len(c.RunDir) > 80 {
		return usagef("invalid RUN_DIR (--run-dir) %q: longer than 80 bytes, too long for the unix sockets it holds", c.RunDir)
	}
	return nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	// pkg/marathon adds its API paths to the URL: a query or fragment would
	// be refused there, later and without naming the variable.
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("no query or fragment allowed: want http://host:port[/path]")
	}
	return nil
}

// checkFileURL accepts what pkg/marathon reads as a saved answer:
// file:///abs/path, file://localhost/abs/path or file:relative/path.
func checkFileURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Opaque != "" {
		return nil
	}
	if u.Host != "" && u.Host != "localhost" {
		return fmt.Errorf("want file:///path/to/apps.json (three slashes) or file:relative/path")
	}
	if u.Path == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("want file:///path/to/apps.json")
	}
	return nil
}

// checkStatusURL accepts "" (no link), an http(s) URL of the other
// binary's status endpoint, or ":PORT" for the same host as the page.
func checkStatusURL(raw string) error {
	if raw == "" {
		return nil
	}
	if port, ok := strings.CutPrefix(raw, ":"); ok {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("want :PORT with a port from 1 to 65535, or an http:// URL")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("want an http:// or https:// URL such as http://host:9091, or :PORT")
	}
	return nil
}

// checkEndpoint accepts "" (disabled) or host:port with a valid port.
func checkEndpoint(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("want a port from 0 to 65535")
	}
	return nil
}
