package statuspage

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilds()
	os.Exit(code)
}

// Hostile input, as an app label, an etcd key and an etcd value could
// carry it: each must reach the page as text.
const (
	hostileLabel = `<script>document.title="pwned"</script>`
	hostileName  = `<script>alert("name")</script>`
	hostileValue = `"><img src=x onerror=alert('value')>`
)

// httpGet returns the status and body of GET url, without following redirects.
func httpGet(url string) (int, http.Header, string, error) {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// screenshot saves the page as a PNG in the test's temp dir and, when
// PROXYMATIC_SCREENSHOT_DIR is set, there too (to look at it).
func screenshot(t *testing.T, chrome *testbin.Chromium, url, name string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	chrome.Screenshot(t, url, path, 1400, 1500)
	png, err := os.ReadFile(path)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes, %v)", path, len(png), err)
	}
	if dir := os.Getenv("PROXYMATIC_SCREENSHOT_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", filepath.Join(dir, name))
	}
}

func TestSyncPageInBrowser(t *testing.T) {
	chrome := testbin.RequireChromium(t)
	bin := testbin.Build(t, "proxymatic-sync")
	m := marathontest.New(t)
	m.SetApps(
		marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001).WithTask("10.0.0.2", 31002),
		marathontest.BridgeApp("/product/api", 10002).WithLabel("com.meltwater.proxymatic.port.0.weight", hostileLabel).
			WithTask("10.0.0.3", 31003),
	)
	e := etcdtest.Start(t)
	e.Put(t, "/services/db/h1:db_1:5432", "10.0.0.5:31432")
	e.Put(t, "/services/"+hostileName+"/h1:x:80", "10.0.0.6:31080")
	e.Put(t, "/services/cache/h1:cache_1:6379", hostileValue)

	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	out := filepath.Join(t.TempDir(), "services.yaml")
	testbin.StartProcess(t, bin, []string{"-m", m.URL, "-r", "etcd3://" + e.Endpoint + "/services", "-o", out,
		"--status-endpoint", addr, "--reload-status-url", ":9090"})
	base := "http://" + addr
	testbin.WaitFor(t, "sync to publish and its event stream to attach", func() bool {
		code, _, _, _ := httpGet(base + "/status")
		return code == 200 && m.Subscribers() > 0
	})

	code, h, body, err := httpGet(base + "/")
	if err != nil || code != 200 {
		t.Fatalf("GET /: %d %v", code, err)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q: want every script forbidden", csp)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || strings.Contains(body, "<script") {
		t.Errorf("GET / is %q, or carries a script element", h.Get("Content-Type"))
	}

	dom := parseDOM(t, chrome.DumpDOM(t, base+"/"))
	noActiveContent(t, dom)
	if got := text(byID(t, dom, "state")); got != "OK" {
		t.Errorf("state badge %q", got)
	}
	title := text(findAll(dom, tag("title"))[0])
	if title != "proxymatic-sync · OK" {
		t.Errorf("title %q: a script ran, or the title is wrong", title)
	}

	// Sources: both read, both following their stream or watch.
	srcs := map[string]map[string]string{}
	for _, r := range rows(t, dom, "sources") {
		srcs[r["Source"]] = r
	}
	if r := srcs["marathon"]; r["State"] != "ok" || r["Events"] != "event stream up" || !strings.HasSuffix(r["Last good read"], "ago") {
		t.Errorf("marathon row %q", r)
	}
	if r := srcs["registrator"]; r["State"] != "ok" || r["Events"] != "watch up" || !strings.Contains(r["Last warning or error"], "skipping key") {
		t.Errorf("registrator row %q", r)
	}

	// Services with their servers, as in services.yaml.
	svcs := map[string]map[string]string{}
	for _, r := range rows(t, dom, "services") {
		svcs[r["Service"]] = r
	}
	if r := svcs["web.product"]; r["Port"] != "10001/tcp" || r["Source"] != "marathon" || r["Servers"] != "10.0.0.1:31001 10.0.0.2:31002" {
		t.Errorf("web.product row %q", r)
	}
	if r := svcs["db"]; r["Port"] != "5432/tcp" || r["Source"] != "registrator" || r["Servers"] != "10.0.0.5:31432" {
		t.Errorf("db row %q", r)
	}

	// The reasons, with the hostile key and value shown literally.
	var sawName, sawValue bool
	for _, r := range rows(t, dom, "explanations") {
		switch r["App or key"] {
		case "/services/" + hostileName + "/h1:x:80":
			sawName = r["Source"] == "registrator" && r["Reason"] == "malformed-key"
		case "/services/cache/h1:cache_1:6379":
			sawValue = r["Reason"] == "malformed-key" && strings.Contains(r["Detail"], hostileValue) &&
				r["Service"] == "cache" && r["Port"] == "6379/tcp" && r["Task"] == "h1:cache_1:6379"
		}
	}
	if !sawName || !sawValue {
		t.Errorf("explanations (hostile key shown: %v, hostile value shown: %v): %q", sawName, sawValue, rows(t, dom, "explanations"))
	}
	// The hostile label reached the recent warnings as text (quoted, as
	// the logs quote it).
	if !slices.ContainsFunc(rows(t, dom, "errors"), func(r map[string]string) bool {
		return r["Source"] == "marathon" && r["Message"] == "invalid label ignored" && strings.Contains(r["Details"], strconv.Quote(hostileLabel))
	}) {
		t.Errorf("no warning showing the hostile label: %q", rows(t, dom, "errors"))
	}

	// The link to reload's page uses this host and the given port.
	links := map[string]string{}
	for _, a := range findAll(byID(t, dom, "nav"), tag("a")) {
		links[text(a)] = attr(a, "href")
	}
	if links["proxymatic-reload"] != "http://127.0.0.1:9090/proxymatic" || links["explanations (JSON)"] != "/status/explain" {
		t.Errorf("header links %v", links)
	}

	// Filtering by port narrows the services and the reasons.
	dom = parseDOM(t, chrome.DumpDOM(t, base+"/?port=5432&refresh=30"))
	if r := rows(t, dom, "services"); len(r) != 1 || r[0]["Service"] != "db" {
		t.Errorf("services for port 5432: %q", r)
	}
	if len(findAll(dom, hasAttr("id", "explanations"))) != 0 || !strings.Contains(text(byID(t, dom, "explanations-none")), "No reason") {
		t.Error("port 5432 has reasons listed")
	}
	if metas := findAll(dom, hasAttr("http-equiv", "refresh")); len(metas) != 1 || attr(metas[0], "content") != "30" {
		t.Errorf("refresh=30 gives meta refresh %v", metas)
	}

	screenshot(t, chrome, base+"/", "proxymatic-sync.png")
}

// reloadFile writes a services.yaml of one TCP service served for real,
// one on a port another process holds, one UDP service with more servers
// than pen has slots, and one whose hostile name the contract refuses.
func reloadFile(t *testing.T, path string, web, busy, udp, bad int, backend string) {
	t.Helper()
	host, port, _ := strings.Cut(backend, ":")
	doc := fmt.Sprintf(`version: 1
services:
- name: web
  port: %d
  source: marathon
  servers:
  - {ip: %s, port: %s}
- name: taken
  port: %d
  source: registrator
  servers:
  - {ip: 10.0.0.9, port: 31000}
- name: dns
  port: %d
  protocol: udp
  source: registrator
  servers:
  - {ip: 127.0.0.1, port: 31001}
  - {ip: 127.0.0.1, port: 31002}
  - {ip: 127.0.0.1, port: 31003}
- name: %q
  port: %d
  servers:
  - {ip: 10.0.0.9, port: 31000}
`, web, host, port, busy, udp, hostileName, bad)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runDir is a run directory the proxies' unprivileged users can reach.
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pm-statuspage-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestReloadPageInBrowser(t *testing.T) {
	chrome := testbin.RequireChromium(t)
	testbin.Require(t, "haproxy")
	testbin.Require(t, "pen")
	bin := testbin.Build(t, "proxymatic-reload")
	run := runDir(t)
	web, busy, udp, bad := testbin.FreePort(t, "tcp"), testbin.FreePort(t, "tcp"), testbin.FreePort(t, "udp"), testbin.FreePort(t, "tcp")
	holder, err := net.Listen("tcp", fmt.Sprintf(":%d", busy))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	backend := testbin.Backend(t, "I am web")
	file := filepath.Join(run, "services.yaml")
	reloadFile(t, file, web, busy, udp, bad, backend.String())

	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	testbin.StartProcess(t, bin, []string{"--services", file, "--run-dir", run, "--haproxy", "--pen-servers", "2",
		"--status-endpoint", addr, "--sync-status-url", "http://sync.example:9091/", "--max-connections", "1000",
		"--shutdown-delay", "100ms"})
	base := "http://" + addr
	testbin.WaitFor(t, "web served through HAProxy", func() bool {
		body, err := testbin.Get(web)
		return err == nil && body == "I am web"
	})
	testbin.WaitFor(t, "/status OK", func() bool { code, _, _, _ := httpGet(base + "/status"); return code == 200 })

	// / is HAProxy's stats page while HAProxy runs, as in the original.
	if code, h, _, _ := httpGet(base + "/"); code != http.StatusFound || h.Get("Location") != "/haproxy" {
		t.Errorf("GET /: %d to %q, want 302 to /haproxy", code, h.Get("Location"))
	}
	if code, _, body, _ := httpGet(base + "/haproxy"); code != 200 || !strings.Contains(body, "Statistics Report") {
		t.Errorf("GET /haproxy: %d", code)
	}

	dom := parseDOM(t, chrome.DumpDOM(t, base+"/proxymatic"))
	noActiveContent(t, dom)
	proxies := map[string]map[string]string{}
	for _, r := range rows(t, dom, "proxies") {
		proxies[r["Proxy"]] = r
	}
	if r := proxies["haproxy"]; r["State"] != "in step" || r["Last change"] != "start" || r["Outcome"] != "ok" || r["Services"] != "1" {
		t.Errorf("haproxy row %q", r)
	}
	if r := proxies["pen"]; r["State"] != "in step" || r["Last change"] != "start 1" || r["Services"] != "1" {
		t.Errorf("pen row %q", r)
	}
	svcs := map[string]map[string]string{}
	for _, r := range rows(t, dom, "services") {
		svcs[r["Service"]] = r
	}
	if r := svcs["web"]; r["Served by"] != "haproxy" || r["Servers"] != backend.String() {
		t.Errorf("web row %q", r)
	}
	if r := svcs["dns"]; r["Served by"] != "pen" || r["Port"] != fmt.Sprintf("%d/udp", udp) {
		t.Errorf("dns row %q", r)
	}
	if r := svcs["taken"]; r["Served by"] != "none" {
		t.Errorf("the service on a held port is shown as served: %q", r)
	}
	reasons := map[string]map[string]string{}
	for _, r := range rows(t, dom, "explanations") {
		reasons[r["Reason"]] = r
	}
	if r := reasons["port-in-use"]; r["Service"] != "taken" || r["Port"] != fmt.Sprintf("%d/tcp", busy) || r["Proxy"] != "haproxy" {
		t.Errorf("port-in-use %q", r)
	}
	if r := reasons["pen-slots-full"]; r["Service"] != "dns" || r["Proxy"] != "pen" || !strings.Contains(r["Detail"], "1 server left out: more servers than --pen-servers") {
		t.Errorf("pen-slots-full %q", r)
	}
	if r := reasons["dropped-from-file"]; r["Service"] != hostileName || r["Port"] != fmt.Sprintf("%d/tcp", bad) || r["Proxy"] != "haproxy" {
		t.Errorf("dropped-from-file %q: the hostile name must show as text", r)
	}
	links := map[string]string{}
	for _, a := range findAll(byID(t, dom, "nav"), tag("a")) {
		links[text(a)] = attr(a, "href")
	}
	if links["proxymatic-sync"] != "http://sync.example:9091/" || links["HAProxy stats"] != "/haproxy" {
		t.Errorf("header links %v", links)
	}
	screenshot(t, chrome, base+"/proxymatic", "proxymatic-reload.png")
}

func TestReloadRootRedirectsToPageWithoutHAProxy(t *testing.T) {
	testbin.Require(t, "pen")
	bin := testbin.Build(t, "proxymatic-reload")
	run := runDir(t)
	file := filepath.Join(run, "services.yaml")
	udp := testbin.FreePort(t, "udp")
	os.WriteFile(file, []byte(fmt.Sprintf("version: 1\nservices:\n- name: dns\n  port: %d\n  protocol: udp\n  servers:\n  - {ip: 127.0.0.1, port: 31001}\n", udp)), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	testbin.StartProcess(t, bin, []string{"--services", file, "--run-dir", run, "--status-endpoint", addr, "--shutdown-delay", "100ms"})
	testbin.WaitFor(t, "/status OK", func() bool { code, _, _, _ := httpGet("http://" + addr + "/status"); return code == 200 })
	if code, h, _, _ := httpGet("http://" + addr + "/"); code != http.StatusFound || h.Get("Location") != "/proxymatic" {
		t.Errorf("GET /: %d to %q, want 302 to /proxymatic", code, h.Get("Location"))
	}
	if code, _, _, _ := httpGet("http://" + addr + "/haproxy"); code != 404 {
		t.Errorf("GET /haproxy without HAProxy: %d, want 404", code)
	}
	code, _, body, _ := httpGet("http://" + addr + "/proxymatic")
	if code != 200 || !strings.Contains(body, "proxymatic-reload") {
		t.Errorf("GET /proxymatic: %d", code)
	}
}
