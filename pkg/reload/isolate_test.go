package reload

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// insertAfter puts add after the first (or, last, the last) occurrence of
// marker in the template file src and writes it into dir.
func patchTemplate(t *testing.T, src, dir, name string, patches ...[3]string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, p := range patches {
		marker, add, where := p[0], p[1], p[2]
		i := strings.Index(s, marker)
		if where == "last" {
			i = strings.LastIndex(s, marker)
		}
		if i < 0 {
			t.Fatalf("%s has no %q", src, marker)
		}
		i += len(marker)
		s = s[:i] + add + s[i:]
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// getHost sends one request with Host host to port.
func getHost(port int, host string) (int, string) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// One service HAProxy refuses and one nginx refuses (an overriding
// template breaks them; every value passes services.Validate) do not hold
// back the change of another service: the valid change is served by both
// real proxies, the refused services are left out of the proxy that
// refused them only, logged, counted and recorded in the explain book.
// HAProxy's "late" error is one it reports only once the parse errors are
// gone, so it takes a second round.
func TestRefusedServiceLeftOut(t *testing.T) {
	tmplDir := t.TempDir()
	patchTemplate(t, "../haproxy/templates/haproxy.cfg.tmpl", tmplDir, "haproxy.cfg.tmpl", [3]string{"listen {{.Name}}\n",
		`{{if eq (printf "%.4s" .Name) "bad-"}}    bogus-keyword on` + "\n{{end}}" +
			`{{if eq (printf "%.5s" .Name) "late-"}}    default_backend nowhere` + "\n{{end}}", ""})
	patchTemplate(t, "../nginx/templates/nginx.conf.tmpl", tmplDir, "nginx.conf.tmpl", [3]string{"        location / {\n",
		`{{if eq (printf "%.6s" .Host) "nginx."}}            bogus_directive on;` + "\n{{end}}", "last"})
	bs := newBackends(t, 2)
	h := startAgentWith(t, withNginx, tmplDir, "", 0, nil)
	book := h.a.report.book
	web := service(h.port, bs[0])
	h.write(web)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	c := h.client(withHAProxy)
	c.eventually(t, bs[0].name, 10*time.Second)
	vhost := h.client(withNginx)
	vhost.eventually(t, bs[0].name, 10*time.Second)
	before := h.metrics()

	// web changes; bad (HAProxy refuses it), late (HAProxy refuses it
	// after parsing) and nginx (nginx refuses its virtual host) appear.
	bad, late, ngx := service(freePort(t), bs[0]), service(freePort(t), bs[0]), service(freePort(t), bs[0])
	bad.Name, late.Name, ngx.Name = "bad", "late", "nginx"
	web = service(h.port, bs[1])
	h.write(web, bad, late, ngx)
	if err := h.waitApplied(); err != nil {
		t.Fatalf("the file was not applied: %v", err)
	}
	c.eventually(t, bs[1].name, 10*time.Second)
	vhost.eventually(t, bs[1].name, 10*time.Second)
	for range 10 {
		if got, err := c.get(); err != nil || got != bs[1].name {
			t.Fatalf("HAProxy after the change: %q %v", got, err)
		}
	}
	// nginx serves what HAProxy refused, and HAProxy what nginx refused.
	if code, body := getHost(h.cfg.VHostPort, "bad.test.example"); code != 200 || body != bs[0].name {
		t.Errorf("nginx does not serve the service HAProxy refused: %d %q", code, body)
	}
	if code, _ := getHost(h.cfg.VHostPort, "nginx.test.example"); code != http.StatusServiceUnavailable {
		t.Errorf("nginx serves the virtual host it refused: %d", code)
	}
	if got, err := testGet(ngx.Port); err != nil || got != bs[0].name {
		t.Errorf("HAProxy does not serve the service nginx refused: %q %v", got, err)
	}
	for _, s := range []services.Service{bad, late} {
		if got, err := testGet(s.Port); err == nil {
			t.Errorf("HAProxy serves %s, which it refused: %q", s.Name, got)
		}
	}
	live, err := os.ReadFile(filepath.Join(h.cfg.RunDir, "haproxy.cfg"))
	if err != nil || strings.Contains(string(live), "bogus") || strings.Contains(string(live), "nowhere") || !strings.Contains(string(live), "listen nginx-") {
		t.Errorf("live haproxy.cfg (err %v):\n%s", err, live)
	}

	m := h.metrics()
	for series, want := range map[string]float64{
		`proxymatic_reload_services_rejected_by_proxy{proxy="haproxy"}`: 2,
		`proxymatic_reload_services_rejected_by_proxy{proxy="nginx"}`:   1,
		`proxymatic_reload_services_rejected_by_proxy{proxy="pen"}`:     0,
		`proxymatic_reload_proxy_in_sync{proxy="haproxy"}`:              1,
		`proxymatic_reload_proxy_in_sync{proxy="nginx"}`:                1,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for series, want := range map[string]float64{
		`proxymatic_reload_services_rejected_by_proxy_total{proxy="haproxy"}`: 2,
		`proxymatic_reload_services_rejected_by_proxy_total{proxy="nginx"}`:   1,
		`proxymatic_reload_failures_total{proxy="haproxy"}`:                   0,
	} {
		if got := metricValue(t, m, series) - metricValue(t, before, series); got != want {
			t.Errorf("%s grew by %v, want %v", series, got, want)
		}
	}
	entries := rejectedBy(book)
	got := map[string]string{}
	for _, e := range entries {
		if e.Reason != explain.ProxyRejected || e.Source != "reload" || e.Protocol != "tcp" {
			t.Errorf("entry %+v", e)
		}
		got[e.Proxy+" "+e.Service+fmt.Sprint(e.Port)] = e.Detail
	}
	for k, want := range map[string]string{
		"haproxy bad" + fmt.Sprint(bad.Port):   "unknown keyword 'bogus-keyword'",
		"haproxy late" + fmt.Sprint(late.Port): "default_backend: 'nowhere'",
		"nginx nginx" + fmt.Sprint(ngx.Port):   `unknown directive "bogus_directive"`,
	} {
		if !strings.Contains(got[k], want) {
			t.Errorf("book entry %q = %q, want it to say %q", k, got[k], want)
		}
	}
	if len(got) != 3 {
		t.Errorf("book: %v", got)
	}

	// Only a refused service changes: what is left is what already runs,
	// and the status page says so (it said "reload").
	reloads := metricValue(t, h.metrics(), `proxymatic_reload_reloads_total{proxy="haproxy"}`)
	bad.Servers = []services.Server{bs[1].srv}
	h.write(web, bad, late, ngx)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if got := h.a.proxies[0].action(); got != "unchanged" {
		t.Errorf("haproxy's last action %q, want unchanged", got)
	}
	if got := metricValue(t, h.metrics(), `proxymatic_reload_reloads_total{proxy="haproxy"}`); got != reloads {
		t.Errorf("haproxy reloaded (%v -> %v) for a change of a service it refuses", reloads, got)
	}

	// Without them, nothing is refused any more and the book is empty.
	h.write(web)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	m = h.metrics()
	if metricValue(t, m, `proxymatic_reload_services_rejected_by_proxy{proxy="haproxy"}`) != 0 ||
		metricValue(t, m, `proxymatic_reload_services_rejected_by_proxy{proxy="nginx"}`) != 0 {
		t.Errorf("refusals still counted:\n%s", grep(m, "rejected_by_proxy"))
	}
	if entries := rejectedBy(book); len(entries) != 0 {
		t.Errorf("book still holds %+v", entries)
	}
}

// pen runs one process per service: a service whose pen config is refused
// (an overriding template breaks it) holds back no other pen service, and
// its own pen keeps its last good config.
func TestRefusedPenServiceLeftOut(t *testing.T) {
	tmplDir := t.TempDir()
	patchTemplate(t, "../pen/templates/pen.cfg.tmpl", tmplDir, "pen.cfg.tmpl",
		[3]string{"\n", `{{if eq .Name "bad"}}this is not a pen command` + "\n{{end}}", ""})
	bs := newBackends(t, 2)
	h := startAgentWith(t, withPen, tmplDir, "", 0, nil)
	book := h.a.report.book
	other := service(freePort(t), bs[0])
	other.Name = "other"
	// The first file already holds a refused service: it keeps nothing
	// else from starting, nor /status from turning OK.
	early := service(freePort(t), bs[0])
	early.Name = "bad"
	h.write(service(h.port, bs[0]), other, early)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	if code := h.statusCode(); code != http.StatusOK {
		t.Errorf("/status %d with one refused pen service; want 200", code)
	}
	if got := metricValue(t, h.metrics(), `proxymatic_reload_services_rejected_by_proxy{proxy="pen"}`); got != 1 {
		t.Errorf("pen refusals %v after the first file, want 1", got)
	}
	c := h.client(withPen)
	c.eventually(t, bs[0].name, 10*time.Second)
	oc := &client{url: fmt.Sprintf("http://127.0.0.1:%d/", other.Port), c: c.c}
	oc.eventually(t, bs[0].name, 10*time.Second)

	// web changes; other becomes "bad" (refused) with a new server; a new
	// service "bad" on a third port is refused too.
	changed := other
	changed.Name, changed.Servers = "bad", []services.Server{bs[1].srv}
	fresh := service(freePort(t), bs[1])
	fresh.Name = "bad"
	h.write(service(h.port, bs[1]), changed, fresh)
	if err := h.waitApplied(); err != nil {
		t.Fatalf("the file was not applied: %v", err)
	}
	c.eventually(t, bs[1].name, 10*time.Second)
	for range 10 {
		if got, err := oc.get(); err != nil || got != bs[0].name {
			t.Fatalf("the refused service's pen does not keep its last good config: %q %v", got, err)
		}
	}
	if got, err := testGet(fresh.Port); err == nil {
		t.Errorf("a pen was started for a refused new service: %q", got)
	}
	m := h.metrics()
	if got := metricValue(t, m, `proxymatic_reload_services_rejected_by_proxy{proxy="pen"}`); got != 2 {
		t.Errorf("pen refusals %v, want 2", got)
	}
	if entries := rejectedBy(book); len(entries) != 2 || entries[0].Proxy != "pen" || entries[0].Service != "bad" {
		t.Errorf("book: %+v", entries)
	}
}

func testGet(port int) (string, error) {
	c := &client{url: fmt.Sprintf("http://127.0.0.1:%d/", port), c: &http.Client{
		Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	return c.get()
}

// rejectedBy returns the book's proxy-rejected entries.
func rejectedBy(book *explain.Book) []explain.Entry {
	all, _ := book.Entries(explain.Filter{})
	var out []explain.Entry
	for _, e := range all {
		if e.Reason == explain.ProxyRejected {
			out = append(out, e)
		}
	}
	return out
}
