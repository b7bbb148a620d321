package pen

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
)

// view is what the template sees: one entry per slot, free ones included.
type view struct {
	Name     string
	Port     int
	Protocol string
	Slots    []slotView
}

type slotView struct {
	N       int
	Address string // a bare IP (pen takes IPv6 unbracketed); 0.0.0.0 when free
	Port    int    // 0 when free
	Weight  int    // 0..1000, pen's weights are relative; 0 when free
	Max     int    // soft and hard connection limit; 0 is unlimited (and resets a previous limit)
	Free    bool
}

// MaxSlots bounds --pen-servers.
const MaxSlots = 10000

func configName(k services.Key) string {
	return strconv.Itoa(k.Port) + "-" + string(k.Protocol) + ".cfg"
}

func loadTemplate(dir string) (*template.Template, error) {
	text, err := templateText(dir)
	if err != nil {
		return nil, err
	}
	t, err := template.New(TemplateName).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("pen template: %w", err)
	}
	return t, nil
}

func templateText(dir string) (string, error) {
	if dir != "" {
		p := filepath.Join(dir, TemplateName)
		b, err := os.ReadFile(p)
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("pen template %s: %w", p, err)
		}
	}
	b, err := embedded.ReadFile("templates/" + TemplateName)
	return string(b), err
}

var defaultTemplate = template.Must(loadTemplate(""))

func render(p Params, svc services.Service, slots *Slots) ([]byte, error) {
	if p.Servers < 1 || p.Servers > MaxSlots {
		return nil, fmt.Errorf("pen: %d server slots: want 1..%d", p.Servers, MaxSlots)
	}
	if slots == nil || slots.size != p.Servers {
		return nil, errors.New("pen: slots missing or sized for another --pen-servers")
	}
	// Defence in depth: the services package's rules, applied again.
	f := services.File{Version: services.Version, Services: []services.Service{svc}}
	if _, rejected := f.Split(); len(rejected) > 0 {
		return nil, fmt.Errorf("pen: refusing to render an invalid service: %w", services.Problems(rejected[0].Problems))
	}
	assigned := slots.assign(svc)
	v := view{Name: svc.Name, Port: svc.Port, Protocol: string(svc.Protocol), Slots: make([]slotView, p.Servers)}
	for i, srv := range assigned {
		if srv == nil {
			v.Slots[i] = slotView{N: i, Address: "0.0.0.0", Free: true}
			continue
		}
		v.Slots[i] = slotView{N: i, Address: srv.IP.String(), Port: srv.Port, Weight: srv.Weight, Max: srv.MaxConn}
	}
	t := p.Template
	if t == nil {
		t = defaultTemplate
	}
	var buf bytes.Buffer
	buf.Grow(128 + 64*p.Servers)
	if err := t.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("pen template: %w", err)
	}
	if err := parse(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("pen: rendered config for %s is not valid: %w", svc.Key(), err)
	}
	return buf.Bytes(), nil
}
