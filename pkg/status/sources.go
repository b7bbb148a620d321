package status

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Source states as /status reports them.
const (
	SourceRead    = "read"
	SourceNotRead = "not yet read"
)

// Source is one discovery source as /status reports it (proxymatic-sync).
type Source struct {
	Name  string `json:"name"`
	State string `json:"state"` // SourceRead or SourceNotRead
	// PreviousFile says the source's services in the published file are
	// the ones a previous run wrote (its last good state), kept until it
	// answers.
	PreviousFile bool `json:"previous_file,omitempty"`
}

// NotReadHeader names, in a plain-text answer, the sources not yet read:
// the body stays the one word that probes compare.
const NotReadHeader = "Proxymatic-Sources-Not-Read"

// SetSources replaces the sources /status reports (a copy is kept).
func (s *Server) SetSources(src []Source) {
	c := slices.Clone(src)
	s.sources.Store(&c)
}

// Sources returns the sources last set (nil when none were).
func (s *Server) Sources() []Source {
	if p := s.sources.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// statusDoc is the JSON answer of /status.
type statusDoc struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons,omitempty"` // why DEGRADED
	Sources []Source `json:"sources,omitempty"`
}

// wantsJSON reports whether the client listed application/json in Accept
// (with a non-zero q). Anything else, */* included, gets the plain word.
func wantsJSON(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "application/json" {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// notRead lists the sources not yet read, comma-separated.
func notRead(src []Source) string {
	var names []string
	for _, s := range src {
		if s.State != SourceRead {
			names = append(names, s.Name)
		}
	}
	return strings.Join(names, ",")
}

func writeJSON(w http.ResponseWriter, st State, code int, reasons []string, src []Source) {
	body, _ := json.Marshal(statusDoc{Status: st.String(), Reasons: reasons, Sources: src})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
