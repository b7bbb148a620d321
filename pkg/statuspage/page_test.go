package statuspage

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/services"
)

func serve(h http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func TestExplainHandlerFilters(t *testing.T) {
	book := explain.NewBook(4, 0)
	book.Set("marathon /product/web", []explain.Entry{
		{Source: "marathon", App: "/product/web", Port: 10001, Protocol: "tcp", Reason: explain.InvalidLabel, Detail: "weight"},
		{Source: "marathon", App: "/product/web", Task: "t1", Reason: explain.NotRunning},
	})
	book.Set("registrator /services/db/h:c:5432", []explain.Entry{{Source: "registrator", App: "/services/db/h:c:5432", Port: 5432, Reason: explain.MalformedKey}})
	h := ExplainHandler(book)

	decode := func(w *httptest.ResponseRecorder) ExplainDoc {
		t.Helper()
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		var d ExplainDoc
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decode(serve(h, "/status/explain")); len(d.Entries) != 3 || d.Omitted != 0 || d.Entries[0].Reason != explain.InvalidLabel {
		t.Errorf("all: %+v", d)
	}
	if !strings.Contains(serve(h, "/status/explain").Body.String(), `"reason": "invalid-label"`) {
		t.Error("entries are not JSON with the Entry field names")
	}
	for _, q := range []string{"?app=/product/web", "?app=product/web", "?app=%20/product/web"} {
		if d := decode(serve(h, "/status/explain"+q)); len(d.Entries) != 2 {
			t.Errorf("%s: %+v", q, d)
		}
	}
	if d := decode(serve(h, "/status/explain?port=5432")); len(d.Entries) != 1 || d.Entries[0].Source != "registrator" {
		t.Errorf("port: %+v", d)
	}
	// The task that is not running has no port, but its app is on 10001:
	// it is part of why 10001 is not served (pkg/explain.Filter).
	if d := decode(serve(h, "/status/explain?app=/product/web&port=10001")); len(d.Entries) != 2 {
		t.Errorf("app and port: %+v", d)
	}
	if d := decode(serve(h, "/status/explain?port=10001")); len(d.Entries) != 2 || d.Entries[1].Reason != explain.NotRunning {
		t.Errorf("port of an app with a task not running: %+v", d)
	}
	// Other parameters are not filters, and change nothing.
	if d := decode(serve(h, "/status/explain?pretty=1")); len(d.Entries) != 3 {
		t.Errorf("?pretty=1: %+v", d)
	}
	// Nothing matches: an empty list, not null.
	if w := serve(h, "/status/explain?port=1"); !strings.Contains(w.Body.String(), `"entries": []`) || strings.Contains(w.Body.String(), "omitted") {
		t.Errorf("no match: %s", w.Body)
	}
	for _, q := range []string{"?port=abc", "?port=0", "?port=65536", "?port=1&port=2", "?app=", "?app=/a&app=/b", "?port=-1"} {
		if w := serve(h, "/status/explain"+q); w.Code != 400 {
			t.Errorf("%s: %d, want 400", q, w.Code)
		}
	}

	// The bounds cut entries: omitted says how many.
	book.Set("registrator /more", make([]explain.Entry, 3))
	if d := decode(serve(h, "/status/explain")); d.Omitted != 2 || len(d.Entries) != 4 {
		t.Errorf("with the bound reached: %d entries, omitted %d", len(d.Entries), d.Omitted)
	}
}

func TestPageHandler(t *testing.T) {
	var gotFilter explain.Filter
	ring := logging.NewRing(5)
	view := func(r *http.Request, f explain.Filter) View {
		gotFilter = f
		recs, total := ring.Records()
		v := View{Program: "proxymatic-sync", State: "INITIALIZING", Started: time.Now().Add(-time.Hour),
			Sources: []Source{{Name: "marathon", State: "waiting for a first read"}},
			Errors:  recs, ErrorsTotal: total}
		for i := range MaxServices + 3 {
			v.Services = append(v.Services, ServiceRow(services.Service{Name: "s", Port: 1000 + i, Protocol: "tcp",
				Servers: make([]services.Server, MaxServers+2)}))
		}
		return v
	}
	h := Handler(view)
	w := serve(h, "/?app=/a&port=80&refresh=5")
	if w.Code != 200 || gotFilter != (explain.Filter{App: "/a", Port: 80}) {
		t.Fatalf("%d, filter %+v", w.Code, gotFilter)
	}
	body := w.Body.String()
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<span id="state" class="badge warn">INITIALIZING</span>`,
		"3 more services not shown here",
		"&#43;2 more", // html/template writes + as &#43;
		`value="/a"`,
		"No reason recorded for this filter",
		`<input type="hidden" name="refresh" value="5">`,
		"None since start.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(body, `<tr class="service"`); n != MaxServices {
		t.Errorf("%d service rows, want %d", n, MaxServices)
	}
	for _, q := range []string{"/?refresh=0", "/?refresh=x", "/?refresh=3601", "/?port=x", "/?refresh=1&refresh=2"} {
		if w := serve(h, q); w.Code != 400 {
			t.Errorf("%s: %d, want 400", q, w.Code)
		}
	}
	if strings.Contains(serve(h, "/").Body.String(), "http-equiv") {
		t.Error("refresh without ?refresh")
	}
}

func TestOtherPage(t *testing.T) {
	r := httptest.NewRequest("GET", "http://proxy-7.example:9090/proxymatic", nil)
	for base, want := range map[string]string{
		"":                            "",
		":9091":                       "http://proxy-7.example:9091/",
		"http://sync.example:9091":    "http://sync.example:9091/",
		"https://sync.example/p/":     "https://sync.example/p/",
		"http://sync.example:9091///": "http://sync.example:9091/",
	} {
		if got := OtherPage(base, "/", r); got != want {
			t.Errorf("OtherPage(%q) = %q, want %q", base, got, want)
		}
	}
	r6 := httptest.NewRequest("GET", "http://[2001:db8::1]:9090/", nil)
	r6.TLS = &tls.ConnectionState{}
	if got := OtherPage(":9091", "/proxymatic", r6); got != "https://[2001:db8::1]:9091/proxymatic" {
		t.Errorf("IPv6 host: %q", got)
	}
}

// BenchmarkPage10k renders the page of a 10,000-service cluster with a
// reason for every service: what one browser request costs the binary.
func BenchmarkPage10k(b *testing.B) {
	var all []Service
	var reasons []explain.Entry
	for i := range 10000 {
		s := services.Service{Name: fmt.Sprintf("app-%d.product", i), Port: 10000 + i, Protocol: services.TCP, Mode: services.ModeTCP}
		for j := range 3 {
			s.Servers = append(s.Servers, services.Server{IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 31000 + j, Weight: services.DefaultWeight})
		}
		all = append(all, ServiceRow(s))
		reasons = append(reasons, explain.Entry{Source: "marathon", App: "/product/app-" + fmt.Sprint(i), Task: "task", Port: 10000 + i,
			Protocol: "tcp", Reason: explain.HealthFailing, Detail: "a health check result says not alive"})
	}
	ring := logging.NewRing(logging.DefaultRingSize)
	l := slog.New(logging.NewRingHandler(slog.DiscardHandler, ring))
	for i := range 50 {
		l.Warn("refresh failed, keeping the last good state", "source", "marathon", "i", i)
	}
	recs, total := ring.Records()
	h := Handler(func(*http.Request, explain.Filter) View {
		return View{Program: "proxymatic-sync", State: "OK", Services: all, Explain: reasons, Errors: recs, ErrorsTotal: total,
			Sources: []Source{{Name: "marathon", State: "ok", OK: true}}}
	})
	var size int
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}
