// Package haproxy renders, checks and (see process.go) runs HAProxy for the
// TCP services proxymatic serves when --haproxy is on. Everything that
// reaches haproxy.cfg goes through a flat, pre-validated view model: the
// template never sees a raw services.Service.
package haproxy

import (
	"embed"
	"text/template"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// TemplateName is the embedded template's file name; a file of that name in
// --template-dir overrides it.
const TemplateName = "haproxy.cfg.tmpl"

//go:embed templates/haproxy.cfg.tmpl
var embedded embed.FS

// Params shape haproxy.cfg beyond the services themselves.
type Params struct {
	// RunDir holds the admin socket, the stats socket and the server-state
	// file. It must be an absolute, clean path without spaces.
	RunDir string
	// MaxConnections bounds each service (listen maxconn); the global
	// maxconn is twice it (a proxied connection holds two sockets), both
	// capped by FDLimit.
	MaxConnections int
	// FDLimit is the file-descriptor limit HAProxy will run under (the
	// agent's RLIMIT_NOFILE hard limit, which its children inherit).
	// HAProxy raises its own limit to about twice the global maxconn and
	// refuses to start when it cannot, which `haproxy -c` does not detect;
	// so the global maxconn is capped to (FDLimit - listeners - reserve) / 2
	// and each listen's maxconn to the global one. 0 means no cap.
	FDLimit int
	// User and Group are the global user/group the workers drop to after
	// the master (root) has bound the sockets. Empty omits them.
	User, Group string
	// HardStopAfter bounds how long old workers may finish their
	// connections after a reload (--hard-stop-after); 0 omits the setting
	// (no limit, as the original image had).
	HardStopAfter time.Duration
	// VHostDomain, when set, makes the Host header of a service's HTTP
	// health checks its virtual host name, <name>.<domain>; otherwise the
	// check sends the service name.
	VHostDomain string
	// StatsSocket is where the stats frontend binds; empty means
	// StatsSocket(RunDir).
	StatsSocket string
	// Template renders the file; nil means the embedded haproxy.cfg.tmpl.
	Template *template.Template
}

// AdminSocket is the master-worker admin socket (stats socket ... level admin
// expose-fd listeners) the reload agent talks to.
func AdminSocket(runDir string) string { return runDir + "/haproxy.sock" }

// StatsSocket is the unix socket the HTTP stats frontend binds; the reload
// agent reverse-proxies it on its own --status-endpoint under /haproxy.
func StatsSocket(runDir string) string { return runDir + "/haproxy-stats.sock" }

// StateFile is where server state is saved before a reload and loaded after
// it (server-state-file / load-server-state-from-file global).
func StateFile(runDir string) string { return runDir + "/haproxy.state" }

// LoadTemplate parses TemplateName from dir. When dir is empty or holds no
// such file it returns nil, which Params.Template reads as the embedded
// template (rendered by a faster, equivalent writer).
func LoadTemplate(dir string) (*template.Template, error) {
	return loadTemplate(dir)
}

// Render returns haproxy.cfg for the services. Every service is validated
// again here (defence in depth): one that would not pass services'
// validation makes Render fail and nothing is returned.
func Render(p Params, svcs []services.Service) ([]byte, error) {
	return render(p, svcs)
}
