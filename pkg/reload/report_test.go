package reload

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// pageWhileApplying renders the agent's page in a loop until the test
// ends: with -race, the page reads what the agent writes.
func pageWhileApplying(t *testing.T, h *harness) *page {
	p := &page{report: h.a.report, status: h.st, path: h.cfg.Services, haproxy: true}
	handler := statuspage.Handler(p.view)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, httptest.NewRequest("GET", "/proxymatic", nil))
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
	return p
}

func haproxyRow(t *testing.T, p *page) statuspage.Proxy {
	t.Helper()
	v := p.view(httptest.NewRequest("GET", "/proxymatic", nil), explain.Filter{})
	for _, px := range v.Proxies {
		if px.Name == "haproxy" {
			return px
		}
	}
	t.Fatal("no haproxy row")
	return statuspage.Proxy{}
}

// The report says what each proxy did last: a start, then a server added
// through the runtime API.
func TestReportSaysRuntimeUpdateOrReload(t *testing.T) {
	h := startAgent(t, withHAProxy, "", nil)
	p := pageWhileApplying(t, h)
	bs := newBackends(t, 2)
	h.write(service(h.port, bs[0]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if px := haproxyRow(t, p); px.Last != "start" || !px.InSync || px.Outcome != "ok" || px.Services != 1 || !h.a.report.haproxyRunning() {
		t.Errorf("after the first file: %+v", px)
	}
	h.write(service(h.port, bs[0], bs[1]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if px := haproxyRow(t, p); px.Last != "runtime update" || !px.InSync {
		t.Errorf("a server added: %+v, want a runtime update", px)
	}
}

// A service the proxy refuses is explained, and a good file clears it.
func TestReportExplainsARejectedConfig(t *testing.T) {
	// A template that HAProxy refuses for a service named "rejected", as in
	// TestCrashRejectAndShutdown.
	tmplDir := t.TempDir()
	tmpl, err := os.ReadFile("../haproxy/templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	tmpl = append(tmpl, []byte("{{range .Services}}{{if eq (printf \"%.8s\" .Name) \"rejected\"}}\n    no-such-keyword here\n{{end}}{{end}}\n")...)
	if err := os.WriteFile(filepath.Join(tmplDir, "haproxy.cfg.tmpl"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startAgent(t, withHAProxy, tmplDir, nil)
	p := pageWhileApplying(t, h)
	bs := newBackends(t, 2)
	h.write(service(h.port, bs[0]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}

	// A service HAProxy refuses beside a good one: the refused one is left
	// out (isolate.go) and explained under its port, the rest applied.
	bad := service(freePort(t), bs[1])
	bad.Name = "rejected"
	h.write(service(h.port, bs[0]), bad)
	if err := h.waitApplied(); err != nil {
		t.Fatalf("the good service was held back by the refused one: %v", err)
	}
	entries, _ := h.a.report.book.Entries(explain.Filter{})
	if len(entries) != 1 || entries[0].Source != "reload" || entries[0].Proxy != "haproxy" || entries[0].Reason != explain.ProxyRejected ||
		entries[0].Service != "rejected" || entries[0].Port != bad.Port || !strings.Contains(entries[0].Detail, "no-such-keyword") {
		t.Errorf("rejection explained as %+v", entries)
	}
	if px := haproxyRow(t, p); !px.InSync || px.Outcome != "ok" {
		t.Errorf("after the isolated rejection: %+v", px)
	}
	h.write(service(h.port, bs[0]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := h.a.report.book.Entries(explain.Filter{}); len(entries) != 0 {
		t.Errorf("a good file left reasons: %+v", entries)
	}
	if px := haproxyRow(t, p); !px.InSync || px.Outcome != "ok" {
		t.Errorf("after the good file: %+v", px)
	}
	if a := h.a.report.apply; len(a.SHA256) != 64 || a.Err != "" || a.Services != 1 {
		t.Errorf("last apply %+v", a)
	}
}

// Each proxy error is one reason; pen's are per service, under their port.
func TestReportExplainsProxyErrors(t *testing.T) {
	book := explain.NewBook(0, 0)
	hp := &single{proxyName: "haproxy"}
	ps := newPenSet("pen", proxyEnv{}, 1, 1, "")
	r := newReport(book, []proxy{hp, ps})
	k1 := services.Key{Port: 10001, Protocol: services.TCP}
	k2 := services.Key{Port: 53, Protocol: services.UDP}
	r.applied(outcome{
		svcs:    []services.Service{{Name: "web", Port: 10001, Protocol: services.TCP}, {Name: "dns", Port: 53, Protocol: services.UDP}},
		proxies: []proxy{hp, ps},
		actions: []string{"reload", "start 1"},
		results: []error{
			fmt.Errorf("haproxy: %w: %w", errRejected, errors.New("unknown keyword")),
			errors.Join(
				&serviceErr{key: k1, err: fmt.Errorf("pen %s: %w: %w", k1, errRejected, errors.New("bad line"))},
				&serviceErr{key: k2, err: fmt.Errorf("pen %s: start: %w: %w", k2, errProxy, errors.New("exited"))},
			),
		},
	})
	got, _ := book.Entries(explain.Filter{})
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(got), got)
	}
	want := map[string]struct {
		proxy, service string
		port           int
		reason         explain.Reason
	}{
		"unknown keyword": {"haproxy", "", 0, explain.ProxyRejected},
		"bad line":        {"pen", "web", 10001, explain.ProxyRejected},
		"exited":          {"pen", "dns", 53, explain.ProxyFailed},
	}
	for _, e := range got {
		for needle, w := range want {
			if strings.Contains(e.Detail, needle) && (e.Proxy != w.proxy || e.Service != w.service || e.Port != w.port || e.Reason != w.reason) {
				t.Errorf("%s: %+v, want %+v", needle, e, w)
			}
		}
	}
	v := (&page{report: r, status: status.New(nil)}).view(httptest.NewRequest("GET", "/proxymatic", nil), explain.Filter{Port: 53})
	if len(v.Explain) != 1 || v.Explain[0].Service != "dns" || v.Proxies[0].InSync || v.Proxies[1].Last != "start 1" {
		t.Errorf("page view for port 53: %+v / %+v", v.Explain, v.Proxies)
	}
}

// The plan's skips are explained per port; an unusable file adds its own
// reason, keeps the last apply's, and the next apply clears it.
func TestReportExplainsSkipsAndAnUnusableFile(t *testing.T) {
	opts := render.Options{HAProxy: true, VHostDomain: "apps.example.com", VHostPort: 8080, RunDir: "/run/p",
		MaxConnections: 10, PenServers: 4, PenClients: 10}
	svcs := []services.Service{
		{Name: "web", Port: 10001, Protocol: services.TCP},
		{Name: "web", Port: 10002, Protocol: services.TCP}, // same virtual host: the lower port keeps it
		{Name: "edge", Port: 8080, Protocol: services.TCP}, // nginx's own port
	}
	book := explain.NewBook(0, 0)
	r := newReport(book, nil)
	r.applied(outcome{opts: opts, svcs: svcs, plan: render.NewPlan(opts, svcs)})
	got, _ := book.Entries(explain.Filter{})
	byPort := map[int]explain.Entry{}
	for _, e := range got {
		byPort[e.Port] = e
	}
	if e := byPort[10002]; e.Reason != explain.VHostConflict || e.Proxy != "nginx" || !strings.Contains(e.Detail, "served by port 10001") {
		t.Errorf("vhost conflict: %+v", e)
	}
	if e := byPort[8080]; e.Reason != explain.PortTaken || e.Proxy != "haproxy" || e.Service != "edge" {
		t.Errorf("service on the vhost port: %+v", e)
	}
	if len(got) != 2 {
		t.Errorf("%d entries, want 2: %+v", len(got), got)
	}

	r.fileUnusable("/run/p/services.yaml", errors.New("yaml: line 3: did not find expected key"))
	got, _ = book.Entries(explain.Filter{})
	if len(got) != 3 || !slices.ContainsFunc(got, func(e explain.Entry) bool {
		return e.Reason == explain.NotInFile && strings.Contains(e.Detail, "did not find expected key")
	}) {
		t.Errorf("after an unusable file: %+v", got)
	}
	r.applied(outcome{opts: opts, svcs: svcs[:1], plan: render.NewPlan(opts, svcs[:1])})
	if got, _ := book.Entries(explain.Filter{}); len(got) != 0 {
		t.Errorf("a clean apply left %+v", got)
	}
}
