package render

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/services"
)

func loadTemplates(dir string) (*Templates, error) {
	var t Templates
	var err error
	if t.HAProxy, err = haproxy.LoadTemplate(dir); err != nil {
		return nil, err
	}
	if t.Nginx, err = nginx.LoadTemplate(dir); err != nil {
		return nil, err
	}
	if t.Pen, err = pen.LoadTemplate(dir); err != nil {
		return nil, err
	}
	return &t, nil
}

func renderFiles(o Options, t *Templates, p Plan, slots *pen.Slots) (*Files, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if t == nil {
		t = &Templates{}
	}
	if slots == nil {
		return nil, fmt.Errorf("render: no pen slots")
	}
	out := &Files{Pen: make(map[services.Key][]byte, len(p.Pen)), PenDropped: map[services.Key]int{}, opts: o, tmpl: t}
	// The three proxies' configs share nothing (only pen touches slots), so
	// HAProxy and nginx render on goroutines of their own while pen renders
	// here: at 10,000 services that is the difference between the sum of
	// the three and the longest. Errors are reported in a fixed order.
	var haErr, ngErr error
	var wg sync.WaitGroup
	if o.HAProxy {
		wg.Go(func() {
			start := time.Now()
			out.HAProxy, haErr = haproxy.Render(HAProxyParams(o, t), p.HAProxy)
			out.HAProxyServices = p.HAProxy
			renderSeconds.WithLabelValues("haproxy").Observe(time.Since(start).Seconds())
		})
	}
	if o.VHostDomain != "" {
		wg.Go(func() {
			start := time.Now()
			out.Nginx, ngErr = nginx.Render(nginxParams(o, t), p.VHosts)
			out.NginxVHosts = p.VHosts
			renderSeconds.WithLabelValues("nginx").Observe(time.Since(start).Seconds())
		})
	}
	penErr := renderPen(o, t, p, slots, out)
	wg.Wait()
	if err := cmp.Or(haErr, ngErr, penErr); err != nil {
		return nil, err
	}
	dropped := 0
	for _, n := range out.PenDropped {
		dropped += n
	}
	penDropped.Set(float64(dropped))
	return out, nil
}

func nginxParams(o Options, t *Templates) nginx.Params {
	p := nginx.Params{
		RunDir: o.RunDir, Port: o.VHostPort, ProxyProtocol: o.ProxyProtocol,
		MaxConnections: o.MaxConnections, FDLimit: o.FDLimit, User: o.NginxUser, Group: o.NginxGroup,
	}
	if t != nil {
		p.Template = t.Nginx
	}
	return p
}

// renderPen renders one pen config per pen service into out and keeps the
// slots of exactly those services. A service whose config cannot be
// rendered is refused on its own (out.PenRefused): each pen service is its
// own process and file, so nothing else needs to wait for it.
func renderPen(o Options, t *Templates, p Plan, slots *pen.Slots, out *Files) error {
	start := time.Now()
	keys := make([]services.Key, 0, len(p.Pen))
	pp := pen.Params{Servers: o.PenServers, Template: t.Pen}
	out.pen = p.Pen
	for _, s := range p.Pen {
		cfg, err := pen.Render(pp, s, slots)
		if err != nil {
			out.PenRefused = append(out.PenRefused, Refusal{Proxy: "pen", Service: s.Key(), Name: s.Name, Message: err.Error()})
			keys = append(keys, s.Key()) // its slots stay for its next config
			continue
		}
		out.Pen[s.Key()] = cfg
		keys = append(keys, s.Key())
		if n := slots.Dropped(s.Key()); n > 0 {
			out.PenDropped[s.Key()] = n
		}
	}
	slots.Retain(keys)
	renderSeconds.WithLabelValues("pen").Observe(time.Since(start).Seconds())
	return nil
}
