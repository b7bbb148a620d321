// Package nginx renders, checks and (see process.go) runs nginx for the
// virtual hosts proxymatic serves when --vhost-domain is set: one HTTP
// virtual host <service>.<domain> per TCP service. The config is made to run
// from the run dir under a non-default prefix, so no path of the distribution
// build (Debian points temp paths at /var/lib/nginx) is ever used.
package nginx

import (
	"embed"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
)

// TemplateName is the embedded template's file name; a file of that name in
// --template-dir overrides it.
const TemplateName = "nginx.conf.tmpl"

//go:embed templates/nginx.conf.tmpl
var embedded embed.FS

// VHost is one virtual host: requests for Host serve Servers.
type VHost struct {
	Host    string            // full host name, "<service>.<domain>"
	Service services.Key      // the service it came from (for logs and upstream names)
	Servers []services.Server // may be empty: the vhost then answers 503
}

// Params shape nginx.conf beyond the virtual hosts.
type Params struct {
	// RunDir is nginx's prefix (-p): pid, error log and every temp path
	// live under it. Absolute, clean, without spaces.
	RunDir string
	// Port is the vhost listener (--vhost-port).
	Port int
	// ProxyProtocol expects the PROXY protocol on the listener and takes
	// the client address from it.
	ProxyProtocol bool
	// MaxConnections sizes worker_connections.
	MaxConnections int
	// FDLimit is the hard RLIMIT_NOFILE nginx runs under (the agent's,
	// read with getrlimit at start-up); worker_rlimit_nofile and
	// worker_connections are kept within it, so that a worker's setrlimit
	// never needs a privilege the container lacks ("setrlimit ... Operation
	// not permitted" on every reload). 0 means no cap.
	FDLimit int
	// User is written as the user directive; only meaningful when nginx
	// runs as root (it is an error for a non-root master). Empty omits it.
	User string
	// Group goes with User; empty means nginx's rule (a group named like
	// the user), which fails for "nobody" on Debian: set "nogroup" there.
	Group string
	// Template renders the file; nil means the embedded nginx.conf.tmpl.
	Template *template.Template
}

// PidFile is where nginx writes its master's pid (the pid directive).
func PidFile(runDir string) string { return runDir + "/nginx.pid" }

// TempDirs are the directories nginx.conf points its temp paths at; they
// must exist (see MakeDirs) before nginx -t or nginx runs.
func TempDirs(runDir string) []string {
	base := runDir + "/nginx-tmp/"
	return []string{base + "client_body", base + "proxy", base + "fastcgi", base + "uwsgi", base + "scgi"}
}

// MakeDirs creates the directories nginx.conf refers to under runDir.
func MakeDirs(runDir string) error { return makeDirs(runDir) }

// LoadTemplate parses TemplateName from dir. When dir is empty or holds no
// such file it returns nil, which Params.Template reads as the embedded
// template (rendered by a faster, equivalent writer).
func LoadTemplate(dir string) (*template.Template, error) { return loadTemplate(dir) }

// Render returns nginx.conf for the virtual hosts. Every host name and
// server is validated again here; anything invalid makes Render fail.
func Render(p Params, vhosts []VHost) ([]byte, error) { return render(p, vhosts) }
