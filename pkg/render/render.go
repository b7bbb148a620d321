// Package render decides which proxy serves which service and renders every
// config file proxymatic-reload needs: haproxy.cfg, nginx.conf and one pen
// config per pen service. DryRun is the CI path (proxymatic-reload
// --dry-run): parse a services.yaml, render, check with the real proxies and
// print a summary. See README.md for the files and the decisions behind them.
package render

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/template"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Options are the flags that decide what is rendered.
type Options struct {
	HAProxy        bool   // HAProxy serves TCP services; otherwise pen does
	VHostDomain    string // when set, nginx serves every TCP service as <name>.<domain>
	VHostPort      int
	ProxyProtocol  bool
	MaxConnections int
	PenServers     int // slots per pen service
	PenClients     int // pen's client table (a pen command-line flag, not in its config)
	RunDir         string
	// StatusSocket overrides where HAProxy's stats frontend binds; empty
	// means haproxy.StatsSocket(RunDir).
	StatusSocket string
	TemplateDir  string
	// NginxUser is nginx's user directive; set it only when nginx runs as
	// root. Empty omits it.
	NginxUser string
	// NginxGroup goes with NginxUser (Debian's nobody needs nogroup).
	NginxGroup string
	// FDLimit caps HAProxy's maxconn and nginx's worker_rlimit_nofile and
	// worker_connections to what fits under the file-descriptor limit they
	// will run with (see haproxy.Params.FDLimit, nginx.Params.FDLimit); 0
	// means no cap.
	FDLimit int
	// HAProxyUser and HAProxyGroup are what HAProxy's workers drop to; set
	// them only when HAProxy runs as root. Empty omits them.
	HAProxyUser, HAProxyGroup string
	// HardStopAfter is HAProxy's hard-stop-after (--hard-stop-after); 0
	// omits it.
	HardStopAfter time.Duration
}

// Validate checks the options on their own (the command line validates the
// flags too; this guards callers that build Options in code).
func (o *Options) Validate() error { return o.validate() }

// Plan is which proxy serves what. Each list is in (port, protocol) order.
type Plan struct {
	HAProxy []services.Service // TCP services, when --haproxy
	Pen     []services.Service // UDP services, and TCP ones without --haproxy
	VHosts  []nginx.VHost      // when --vhost-domain
	// Skipped says what a valid service did not get, and why (its vhost
	// name is too long, its port is the vhost port...).
	Skipped []Skip
}

// Skip is one thing a service was not given.
type Skip struct {
	Service services.Key
	Name    string
	Reason  string
	// Code is the explanation's reason code (explain.VHostConflict...).
	Code explain.Reason
	// Holder is, for a virtual host conflict, the service that kept the
	// name.
	Holder services.Key
}

func (s Skip) String() string { return fmt.Sprintf("service %q (%s): %s", s.Name, s.Service, s.Reason) }

// NewPlan splits valid services between the proxies following the rules in
// README.md. It does not validate: Render refuses anything invalid. A
// virtual host name claimed by two services goes to the lowest port.
func NewPlan(o Options, svcs []services.Service) Plan { return newPlan(o, svcs, nil) }

// NewPlanHeld is NewPlan for a running agent: a virtual host name claimed
// by two services stays with the one held records for it, and held is
// then updated to this plan's holders (the agent saves it in the run dir,
// so a restart keeps them too).
func NewPlanHeld(o Options, svcs []services.Service, held *VHostClaims) Plan {
	return newPlan(o, svcs, held)
}

// Templates are the parsed templates, embedded or from --template-dir.
type Templates struct {
	HAProxy, Nginx, Pen *template.Template
}

// LoadTemplates parses the three templates from dir; a file missing from dir
// (or dir empty) falls back to the embedded template.
func LoadTemplates(dir string) (*Templates, error) { return loadTemplates(dir) }

// Files are rendered configs, keyed by their path relative to the output
// directory: "haproxy.cfg", "nginx.conf", "pen/<port>-<protocol>.cfg".
// A proxy with nothing to serve has no file.
type Files struct {
	HAProxy []byte // nil without --haproxy
	// HAProxyServices are the services HAProxy was rendered from, so the
	// agent can tell a change of servers only (applied at run time) from
	// one that needs a reload (haproxy.PlanUpdate).
	HAProxyServices []services.Service
	Nginx           []byte // nil without --vhost-domain
	// NginxVHosts are the virtual hosts nginx was rendered from.
	NginxVHosts []nginx.VHost
	Pen         map[services.Key][]byte // one per pen service
	// PenDropped counts, per pen service with more servers than
	// --pen-servers, the servers left out (the caller logs them).
	PenDropped map[services.Key]int
	// PenRefused are the pen services whose config failed to render or
	// parse (an overriding template): they have no entry in Pen, and the
	// other pen services are rendered as usual (see isolate.go).
	PenRefused []Refusal

	// What the files were rendered with, for Without.
	opts Options
	tmpl *Templates
	pen  []services.Service // the plan's, in key order
}

// PenName is the name of the pen service k ("" when unknown).
func (f *Files) PenName(k services.Key) string {
	i, ok := slices.BinarySearchFunc(f.pen, k, func(s services.Service, k services.Key) int { return s.Key().Compare(k) })
	if !ok {
		return ""
	}
	return f.pen[i].Name
}

// HAProxyParams are the haproxy.Params Render uses for these options.
func HAProxyParams(o Options, t *Templates) haproxy.Params {
	p := haproxy.Params{
		RunDir: o.RunDir, MaxConnections: o.MaxConnections, StatsSocket: o.StatusSocket,
		FDLimit: o.FDLimit, User: o.HAProxyUser, Group: o.HAProxyGroup,
		HardStopAfter: o.HardStopAfter, VHostDomain: o.VHostDomain,
	}
	if t != nil {
		p.Template = t.HAProxy
	}
	return p
}

// Render renders every file of the plan. slots is updated with the pen slot
// assignments (the caller saves it).
func Render(o Options, t *Templates, p Plan, slots *pen.Slots) (*Files, error) {
	return renderFiles(o, t, p, slots)
}

// DryRun parses servicesPath, renders every config into outputDir, checks
// them (haproxy -c, nginx -t, our pen parser) when validate is set, and
// writes a summary to w. It returns an error when the file cannot be read
// or parsed, when any service is rejected (after still rendering the valid
// ones), or when a proxy rejects its config (with the proxy's message).
func DryRun(ctx context.Context, o Options, servicesPath, outputDir string, validate bool, w io.Writer) error {
	return dryRun(ctx, o, servicesPath, outputDir, validate, w)
}
