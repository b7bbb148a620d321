// Package templates loads the proxies' config templates. Each proxy package
// embeds its default template with go:embed; --template-dir overrides any of
// them by file name (haproxy.cfg.tmpl, nginx.conf.tmpl, pen.cfg.tmpl), and a
// directory that lacks a file keeps the embedded one for that proxy.
//
// Templates run with missingkey=error, so a typo in an override fails the
// render (and the dry run) instead of writing "<no value>" into a config.
package templates

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"
)

// Load parses the file name from dir. It returns nil and no error when dir
// is empty or holds no such file: nil means "use the embedded default".
func Load(dir, name string) (*template.Template, error) {
	if dir == "" {
		return nil, nil
	}
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", p, err)
	}
	t, err := parse(name, string(b))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", p, err)
	}
	return t, nil
}

// MustEmbedded parses the template name embedded at templates/<name> in
// fsys. A failure is a defect of the build, so it panics at start-up.
func MustEmbedded(fsys fs.FS, name string) *template.Template {
	b, err := fs.ReadFile(fsys, "templates/"+name)
	if err != nil {
		panic(err)
	}
	return template.Must(parse(name, string(b)))
}

func parse(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}
