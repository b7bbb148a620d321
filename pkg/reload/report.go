package reload

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// report is what the agent did last, for the status page and
// /status/explain: written on the agent's goroutine, read by the endpoint.
type report struct {
	book *explain.Book

	mu        sync.Mutex
	proxies   []*statuspage.Proxy // in the agent's order
	apply     *statuspage.Apply
	fileErr   string             // the newest file could not be used
	svcs      []services.Service // valid services of the last file applied
	plan      render.Plan        // how they were split between the proxies
	haproxyUp bool
}

func newReport(book *explain.Book, proxies []proxy) *report {
	r := &report{book: book}
	for _, p := range proxies {
		r.proxies = append(r.proxies, &statuspage.Proxy{Name: p.name(), InSync: true})
	}
	return r
}

// Book keys: every reload reason is about one port, one proxy or the file.
const (
	keyFile     = "reload file"
	keyUnusable = "reload file unusable"
)

func portKey(k services.Key) string { return "reload port " + k.String() }
func proxyKey(name string) string   { return "reload proxy " + name }

// fileUnusable records a services file that could not be read or parsed:
// the running configs stay, and so do the reasons of the last apply.
func (r *report) fileUnusable(path string, err error) {
	if r == nil {
		return
	}
	var names []string
	for _, p := range r.proxies {
		names = append(names, p.Name)
	}
	r.book.Set(keyUnusable, []explain.Entry{{Source: "reload", Proxy: strings.Join(names, ","), Reason: explain.NotInFile,
		Detail: fmt.Sprintf("%s is unusable, so no change in it is applied; the running configs stay: %v", path, err)}})
	r.mu.Lock()
	r.fileErr = err.Error()
	r.mu.Unlock()
}

// rejectedEntries are the services the file held that the contract
// refused: left out, the rest of the file applied. Proxy is the one that
// would have listened for it.
func rejectedEntries(o render.Options, rejected []services.Rejected) []explain.Entry {
	var out []explain.Entry
	for _, rj := range rejected {
		var why []string
		for _, p := range rj.Problems {
			why = append(why, p.Error())
		}
		e := explain.Entry{Source: "reload", Service: rj.Service.Name, Port: rj.Service.Port, Reason: explain.NotInFile,
			Proxy: listenerProxy(o, rj.Service), Detail: "left out of the services file: " + strings.Join(why, "; ")}
		if e.Port != 0 {
			e.Protocol = string(rj.Service.Protocol)
		}
		out = append(out, e)
	}
	return out
}

// outcome is one apply, as the agent saw it.
type outcome struct {
	opts     render.Options
	svcs     []services.Service // valid services of the file
	rejected []explain.Entry    // services the file held that were invalid
	busy     []portBusy
	plan     render.Plan
	files    *render.Files // nil when rendering failed
	results  []error       // per proxy, in the agent's order
	actions  []string      // per proxy: what apply did
	proxies  []proxy
	hash     string
	took     time.Duration
	err      error
}

// applied records one apply: the page's state and the book's reasons,
// replacing those of the previous apply.
func (r *report) applied(o outcome) {
	if r == nil {
		return
	}
	all := map[string][]explain.Entry{}
	add := func(key string, e explain.Entry) { all[key] = append(all[key], e) }
	for _, e := range o.rejected {
		if e.Port != 0 {
			add(portKey(services.Key{Port: e.Port, Protocol: services.Protocol(e.Protocol)}), e)
		} else {
			add(keyFile, e)
		}
	}
	for _, b := range o.busy {
		k := b.Service.Key()
		add(portKey(k), explain.Entry{Source: "reload", Service: b.Service.Name, Port: k.Port, Protocol: string(k.Protocol),
			Proxy: listenerProxy(o.opts, b.Service), Reason: explain.PortInUse,
			Detail: b.Err.Error() + "; tried again every few seconds"})
	}
	for _, sk := range o.plan.Skipped {
		e := explain.Entry{Source: "reload", Service: sk.Name, Port: sk.Service.Port, Protocol: string(sk.Service.Protocol),
			Reason: sk.Code, Detail: sk.Reason, Proxy: "nginx"}
		if sk.Code == explain.PortTaken {
			// Not listened on: the port is nginx's virtual host port, so
			// the proxy that would have listened goes without it.
			e.Proxy = listenerProxy(o.opts, services.Service{Protocol: sk.Service.Protocol})
		}
		add(portKey(sk.Service), e)
	}
	if o.files != nil {
		for k, n := range o.files.PenDropped {
			add(portKey(k), explain.Entry{Source: "reload", Service: serviceName(o.svcs, k), Port: k.Port, Protocol: string(k.Protocol),
				Proxy: "pen", Reason: explain.PenSlotsFull,
				Detail: fmt.Sprintf("%s left out: more servers than --pen-servers=%d slots", plural(n, "server"), o.opts.PenServers)})
		}
	}
	// Services a proxy refused and the others serve (isolate.go).
	for _, p := range o.proxies {
		for _, rf := range p.refusals() {
			add(portKey(rf.Service), explain.Entry{Source: "reload", Service: rf.Name, Port: rf.Service.Port,
				Protocol: string(rf.Service.Protocol), Proxy: rf.Proxy, Reason: explain.ProxyRejected, Detail: clip(rf.Message)})
		}
	}
	for i, err := range o.results {
		if err == nil {
			continue
		}
		name := o.proxies[i].name()
		// pen reports one error per service (serviceErr): each is
		// explained under its port; any other error is the proxy's.
		parts := serviceErrs(err)
		if len(parts) == 0 {
			parts = []error{err}
		}
		for _, one := range parts {
			e := explain.Entry{Source: "reload", Proxy: name, Reason: explain.ProxyFailed,
				Detail: clip(one.Error()) + "; the running config stays"}
			if errors.Is(one, errRejected) {
				e.Reason = explain.ProxyRejected
			}
			key := proxyKey(name)
			if se, ok := one.(*serviceErr); ok {
				e.Port, e.Protocol, e.Service = se.key.Port, string(se.key.Protocol), serviceName(o.svcs, se.key)
				key = portKey(se.key)
			}
			add(key, e)
		}
	}
	r.book.Replace(all)

	plan := map[string]int{"haproxy": len(o.plan.HAProxy), "nginx": len(o.plan.VHosts), "pen": len(o.plan.Pen)}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fileErr = ""
	r.svcs, r.plan = o.svcs, o.plan
	a := &statuspage.Apply{At: now, SHA256: o.hash, Services: len(o.svcs), Took: o.took.Round(time.Millisecond)}
	if o.err != nil {
		a.Err = clip(o.err.Error())
	}
	r.apply = a
	for i, p := range r.proxies {
		if i >= len(o.actions) {
			break
		}
		p.Services = plan[p.Name]
		if o.actions[i] != "unchanged" || o.results[i] != nil || p.Last == "" {
			p.Last, p.LastAt = o.actions[i], now
		}
		p.InSync, p.Outcome = o.results[i] == nil, "ok"
		if o.results[i] != nil {
			p.Outcome = clip(o.results[i].Error())
		}
		if p.Name == "haproxy" {
			if s, ok := o.proxies[i].(*single); ok {
				r.haproxyUp = s.run != nil
			}
		}
	}
}

// listenerProxy is the proxy that listens on a service's port.
func listenerProxy(o render.Options, s services.Service) string {
	if o.HAProxy && s.Protocol == services.TCP {
		return "haproxy"
	}
	return "pen"
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func serviceName(svcs []services.Service, k services.Key) string {
	for i := range svcs {
		if svcs[i].Key() == k {
			return svcs[i].Name
		}
	}
	return ""
}

// serviceErrs finds the per-service errors in err (pen joins them).
func serviceErrs(err error) []error {
	if se, ok := err.(*serviceErr); ok {
		return []error{se}
	}
	var out []error
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, serviceErrs(e)...)
		}
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			out = serviceErrs(e)
		}
	}
	return out
}

func clip(s string) string {
	const n = 600
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// haproxyRunning reports whether HAProxy runs now (/ redirects to its
// stats page then).
func (r *report) haproxyRunning() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.haproxyUp
}

// page builds the status page of a running proxymatic-reload.
type page struct {
	report  *report
	status  *status.Server
	ring    *logging.Ring
	path    string // the services file
	syncURL string
	haproxy bool
	started time.Time
}

func (p *page) view(req *http.Request, f explain.Filter) statuspage.View {
	v := statuspage.View{Program: "proxymatic-reload", State: p.status.State().String(), Started: p.started,
		ServicesTitle: "Services and the proxies serving them"}
	if link := statuspage.OtherPage(p.syncURL, "/", req); link != "" {
		v.Links = append(v.Links, statuspage.Link{Text: "proxymatic-sync", URL: link})
	}
	if p.haproxy {
		v.Links = append(v.Links, statuspage.Link{Text: "HAProxy stats", URL: "/haproxy"})
	}
	r := p.report
	r.mu.Lock()
	for _, px := range r.proxies {
		v.Proxies = append(v.Proxies, *px)
	}
	if r.apply != nil {
		a := *r.apply
		v.Apply = &a
	}
	file := &statuspage.File{Path: p.path, Err: r.fileErr}
	servedBy := map[services.Key][]string{}
	for _, s := range r.plan.HAProxy {
		servedBy[s.Key()] = append(servedBy[s.Key()], "haproxy")
	}
	for _, s := range r.plan.Pen {
		servedBy[s.Key()] = append(servedBy[s.Key()], "pen")
	}
	for _, vh := range r.plan.VHosts {
		servedBy[vh.Service] = append(servedBy[vh.Service], "nginx "+vh.Host)
	}
	for _, s := range r.svcs {
		file.Services++
		file.Servers += len(s.Servers)
		if f.Port != 0 && s.Port != f.Port {
			continue
		}
		row := statuspage.ServiceRow(s)
		row.Proxies = servedBy[s.Key()]
		v.Services = append(v.Services, row)
	}
	r.mu.Unlock()
	if st, err := os.Stat(p.path); err == nil {
		file.Modified = st.ModTime()
	}
	v.File = file
	v.Explain, v.ExplainOmitted = r.book.Entries(f)
	v.Errors, v.ErrorsTotal = p.ring.Records()
	return v
}

// rootRedirect is / on reload's endpoint: HAProxy's stats page while
// HAProxy runs, as the original image did, and the status page otherwise.
func rootRedirect(r *report) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target := "/proxymatic"
		if r.haproxyRunning() {
			target = "/haproxy"
		}
		http.Redirect(w, req, target, http.StatusFound)
	})
}
