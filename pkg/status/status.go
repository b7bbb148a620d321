// Package status serves the health and metrics endpoint both binaries expose:
// GET /status answers 200 OK when the process is serving, 503 INITIALIZING
// before its first good state and 503 TERMINATING once it is shutting down
// (so an upstream load balancer drains the instance first) — the one word,
// or with "Accept: application/json" a JSON document that also names each
// discovery source and whether it has been read (see Source); GET /metrics is
// Prometheus text. Every other path is 404: the endpoint serves nothing else.
//
// An instance that serves, but not everything as it should (a proxy still
// running a config older than the services file), answers 200 DEGRADED
// with its reasons: it stays in rotation, and says why it is not OK. With
// Accept: application/json (or ?format=json) the answer is JSON:
// {"status":"DEGRADED","reasons":["nginx: ..."],"sources":[...]}.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meltwater/proxymatic/internal/serve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// State is what /status reports.
type State int32

const (
	Initializing State = iota
	OK
	Terminating
	// Degraded is never Set: it is what /status reports for OK while
	// some reason is recorded with Degrade.
	Degraded
)

func (s State) String() string {
	switch s {
	case OK:
		return "OK"
	case Terminating:
		return "TERMINATING"
	case Degraded:
		return "DEGRADED"
	default:
		return "INITIALIZING"
	}
}

// Server is the status endpoint. Its zero value is not usable: use New.
type Server struct {
	state    atomic.Int32
	sources  atomic.Pointer[[]Source]
	mux      *http.ServeMux
	gatherer prometheus.Gatherer

	mu       sync.Mutex
	degraded map[string]string // key (a proxy, "services file") -> reason
}

// New returns a server reporting Initializing, exposing metrics from g
// (prometheus.DefaultGatherer when nil).
func New(g prometheus.Gatherer) *Server {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	s := &Server{mux: http.NewServeMux(), gatherer: g}
	s.mux.HandleFunc("GET /status", s.serveStatus)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return s
}

// Set changes the reported state. Terminating is final: once set, later
// calls cannot bring the instance back into rotation.
func (s *Server) Set(st State) {
	for {
		cur := s.state.Load()
		if State(cur) == Terminating {
			return
		}
		if s.state.CompareAndSwap(cur, int32(st)) {
			return
		}
	}
}

// State returns the reported state.
func (s *Server) State() State { return State(s.state.Load()) }

// Handle adds a handler for an extra path (the reload agent's HAProxy stats
// page); it must be called before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Degrade records (or, with an empty reason, clears) why key is not as the
// services file says: /status then answers 200 DEGRADED with every
// reason, as long as the state is OK.
func (s *Server) Degrade(key, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.degraded, key)
		return
	}
	if s.degraded == nil {
		s.degraded = map[string]string{}
	}
	s.degraded[key] = clip(reason)
}

// Report is what /status says: the state, DEGRADED for OK with reasons,
// and the reasons ("key: reason", sorted).
func (s *Server) Report() (State, []string) {
	st := s.State()
	s.mu.Lock()
	reasons := make([]string, 0, len(s.degraded))
	for k, r := range s.degraded {
		reasons = append(reasons, k+": "+r)
	}
	s.mu.Unlock()
	slices.Sort(reasons)
	if st == OK && len(reasons) > 0 {
		st = Degraded
	}
	return st, reasons
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, reasons := s.Report()
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	if st != OK && st != Degraded {
		code = http.StatusServiceUnavailable
	}
	src := s.Sources()
	if r.URL.Query().Get("format") == "json" || wantsJSON(r) {
		writeJSON(w, st, code, reasons, src)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if names := notRead(src); names != "" {
		w.Header().Set(NotReadHeader, names)
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, st)
	if st == Degraded {
		for _, r := range reasons {
			fmt.Fprintln(w, r)
		}
	}
}

// clip bounds one reason: a proxy's message can be long.
func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// Handler returns the endpoint's handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds addr now, so that a port already in use is a start-up error
// rather than a log line later.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status endpoint %s: %w", addr, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx is done, then shuts down within 2 s.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	err := serve.Run(ctx, srv, ln, 2*time.Second)
	if err != nil && ctx.Err() != nil {
		// Stopping: a probe cut after 2 s is no failure of the process.
		slog.Debug("status endpoint shutdown", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("status endpoint %s: %w", ln.Addr(), err)
	}
	return nil
}
