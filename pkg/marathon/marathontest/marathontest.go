// Package marathontest is a fake Marathon for tests: an httptest server
// answering GET /v2/apps?embed=apps.tasks, GET /v2/apps/{id}?embed=app.tasks,
// GET /v2/apps/{id}/versions[/{version}] and GET /v2/events with the JSON
// and server-sent-event shapes real Marathon returns, plus knobs to make it
// fail the ways real replicas do.
//
//	m := marathontest.New(t)
//	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
//	src, _ := marathon.New(marathon.Options{URLs: []string{m.URL}})
//	m.PushEvent("status_update_event")
//	m.Fail(http.StatusServiceUnavailable) // every request answers 503 ...
//	m.Fail(0)                             // ... until cleared
//
// Apps are rendered when SetApps is called: change them, then call SetApps
// again; that sends no event. The live methods (live.go: AddApp, StartTask,
// KillTask, SetHealth, UpdateApp, ScaleApp, DeleteApp, Failover) change the
// state and send the events real Marathon sends for that change, with its
// payloads. All methods are safe for concurrent use.
package marathontest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is the fake Marathon.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:34567.
	URL string
	srv *httptest.Server

	mu         sync.Mutex
	body       []byte // the /v2/apps answer; nil: build it from parts
	raw        bool   // body set verbatim (SetAppsJSON): no per-app answers
	apps       []*App // in the order /v2/apps lists them
	byID       map[string]*App
	parts      map[string][]byte            // each app rendered with its tasks
	defs       map[string]map[string][]byte // app id -> version -> definition
	history    map[string][]string          // app id -> its versions, in order
	clock      time.Time                    // the next version's timestamp
	served     map[string]int64             // response bytes by kind
	dup        bool                         // send every event twice
	healthFst  bool                         // health events before status updates
	healthByID bool                         // health events name taskId, not instanceId
	dropAfter  int                          // drop every stream after this many more events
	failCode   int
	delay      time.Duration
	cutAfter   int
	redirect   string
	user, pass string
	stalled    bool
	keepAlive  time.Duration
	requests   map[string]int
	authSeen   []string
	queries    map[string][]string
	subs       map[*subscriber]bool
	closed     bool
}

type subscriber struct {
	ch   chan string
	drop chan struct{}
}

// New starts a fake Marathon with no apps, closed when the test ends.
func New(t testing.TB) *Server {
	s := NewHandler()
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// NewHandler is a fake Marathon with no apps that listens nowhere: serve it
// with an http.Server of your own, for a stand-in that runs as a process of
// its own (test/docker runs one in a container). URL stays empty; Close ends
// its event streams.
func NewHandler() *Server {
	return &Server{
		requests: map[string]int{},
		queries:  map[string][]string{},
		subs:     map[*subscriber]bool{},
		byID:     map[string]*App{},
		parts:    map[string][]byte{},
		defs:     map[string]map[string][]byte{},
		history:  map[string][]string{},
		served:   map[string]int64{},
		clock:    time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
	}
}

// ServeHTTP answers one request as Marathon would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r) }

// Close ends every event stream and stops the server: later requests get
// connection refused (with NewHandler, the caller's server keeps serving).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for sub := range s.subs {
		close(sub.drop)
		delete(s.subs, sub)
	}
	s.mu.Unlock()
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
}

// SetApps replaces the apps served (no event is sent). Each app's current
// version is recorded for /v2/apps/{id}/versions.
func (s *Server) SetApps(apps ...*App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw, s.body = false, nil
	s.apps = append([]*App(nil), apps...)
	clear(s.byID)
	clear(s.parts)
	for _, a := range apps {
		s.byID[a.ID] = a
		s.renderLocked(a)
	}
}

// SetAppsJSON serves body verbatim as the /v2/apps response; the per-app
// endpoints then answer 404.
func (s *Server) SetAppsJSON(body []byte) {
	s.mu.Lock()
	s.raw, s.body = true, body
	s.apps = nil
	clear(s.byID)
	clear(s.parts)
	s.mu.Unlock()
}

// renderLocked renders a (with its tasks) and records its version.
func (s *Server) renderLocked(a *App) {
	m := a.render()
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only plain values are rendered
	}
	s.parts[a.ID] = b
	s.body = nil
	ver := m["version"].(string)
	if s.defs[a.ID] == nil {
		s.defs[a.ID] = map[string][]byte{}
	}
	if _, ok := s.defs[a.ID][ver]; !ok {
		s.history[a.ID] = append(s.history[a.ID], ver)
	}
	s.defs[a.ID][ver] = definition(m)
}

// definition is what /v2/apps/{id}/versions/{version} answers for the
// rendered app m: the app without its tasks and their counts.
func definition(m map[string]any) []byte {
	d := make(map[string]any, len(m))
	for k, v := range m {
		switch k {
		case "tasks", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments":
		default:
			d[k] = v
		}
	}
	b, _ := json.Marshal(d)
	return b
}

// appsBodyLocked is the /v2/apps answer, built from the rendered apps.
func (s *Server) appsBodyLocked() []byte {
	if s.body != nil {
		return s.body
	}
	n := 16
	for _, a := range s.apps {
		n += len(s.parts[a.ID]) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"apps":[`...)
	for i, a := range s.apps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.parts[a.ID]...)
	}
	b = append(b, "]}"...)
	s.body = b
	return b
}

// BytesServed is the response bytes sent, by kind: "apps" (/v2/apps),
// "app" (one app), "versions" (versions and version definitions),
// "events" (the event streams).
func (s *Server) BytesServed(kind string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[kind]
}

func (s *Server) count(kind string, n int) {
	s.mu.Lock()
	s.served[kind] += int64(n)
	s.mu.Unlock()
}

// Fail makes every request answer with HTTP code (0 clears).
func (s *Server) Fail(code int) { s.mu.Lock(); s.failCode = code; s.mu.Unlock() }

// Delay holds every /v2/apps answer back for d before the headers (0 clears).
func (s *Server) Delay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// CutBody makes /v2/apps send only the first n bytes of its body, then
// close the connection (0 clears).
func (s *Server) CutBody(n int) { s.mu.Lock(); s.cutAfter = n; s.mu.Unlock() }

// RedirectTo makes every request answer 307 to the same path on leader, as
// a Marathon that is not the leader may ("" clears).
func (s *Server) RedirectTo(leader string) { s.mu.Lock(); s.redirect = leader; s.mu.Unlock() }

// RequireAuth makes every request without these basic-auth credentials
// answer 401.
func (s *Server) RequireAuth(user, pass string) {
	s.mu.Lock()
	s.user, s.pass = user, pass
	s.mu.Unlock()
}

// StallEvents makes event streams, open and new, go silent: no events, no
// keep-alives, connection left open (false resumes).
func (s *Server) StallEvents(stall bool) { s.mu.Lock(); s.stalled = stall; s.mu.Unlock() }

// KeepAlive sends a keep-alive comment on every event stream each d (0 stops).
func (s *Server) KeepAlive(d time.Duration) { s.mu.Lock(); s.keepAlive = d; s.mu.Unlock() }

// DropEvents closes every open event stream.
func (s *Server) DropEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked()
}

func (s *Server) dropLocked() {
	for sub := range s.subs {
		close(sub.drop)
		delete(s.subs, sub)
	}
}

// PushEvent sends an event of type typ to every open event stream, with a
// data payload shaped like Marathon's for that type. The payload is about
// an app no test serves (/marathontest/pushed), so a source that follows
// the stream takes it as "something it does not know changed" and reads
// everything again: the way to make it see a state set with SetApps. For
// changes a source applies from the event itself, use the live methods.
func (s *Server) PushEvent(typ string) {
	data, _ := json.Marshal(eventData(typ))
	s.PushRawEvent(typ, string(data))
}

// PushRawEvent sends "event: typ" and "data: data" (typ "" omits the event
// line, as some proxies in front of Marathon do).
func (s *Server) PushRawEvent(typ, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushLocked(typ, data)
}

func (s *Server) pushLocked(typ, data string) {
	var b strings.Builder
	if typ != "" {
		fmt.Fprintf(&b, "event: %s\r\n", typ)
	}
	fmt.Fprintf(&b, "data: %s\r\n\r\n", data)
	for range 1 + boolInt(s.dup) {
		for sub := range s.subs {
			select {
			case sub.ch <- b.String():
			default: // a stalled or slow reader misses events, as with Marathon
			}
		}
	}
	if s.dropAfter > 0 {
		if s.dropAfter--; s.dropAfter == 0 {
			s.dropLocked()
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Requests counts requests by path ("/v2/apps", "/v2/events").
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Subscribers is the number of open event streams.
func (s *Server) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Authorization returns the Authorization headers received, in order.
func (s *Server) Authorization() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authSeen...)
}

// Queries returns the raw query strings received on path, in order.
func (s *Server) Queries(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries[path]...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	s.queries[r.URL.Path] = append(s.queries[r.URL.Path], r.URL.RawQuery)
	s.authSeen = append(s.authSeen, r.Header.Get("Authorization"))
	failCode, redirect, delay, cut := s.failCode, s.redirect, s.delay, s.cutAfter
	user, pass := s.user, s.pass
	s.mu.Unlock()

	if user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="Mesosphere"`)
			http.Error(w, `{"message":"Invalid username or password."}`, http.StatusUnauthorized)
			return
		}
	}
	if redirect != "" {
		http.Redirect(w, r, redirect+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	if failCode != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(failCode)
		fmt.Fprintf(w, `{"message":"fake failure %d"}`, failCode)
		return
	}
	switch p := r.URL.Path; {
	case p == "/v2/apps":
		s.mu.Lock()
		body := s.appsBodyLocked()
		s.mu.Unlock()
		s.serveApps(w, r, delay, cut, body)
	case strings.HasPrefix(p, "/v2/apps/"):
		s.serveApp(w, strings.TrimPrefix(p, "/v2/apps"))
	case p == "/v2/events":
		s.serveEvents(w, r)
	case p == "/ping":
		fmt.Fprint(w, "pong")
	default:
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
	}
}

// serveApp answers /v2/apps{id}, /v2/apps{id}/versions and
// /v2/apps{id}/versions/{version} as Marathon does (rest starts with /).
func (s *Server) serveApp(w http.ResponseWriter, rest string) {
	s.mu.Lock()
	var body []byte
	kind, id, found := "app", rest, false
	switch {
	case strings.HasSuffix(rest, "/versions"):
		kind, id = "versions", strings.TrimSuffix(rest, "/versions")
		if vs, ok := s.history[id]; ok && !s.raw && s.byID[id] != nil {
			list := append([]string(nil), vs...)
			slices.Reverse(list) // newest first, as Marathon lists them
			body, _ = json.Marshal(map[string]any{"versions": list})
			found = true
		}
	case strings.Contains(rest, "/versions/"):
		i := strings.LastIndex(rest, "/versions/")
		var v string
		kind, id, v = "versions", rest[:i], rest[i+len("/versions/"):]
		if def, ok := s.defs[id][v]; ok && !s.raw {
			body, found = def, true
		}
	default:
		if part, ok := s.parts[id]; ok && !s.raw {
			body = make([]byte, 0, len(part)+8)
			body = append(append(append(body, `{"app":`...), part...), '}')
			found = true
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; qs=2")
	if !found {
		w.WriteHeader(http.StatusNotFound)
		msg, _ := json.Marshal(map[string]string{"message": fmt.Sprintf("App '%s' does not exist", id)})
		w.Write(msg)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
	s.count(kind, len(body))
}

func (s *Server) serveApps(w http.ResponseWriter, r *http.Request, delay time.Duration, cut int, body []byte) {
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json; qs=2")
	if cut > 0 && cut < len(body) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		// Close without finishing: the client sees an unexpected EOF.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
	s.count("apps", len(body))
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	sub := &subscriber{ch: make(chan string, 4096), drop: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.subs[sub] = true
	stalled := s.stalled
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.subs[sub] {
			delete(s.subs, sub)
		}
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	if !stalled {
		attached, _ := json.Marshal(map[string]any{
			"remoteAddress": r.RemoteAddr, "eventType": "event_stream_attached", "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		})
		fmt.Fprintf(w, "event: event_stream_attached\r\ndata: %s\r\n\r\n", attached)
	}
	fl.Flush()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastKA time.Time
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.drop:
			return
		case ev := <-sub.ch:
			if s.isStalled() {
				continue
			}
			fmt.Fprint(w, ev)
			fl.Flush()
			s.count("events", len(ev))
		case now := <-tick.C:
			s.mu.Lock()
			ka, st := s.keepAlive, s.stalled
			s.mu.Unlock()
			if ka > 0 && !st && now.Sub(lastKA) >= ka {
				lastKA = now
				fmt.Fprint(w, ":\r\n")
				fl.Flush()
			}
		}
	}
}

func (s *Server) isStalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled
}

// eventData is a Marathon-shaped payload for the common event types.
func eventData(typ string) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	m := map[string]any{"eventType": typ, "timestamp": now}
	switch typ {
	case "status_update_event":
		m["slaveId"] = "20240301-100000-16842879-5050-1-S0"
		m["taskId"] = "marathontest_pushed.00000000-0000-11e6-0000-000000000000"
		m["taskStatus"] = "TASK_RUNNING"
		m["message"] = ""
		m["appId"] = "/marathontest/pushed"
		m["host"] = "agent-001.example.com"
		m["ipAddresses"] = []any{map[string]any{"ipAddress": "172.17.0.2", "protocol": "IPv4"}}
		m["ports"] = []int{31000}
		m["version"] = version
	case "health_status_changed_event":
		m["appId"] = "/marathontest/pushed"
		m["instanceId"] = "marathontest_pushed.marathon-00000000-0000-11e6-0000-000000000000"
		m["version"] = version
		m["alive"] = true
	case "api_post_event":
		m["clientIp"] = "127.0.0.1"
		m["uri"] = "/v2/apps/marathontest/pushed"
		m["appDefinition"] = map[string]any{"id": "/marathontest/pushed", "instances": 2}
	case "deployment_success", "deployment_failed":
		m["id"] = "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
		m["plan"] = map[string]any{"id": "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", "steps": []any{}}
	}
	return m
}
