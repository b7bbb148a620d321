package syncer

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
)

// statusJSON asks st for /status as JSON.
func statusJSON(t *testing.T, st *status.Server) (int, statusDoc) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.Header.Set("Accept", "application/json")
	st.Handler().ServeHTTP(rec, req)
	var doc statusDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("/status JSON: %v: %s", err, rec.Body)
	}
	return rec.Code, doc
}

type statusDoc struct {
	Status  string          `json:"status"`
	Sources []status.Source `json:"sources"`
}

// sourcesLine renders the sources of a /status document compactly.
func (d statusDoc) sourcesLine() string {
	var out []string
	for _, s := range d.Sources {
		line := s.Name + "=" + s.State
		if s.PreviousFile {
			line += "(previous file)"
		}
		out = append(out, line)
	}
	return strings.Join(out, " ")
}

func reasons(b *explain.Book, port int) []explain.Reason {
	entries, _ := b.Entries(explain.Filter{Port: port})
	var out []explain.Reason
	for _, e := range entries {
		if e.Source != "sync" {
			panic("entry not recorded as sync: " + e.Source)
		}
		out = append(out, e.Reason)
	}
	return out
}

func TestNetHostDropsTheWholeService(t *testing.T) {
	for _, src := range []services.Source{services.SourceMarathon, services.SourceRegistrator} {
		t.Run(string(src), func(t *testing.T) {
			fake := newFake(string(src))
			h := newHarness(t, fake)
			book := explain.NewBook(0, 0)
			h.d.Explain = book
			h.start()
			vault := svc("vault", 8200, src, "10.0.0.1:8200", "10.0.0.2:31000")
			web := svc("web", 10001, src, "10.0.0.3:31001")
			for range 3 {
				h.push(fake, vault, web)
			}
			if got, want := names(h.decoded()), "web:10001/tcp:"+string(src); got != want {
				t.Fatalf("services = %q, want %q: a net=host server drops its whole service", got, want)
			}
			if n := h.logs.count("service dropped: a server listens on the service's own port (net=host)"); n != 1 {
				t.Errorf("net=host drop logged %d times over 3 refreshes, want once:\n%s", n, h.logs)
			}
			if !strings.Contains(h.logs.String(), "service=vault port=8200/tcp server=10.0.0.1:8200") {
				t.Errorf("the drop does not name the service and the server:\n%s", h.logs)
			}
			if got := reasons(book, 8200); len(got) != 1 || got[0] != explain.NetHost {
				t.Errorf("book for 8200: %v, want [net-host]", got)
			}
			if got := value(netHostDropped.WithLabelValues(string(src))); got != 1 {
				t.Errorf("net=host gauge = %v, want 1", got)
			}
			// The task moves off the service port: the service is back, the
			// reason gone.
			h.push(fake, svc("vault", 8200, src, "10.0.0.1:31999"), web)
			if got, want := names(h.decoded()), "vault:8200/tcp:"+string(src)+" web:10001/tcp:"+string(src); got != want {
				t.Errorf("services = %q, want %q", got, want)
			}
			if got := reasons(book, 8200); len(got) != 0 {
				t.Errorf("book for 8200 after the fix: %v, want nothing", got)
			}
		})
	}
}

func TestNetHostKeptWithExposeHost(t *testing.T) {
	reg := newFake("registrator")
	h := newHarness(t, reg)
	h.d.ExposeHost = true
	h.start()
	h.push(reg, svc("vault", 8200, services.SourceRegistrator, "10.0.0.1:8200", "10.0.0.2:31000"))
	f := h.decoded()
	if len(f.Services) != 1 || len(f.Services[0].Servers) != 2 {
		t.Fatalf("--expose-host: want vault with both servers:\n%s", h.file())
	}
	if h.logs.count("net=host") != 0 {
		t.Errorf("--expose-host logged a net=host drop:\n%s", h.logs)
	}
}

func TestEmptyServiceDoesNotHideAnotherSourcesService(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	book := explain.NewBook(0, 0)
	h.d.Explain = book
	h.start()
	regWeb := svc("web-reg", 10001, services.SourceRegistrator, "10.0.0.9:31500")
	h.push(reg, regWeb)
	h.push(mar, svc("web", 10001, services.SourceMarathon)) // scaled to zero
	f := h.decoded()
	if got, want := names(f), "web-reg:10001/tcp:registrator"; got != want {
		t.Fatalf("services = %q, want %q: an empty marathon service must not hide registrator's", got, want)
	}
	if got := reasons(book, 10001); len(got) != 1 || got[0] != explain.PortTaken {
		t.Errorf("book for 10001: %v, want [port-taken]", got)
	}
	if !strings.Contains(h.logs.String(), "the higher-precedence one has no servers, so the other one is published") {
		t.Errorf("the yield is not logged:\n%s", h.logs)
	}

	// Marathon scales back up: it wins the port again.
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	if got, want := names(h.decoded()), "web:10001/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}

	// Both empty: the higher-precedence one keeps the port (and the
	// listener), logged once as empty.
	for range 3 {
		h.push(reg, svc("web-reg", 10001, services.SourceRegistrator))
		h.push(mar, svc("web", 10001, services.SourceMarathon))
	}
	f = h.decoded()
	if got, want := names(f), "web:10001/tcp:marathon"; got != want || len(f.Services[0].Servers) != 0 {
		t.Errorf("services = %q (%d servers), want %q empty", got, len(f.Services[0].Servers), want)
	}
	// Only marathon's empty web is published (registrator's lost the
	// port), so only it is logged, and once. Before, the empty marathon
	// service yielded to registrator's and was not published.
	if n := h.logs.count("service has no servers"); n != 1 {
		t.Errorf("empty service logged %d times over several refreshes, want once:\n%s", n, h.logs)
	}
	got := reasons(book, 10001)
	if len(got) != 2 || got[0] != explain.EmptyService || got[1] != explain.PortTaken {
		t.Errorf("book for 10001: %v, want [empty-service port-taken]", got)
	}
	if value(emptyServices) != 1 {
		t.Errorf("empty services gauge = %v, want 1", value(emptyServices))
	}
}

func TestEmptyServiceKeepsItsListener(t *testing.T) {
	mar := newFake("marathon")
	h := newHarness(t, mar)
	h.start()
	for range 3 {
		h.push(mar, svc("web", 10001, services.SourceMarathon), svc("api", 10002, services.SourceMarathon, "10.0.0.1:31002"))
	}
	f := h.decoded()
	if got, want := names(f), "web:10001/tcp:marathon api:10002/tcp:marathon"; got != want {
		t.Fatalf("services = %q, want %q", got, want)
	}
	if !strings.Contains(string(h.file()), "name: web\n  port: 10001\n  protocol: tcp\n  mode: tcp\n  source: marathon\n  servers: []\n") {
		t.Errorf("the empty service is not written with servers: []:\n%s", h.file())
	}
	if n := h.logs.count("service has no servers"); n != 1 {
		t.Errorf("empty service logged %d times over 3 refreshes, want once:\n%s", n, h.logs)
	}
	// It fills and empties again: logged again.
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31001"))
	h.push(mar, svc("web", 10001, services.SourceMarathon))
	if n := h.logs.count("service has no servers"); n != 2 {
		t.Errorf("empty service logged %d times after emptying again, want 2", n)
	}
}

func TestInitialWaitPublishesTheSourcesThatAnswered(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.d.InitialWait = 100 * time.Millisecond
	waited := make(chan struct{})
	h.d.onInitialWait = func() { close(waited) }
	h.start()
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	select {
	case <-waited:
	case <-time.After(hangGuard):
		t.Fatal("the initial wait never ran out (hang guard)")
	}
	if got, want := names(h.decoded()), "web:10001/tcp:marathon"; got != want {
		t.Fatalf("services after the initial wait = %q, want %q", got, want)
	}
	code, doc := statusJSON(t, st)
	if code != 200 || doc.Status != "OK" || doc.sourcesLine() != "marathon=read registrator=not yet read" {
		t.Errorf("/status = %d %+v, want 200 OK naming registrator not yet read", code, doc)
	}
	if !strings.Contains(h.logs.String(), `services.yaml published without the sources not yet read; each is added when it answers" not_read=registrator`) {
		t.Errorf("partial publish not logged:\n%s", h.logs)
	}
	if got := value(sourcesNotRead); got != 1 {
		t.Errorf("sources not read gauge = %v, want 1", got)
	}

	// The late source answers: added.
	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"))
	if got, want := names(h.decoded()), "db:5432/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Errorf("services after the late source = %q, want %q", got, want)
	}
	if _, doc := statusJSON(t, st); doc.sourcesLine() != "marathon=read registrator=read" {
		t.Errorf("/status sources = %q, want both read", doc.sourcesLine())
	}
	if !strings.Contains(h.logs.String(), "source read for the first time; its services are added\" source=registrator") {
		t.Errorf("late source not logged:\n%s", h.logs)
	}
}

func TestInitialWaitWithNoSourceReadPublishesNothing(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.d.InitialWait = time.Millisecond
	waited := make(chan struct{})
	h.d.onInitialWait = func() { close(waited) }
	h.start()
	<-waited
	if _, err := os.Stat(h.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written with no source read (%v): never an empty set because the sources are down", err)
	}
	code, doc := statusJSON(t, st)
	if code != 503 || doc.Status != "INITIALIZING" || doc.sourcesLine() != "marathon=not yet read registrator=not yet read" {
		t.Errorf("/status = %d %+v", code, doc)
	}
	// The first source to answer is published at once: the wait is over.
	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"))
	if got, want := names(h.decoded()), "db:5432/tcp:registrator"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}
}

func TestPreviousFileStandsInForASourceDownAtStart(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.d.Previous = []services.Service{
		svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"),
		svc("db", 5432, services.SourceRegistrator, "10.0.0.3:31432"),
		svc("cache", 6379, services.SourceRegistrator, "10.0.0.4:31379"),
	}
	h.d.PreviousFound = true
	h.start() // InitialWait is an hour: the previous file alone allows the write
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000", "10.0.0.2:31000"))
	f := h.decoded()
	if got, want := names(f), "db:5432/tcp:registrator cache:6379/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Fatalf("services = %q, want %q: marathon's new state and registrator's from the previous file", got, want)
	}
	if n := len(f.Services[2].Servers); n != 2 {
		t.Errorf("web has %d servers, want marathon's current 2", n)
	}
	code, doc := statusJSON(t, st)
	if code != 200 || doc.sourcesLine() != "marathon=read registrator=not yet read(previous file)" {
		t.Errorf("/status = %d %q", code, doc.sourcesLine())
	}
	if n := h.logs.count("msg=Added") + h.logs.count("msg=Removed"); n != 0 {
		t.Errorf("services kept from the previous file were logged as changes:\n%s", h.logs)
	}

	// Registrator answers: its current state replaces the previous one.
	h.push(reg, svc("db", 5432, services.SourceRegistrator, "10.0.0.5:31432"))
	if got, want := names(h.decoded()), "db:5432/tcp:registrator web:10001/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q", got, want)
	}
	if !strings.Contains(string(h.file()), "10.0.0.5") || strings.Contains(string(h.file()), "10.0.0.3") {
		t.Errorf("registrator's answer did not replace its previous state:\n%s", h.file())
	}
}

func TestPreviousFileWithoutAnyAnswerIsLeftAlone(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.d.PreviousFound = true
	h.d.InitialWait = time.Millisecond
	waited := make(chan struct{})
	h.d.onInitialWait = func() { close(waited) }
	h.start()
	<-waited
	if _, err := os.Stat(h.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("written with no source read: %v", err)
	}
	if st.State() != status.Initializing {
		t.Errorf("status %s with no source read, want INITIALIZING", st.State())
	}
}

func TestPlainStatusStaysOneWord(t *testing.T) {
	mar, reg := newFake("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	st := status.New(nil)
	h.d.Status = st
	h.d.InitialWait = 0 // publish at the first answer
	h.start()
	h.push(mar, svc("web", 10001, services.SourceMarathon, "10.0.0.1:31000"))
	rec := httptest.NewRecorder()
	st.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != 200 || rec.Body.String() != "OK\n" || rec.Header().Get(status.NotReadHeader) != "registrator" {
		t.Errorf("plain /status = %d %q %s=%q, want 200 \"OK\\n\" naming registrator in the header",
			rec.Code, rec.Body, status.NotReadHeader, rec.Header().Get(status.NotReadHeader))
	}
}
