package render

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Refusal is one service a proxy refused: its check's message pointed at
// the service's part of the config (HAProxy, nginx), or its own config did
// not render or parse (pen).
type Refusal struct {
	Proxy   string // "haproxy", "nginx" or "pen"
	Service services.Key
	Name    string
	Message string // the proxy's own words about it
}

func (r Refusal) String() string {
	return fmt.Sprintf("%s refused service %q (%s): %s", r.Proxy, r.Name, r.Service, r.Message)
}

// Blame names the services that proxy's check refused in cfg, the
// candidate it checked at path (cfg is f's file for that proxy, or one
// rendered by Without), from the check's message msg. all is false when
// some error points at no service: then leaving services out cannot make
// the config pass, and the caller keeps the last good one.
func (f *Files) Blame(proxy string, cfg []byte, path, msg string) (refused []Refusal, all bool) {
	var blamed map[services.Key]string
	names := map[services.Key]string{}
	switch proxy {
	case "haproxy":
		blamed, all = haproxy.Blame(cfg, path, msg, f.HAProxyServices)
		for i := range f.HAProxyServices {
			names[f.HAProxyServices[i].Key()] = f.HAProxyServices[i].Name
		}
	case "nginx":
		blamed, all = nginx.Blame(cfg, path, msg, f.NginxVHosts)
		for _, v := range f.NginxVHosts {
			names[v.Service] = strings.TrimSuffix(v.Host, "."+f.opts.VHostDomain)
		}
	default:
		return nil, false
	}
	for k, m := range blamed {
		refused = append(refused, Refusal{Proxy: proxy, Service: k, Name: names[k], Message: m})
	}
	slices.SortFunc(refused, func(a, b Refusal) int { return a.Service.Compare(b.Service) })
	return refused, all
}

// Without returns a copy of f in which proxy's config is rendered again
// with the services of drop left out; the other proxies' files are shared,
// not copied. It is the agent's answer to a check that blamed them.
func (f *Files) Without(proxy string, drop map[services.Key]bool) (*Files, error) {
	out := *f
	var err error
	switch proxy {
	case "haproxy":
		out.HAProxyServices = slices.DeleteFunc(slices.Clone(f.HAProxyServices), func(s services.Service) bool { return drop[s.Key()] })
		out.HAProxy, err = haproxy.Render(HAProxyParams(f.opts, f.tmpl), out.HAProxyServices)
	case "nginx":
		out.NginxVHosts = slices.DeleteFunc(slices.Clone(f.NginxVHosts), func(v nginx.VHost) bool { return drop[v.Service] })
		out.Nginx, err = nginx.Render(nginxParams(f.opts, f.tmpl), out.NginxVHosts)
	default:
		return nil, fmt.Errorf("render: %s has no shared config to leave services out of", proxy)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}
