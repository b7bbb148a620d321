package render

import (
	"fmt"
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
	out := &Files{Pen: make(map[services.Key][]byte, len(p.Pen)), PenDropped: map[services.Key]int{}}
	var err error
	if o.HAProxy {
		start := time.Now()
		out.HAProxy, err = haproxy.Render(HAProxyParams(o, t), p.HAProxy)
		if err != nil {
			return nil, err
		}
		out.HAProxyServices = p.HAProxy
		renderSeconds.WithLabelValues("haproxy").Observe(time.Since(start).Seconds())
	}
	if o.VHostDomain != "" {
		start := time.Now()
		out.Nginx, err = nginx.Render(nginx.Params{
			RunDir: o.RunDir, Port: o.VHostPort, ProxyProtocol: o.ProxyProtocol,
			MaxConnections: o.MaxConnections, User: o.NginxUser, Group: o.NginxGroup, Template: t.Nginx,
		}, p.VHosts)
		if err != nil {
			return nil, err
		}
		renderSeconds.WithLabelValues("nginx").Observe(time.Since(start).Seconds())
	}
	start := time.Now()
	keys := make([]services.Key, 0, len(p.Pen))
	pp := pen.Params{Servers: o.PenServers, Template: t.Pen}
	for _, s := range p.Pen {
		cfg, err := pen.Render(pp, s, slots)
		if err != nil {
			return nil, err
		}
		out.Pen[s.Key()] = cfg
		keys = append(keys, s.Key())
		if n := slots.Dropped(s.Key()); n > 0 {
			out.PenDropped[s.Key()] = n
		}
	}
	slots.Retain(keys)
	renderSeconds.WithLabelValues("pen").Observe(time.Since(start).Seconds())
	dropped := 0
	for _, n := range out.PenDropped {
		dropped += n
	}
	penDropped.Set(float64(dropped))
	return out, nil
}
