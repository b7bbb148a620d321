package render_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
)

func svc(name string, port int, proto services.Protocol) services.Service {
	return services.Service{Name: name, Port: port, Protocol: proto, Mode: services.ModeTCP,
		Servers: []services.Server{{IP: netip.MustParseAddr("10.0.0.1"), Port: port + 1, Weight: 500}}}
}

func keys(svcs []services.Service) string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.Key().String())
	}
	return strings.Join(out, " ")
}

func TestPlan(t *testing.T) {
	in := []services.Service{
		svc("web", 10002, services.TCP), svc("dns", 53, services.UDP), svc("web", 10001, services.TCP),
		svc("api", 80, services.TCP), svc("api", 81, services.UDP),
	}
	o := render.Options{RunDir: "/run", MaxConnections: 1, PenServers: 1, PenClients: 1}

	p := render.NewPlan(o, in)
	if got := keys(p.Pen); got != "53/udp 80/tcp 81/udp 10001/tcp 10002/tcp" || len(p.HAProxy) != 0 || len(p.VHosts) != 0 {
		t.Errorf("default: pen %q haproxy %q vhosts %d", got, keys(p.HAProxy), len(p.VHosts))
	}

	o.HAProxy = true
	p = render.NewPlan(o, in)
	if keys(p.HAProxy) != "80/tcp 10001/tcp 10002/tcp" || keys(p.Pen) != "53/udp 81/udp" {
		t.Errorf("--haproxy: haproxy %q pen %q", keys(p.HAProxy), keys(p.Pen))
	}

	o.VHostDomain, o.VHostPort = "apps.example.com", 80
	p = render.NewPlan(o, in)
	var hosts []string
	for _, v := range p.VHosts {
		hosts = append(hosts, v.Host+"="+v.Service.String())
	}
	// Lowest port wins a shared name; UDP gets no vhost; port 80 is nginx's.
	if got := strings.Join(hosts, " "); got != "api.apps.example.com=80/tcp web.apps.example.com=10001/tcp" {
		t.Errorf("vhosts: %s", got)
	}
	if keys(p.HAProxy) != "10001/tcp 10002/tcp" {
		t.Errorf("the service on the vhost port must not be bound twice: haproxy %q", keys(p.HAProxy))
	}
	if len(p.Skipped) != 2 || !strings.Contains(p.Skipped[0].String(), "vhost port") ||
		!strings.Contains(p.Skipped[1].String(), "web.apps.example.com is served by port 10001") {
		t.Errorf("skipped: %v", p.Skipped)
	} else if p.Skipped[0].Code != explain.PortTaken || p.Skipped[1].Code != explain.VHostConflict {
		// The codes the agent explains them with (docs: port-taken for a
		// service on nginx's port).
		t.Errorf("skip codes %q, %q; want %q, %q", p.Skipped[0].Code, p.Skipped[1].Code, explain.PortTaken, explain.VHostConflict)
	}

	long := svc(strings.Repeat("a", 240), 9000, services.TCP)
	p = render.NewPlan(o, []services.Service{long})
	if len(p.VHosts) != 0 || len(p.Skipped) != 1 || len(p.HAProxy) != 1 || p.Skipped[0].Code != explain.InvalidName {
		t.Errorf("a name too long for DNS: vhosts %d skipped %v", len(p.VHosts), p.Skipped)
	}
}

func TestOptionsValidate(t *testing.T) {
	good := render.Options{RunDir: "/run/pm", MaxConnections: 1, PenServers: 1, PenClients: 1, VHostDomain: "a.example", VHostPort: 80}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*render.Options){
		"domain with newline": func(o *render.Options) { o.VHostDomain = "a\nb" },
		"domain with brace":   func(o *render.Options) { o.VHostDomain = "a}b" },
		"domain uppercase":    func(o *render.Options) { o.VHostDomain = "A.example" },
		"vhost port 0":        func(o *render.Options) { o.VHostPort = 0 },
		"relative run dir":    func(o *render.Options) { o.RunDir = "run" },
		"run dir with space":  func(o *render.Options) { o.RunDir = "/run/a b" },
		"bad status socket":   func(o *render.Options) { o.StatusSocket = "/a;b" },
		"no max connections":  func(o *render.Options) { o.MaxConnections = 0 },
		"no pen servers":      func(o *render.Options) { o.PenServers = 0 },
		"too many pen slots":  func(o *render.Options) { o.PenServers = 10001 },
		"no pen clients":      func(o *render.Options) { o.PenClients = 0 },
	} {
		o := good
		mutate(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// /shop/web and /web.shop both become web.shop: the service that held the
// virtual host keeps it, a newcomer (even on a lower port) never takes it;
// the holders survive a restart through the saved claims.
func TestVHostHolderKeepsItsName(t *testing.T) {
	o := render.Options{RunDir: "/run", MaxConnections: 1, PenServers: 1, PenClients: 1, HAProxy: true,
		VHostDomain: "apps.example.com", VHostPort: 80}
	holder := func(p render.Plan) string {
		for _, v := range p.VHosts {
			if v.Host == "web.shop.apps.example.com" {
				return v.Service.String()
			}
		}
		return ""
	}
	real, newcomer := svc("web.shop", 10002, services.TCP), svc("web.shop", 10001, services.TCP)
	held := &render.VHostClaims{}
	if got := holder(render.NewPlanHeld(o, []services.Service{real}, held)); got != "10002/tcp" {
		t.Fatalf("alone: %q", got)
	}
	p := render.NewPlanHeld(o, []services.Service{newcomer, real}, held)
	if got := holder(p); got != "10002/tcp" {
		t.Errorf("a newcomer on a lower port took the vhost: %q", got)
	}
	if len(p.Skipped) != 1 || p.Skipped[0].Code != explain.VHostConflict || p.Skipped[0].Service.Port != 10001 || p.Skipped[0].Holder.Port != 10002 {
		t.Errorf("skipped: %+v", p.Skipped)
	}
	// Both still listen on their own ports.
	if keys(p.HAProxy) != "10001/tcp 10002/tcp" {
		t.Errorf("haproxy: %s", keys(p.HAProxy))
	}
	// Saved and loaded (a restart): still the holder's.
	path := filepath.Join(t.TempDir(), "nginx-vhosts.json")
	if err := held.Save(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("claims file mode %v", st.Mode())
	}
	loaded, err := render.LoadVHostClaims(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := holder(render.NewPlanHeld(o, []services.Service{newcomer, real}, loaded)); got != "10002/tcp" {
		t.Errorf("after a restart the newcomer took the vhost: %q", got)
	}
	// Without memory (a dry run, a first start): the lowest port.
	if got := holder(render.NewPlan(o, []services.Service{newcomer, real})); got != "10001/tcp" {
		t.Errorf("no holder: %q, want the lowest port", got)
	}
	// The holder gone: the other takes the name, and keeps it when the old
	// one comes back.
	render.NewPlanHeld(o, []services.Service{newcomer}, loaded)
	if got := holder(render.NewPlanHeld(o, []services.Service{newcomer, real}, loaded)); got != "10001/tcp" {
		t.Errorf("after the holder left and came back: %q", got)
	}
	// A claims file that is not ours is refused, and nothing is held.
	os.WriteFile(path, []byte(`{"version":1,"hosts":{"a b":"x/tcp"}}`), 0o640)
	if c, err := render.LoadVHostClaims(path); err == nil {
		t.Errorf("bad claims accepted: %+v", c)
	}
}

// The holders are written when they change, not on every apply (at 10,000
// virtual hosts a save is a 10 ms JSON encode and file compare).
func TestVHostClaimsSavedOnlyWhenChanged(t *testing.T) {
	o := render.Options{RunDir: "/run", MaxConnections: 1, PenServers: 1, PenClients: 1, HAProxy: true,
		VHostDomain: "apps.example.com", VHostPort: 80}
	a, b := svc("a", 10001, services.TCP), svc("b", 10002, services.TCP)
	path := filepath.Join(t.TempDir(), "nginx-vhosts.json")
	held := &render.VHostClaims{}
	render.NewPlanHeld(o, []services.Service{a}, held)
	if err := held.Save(path); err != nil {
		t.Fatal(err)
	}
	// The same holders: nothing is written (the file removed behind the
	// agent's back shows it).
	os.Remove(path)
	render.NewPlanHeld(o, []services.Service{a}, held)
	if err := held.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("unchanged holders written again (%v)", err)
	}
	// A new holder: written.
	render.NewPlanHeld(o, []services.Service{a, b}, held)
	if err := held.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := render.LoadVHostClaims(path)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := loaded.Holder("b.apps.example.com"); !ok || k.Port != 10002 {
		t.Errorf("the new holder was not saved: %v %v", k, ok)
	}
	// Loaded holders are what the file says: nothing to write until they change.
	os.Remove(path)
	render.NewPlanHeld(o, []services.Service{a, b}, loaded)
	if err := loaded.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("holders just loaded written again (%v)", err)
	}
}
