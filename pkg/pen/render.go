// Package pen renders, checks and (see process.go) runs pen, which serves
// every UDP service and, unless --haproxy is on, every TCP service: one pen
// process and one config file per service.
//
// pen re-reads its config on SIGHUP but only adds and changes servers, so
// each file lists every slot: a server keeps its slot while it exists, and a
// free slot is written explicitly as address 0.0.0.0 port 0 weight 0.
package pen

import (
	"embed"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
)

// TemplateName is the embedded template's file name; a file of that name in
// --template-dir overrides it.
const TemplateName = "pen.cfg.tmpl"

//go:embed templates/pen.cfg.tmpl
var embedded embed.FS

// Params shape one pen config.
type Params struct {
	// Servers is the number of server slots (--pen-servers).
	Servers int
	// Template renders the file; nil means the embedded pen.cfg.tmpl.
	Template *template.Template
}

// ConfigName is the file name of a service's config: "<port>-<protocol>.cfg".
func ConfigName(k services.Key) string { return configName(k) }

// LoadTemplate parses TemplateName from dir. When dir is empty or holds no
// such file it returns nil, which Params.Template reads as the embedded
// template (rendered by a faster, equivalent writer).
func LoadTemplate(dir string) (*template.Template, error) { return loadTemplate(dir) }

// Render returns the config for one service, assigning its servers slots
// from slots (which it updates). More servers than slots: the servers that
// already hold a slot keep it, free slots go to new servers in address order,
// and slots.Dropped tells how many did not fit (the caller logs it).
func Render(p Params, svc services.Service, slots *Slots) ([]byte, error) {
	return render(p, svc, slots)
}
