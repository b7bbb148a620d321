package pen

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"text/template"

	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/templates"
)

// view is what the template sees: one entry per slot, free ones included.
type view struct {
	Name     string
	Port     int
	Protocol string
	// HTTP turns on pen's http option (X-Forwarded-For) for a mode http
	// service; off is written too ("no http"), as a reload keeps what the
	// file does not say.
	HTTP  bool
	Slots []slotView
}

type slotView struct {
	N    int
	srv  *services.Server // nil when free
	Free bool
}

// Address is a bare IP (pen takes IPv6 unbracketed); 0.0.0.0 when free.
func (s slotView) Address() string {
	if s.srv == nil {
		return "0.0.0.0"
	}
	return s.srv.IP.String()
}

// Port is 0 when free.
func (s slotView) Port() int {
	if s.srv == nil {
		return 0
	}
	return s.srv.Port
}

// Weight is the services.yaml weight, 0..1000 (pen's weights are relative);
// 0 when free.
func (s slotView) Weight() int {
	if s.srv == nil {
		return 0
	}
	return s.srv.Weight
}

// Max is the soft and hard connection limit; 0 is unlimited, and is written
// for free slots too so a freed slot's old limit does not stick.
func (s slotView) Max() int {
	if s.srv == nil {
		return 0
	}
	return s.srv.MaxConn
}

// MaxSlots bounds --pen-servers.
const MaxSlots = 10000

func configName(k services.Key) string {
	return strconv.Itoa(k.Port) + "-" + string(k.Protocol) + ".cfg"
}

func loadTemplate(dir string) (*template.Template, error) { return templates.Load(dir, TemplateName) }

// defaultTemplate is the embedded template; the tests hold writeDefault to it.
var defaultTemplate = templates.MustEmbedded(embedded, TemplateName)

func render(p Params, svc services.Service, slots *Slots) ([]byte, error) {
	if p.Servers < 1 || p.Servers > MaxSlots {
		return nil, fmt.Errorf("pen: %d server slots: want 1..%d", p.Servers, MaxSlots)
	}
	if slots == nil || slots.size != p.Servers {
		return nil, errors.New("pen: slots missing or sized for another --pen-servers")
	}
	// Defence in depth: the services package's rules, applied again.
	if err := svc.Validate(); err != nil {
		return nil, fmt.Errorf("pen: refusing to render an invalid service: %w", err)
	}
	assigned := slots.assign(svc)
	if p.Template == nil {
		// The embedded format, which the tests parse; not parsed again here
		// (it would double the cost of rendering 320,000 lines).
		return writeSlots(make([]byte, 0, 160+56*p.Servers), svc.Name, svc.Port, string(svc.Protocol), svc.Mode == services.ModeHTTP,
			func(i int) *services.Server { return assigned[i] }, len(assigned), slots.free), nil
	}
	v := view{Name: svc.Name, Port: svc.Port, Protocol: string(svc.Protocol), HTTP: svc.Mode == services.ModeHTTP, Slots: make([]slotView, p.Servers)}
	for i, srv := range assigned {
		v.Slots[i] = slotView{N: i, srv: srv, Free: srv == nil}
	}
	var buf bytes.Buffer
	buf.Grow(160 + 56*p.Servers)
	if err := p.Template.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("pen template: %w", err)
	}
	// pen ignores what it does not understand: an overriding template's
	// output is parsed before anyone can use it.
	if err := parse(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("pen: rendered config for %s is not valid: %w", svc.Key(), err)
	}
	return buf.Bytes(), nil
}
