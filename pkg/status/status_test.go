package status

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "proxymatic_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(reg)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	if code, body := get(t, "GET", base+"/status"); code != 503 || strings.TrimSpace(body) != "INITIALIZING" {
		t.Errorf("before: %d %q", code, body)
	}
	s.Set(OK)
	if code, body := get(t, "GET", base+"/status"); code != 200 || strings.TrimSpace(body) != "OK" {
		t.Errorf("ok: %d %q", code, body)
	}
	if code, body := get(t, "GET", base+"/metrics"); code != 200 || !strings.Contains(body, "proxymatic_test_total 3") {
		t.Errorf("metrics: %d %q", code, body)
	}
	for _, path := range []string{"/", "/debug/pprof/", "/status/x", "/metricsx"} {
		if code, _ := get(t, "GET", base+path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code, _ := get(t, "POST", base+"/status"); code != 405 {
		t.Errorf("POST /status: %d, want 405", code)
	}
	s.Set(Terminating)
	s.Set(OK) // must not bring a terminating instance back
	if code, body := get(t, "GET", base+"/status"); code != 503 || strings.TrimSpace(body) != "TERMINATING" {
		t.Errorf("terminating: %d %q", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestListenBusyPort(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "status endpoint") {
		t.Fatalf("busy port: %v", err)
	}
}

func TestStatusNamesSources(t *testing.T) {
	s := New(prometheus.NewRegistry())
	ask := func(accept string) (*httptest.ResponseRecorder, map[string]any) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		s.Handler().ServeHTTP(rec, req)
		var doc map[string]any
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("%q: %v: %s", accept, err, rec.Body)
			}
		}
		return rec, doc
	}

	// No sources set (the reload agent): the plain word, or {"status":...}.
	if rec, doc := ask("application/json"); rec.Code != 503 || doc["status"] != "INITIALIZING" || doc["sources"] != nil {
		t.Errorf("JSON without sources: %d %v", rec.Code, doc)
	}
	s.SetSources([]Source{{Name: "marathon", State: SourceRead}, {Name: "registrator", State: SourceNotRead, PreviousFile: true}})
	s.Set(OK)
	for _, accept := range []string{"application/json", "text/html, application/json;q=0.9", "Application/JSON; charset=utf-8"} {
		rec, _ := ask(accept)
		want := `{"status":"OK","sources":[{"name":"marathon","state":"read"},{"name":"registrator","state":"not yet read","previous_file":true}]}` + "\n"
		if rec.Code != 200 || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("Accept %q: %d %s %q, want 200 %s", accept, rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
		}
	}
	for _, accept := range []string{"", "*/*", "text/plain", "application/json;q=0"} {
		rec, _ := ask(accept)
		if rec.Code != 200 || rec.Body.String() != "OK\n" || rec.Header().Get(NotReadHeader) != "registrator" {
			t.Errorf("Accept %q: %d %q %s=%q, want the plain word with registrator in the header", accept, rec.Code, rec.Body, NotReadHeader, rec.Header().Get(NotReadHeader))
		}
	}
	s.SetSources([]Source{{Name: "marathon", State: SourceRead}, {Name: "registrator", State: SourceRead}})
	if rec, _ := ask(""); rec.Header().Get(NotReadHeader) != "" {
		t.Errorf("every source read, yet %s = %q", NotReadHeader, rec.Header().Get(NotReadHeader))
	}
	s.Set(Terminating)
	if rec, doc := ask("application/json"); rec.Code != 503 || doc["status"] != "TERMINATING" {
		t.Errorf("terminating JSON: %d %v", rec.Code, doc)
	}
}

func TestDegraded(t *testing.T) {
	s := New(prometheus.NewRegistry())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	jsonState := func() (int, string, []string) {
		req, _ := http.NewRequest("GET", srv.URL+"/status", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			State   string   `json:"status"`
			Reasons []string `json:"reasons"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v.State, v.Reasons
	}
	s.Degrade("nginx", "runs a config older than the services file: rejected")
	// Not OK yet: INITIALIZING wins, 503.
	if code, body := get(t, "GET", srv.URL+"/status"); code != 503 || body != "INITIALIZING\n" {
		t.Errorf("initializing: %d %q", code, body)
	}
	s.Set(OK)
	code, body := get(t, "GET", srv.URL+"/status")
	if code != 200 || body != "DEGRADED\nnginx: runs a config older than the services file: rejected\n" {
		t.Errorf("degraded: %d %q", code, body)
	}
	if code, st, reasons := jsonState(); code != 200 || st != "DEGRADED" || len(reasons) != 1 || !strings.HasPrefix(reasons[0], "nginx: runs a config older") {
		t.Errorf("degraded JSON: %d %s %q", code, st, reasons)
	}
	if code, body := get(t, "GET", srv.URL+"/status?format=json"); code != 200 || !strings.Contains(body, `"status":"DEGRADED"`) {
		t.Errorf("?format=json: %d %q", code, body)
	}
	s.Degrade("nginx", "")
	if code, body := get(t, "GET", srv.URL+"/status"); code != 200 || body != "OK\n" {
		t.Errorf("recovered: %d %q", code, body)
	}
	if code, st, reasons := jsonState(); code != 200 || st != "OK" || len(reasons) != 0 {
		t.Errorf("recovered JSON: %d %s %q", code, st, reasons)
	}
	s.Degrade("haproxy", "x")
	s.Set(Terminating)
	if code, body := get(t, "GET", srv.URL+"/status"); code != 503 || body != "TERMINATING\n" {
		t.Errorf("terminating: %d %q", code, body)
	}
}
