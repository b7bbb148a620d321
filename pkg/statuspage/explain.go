package statuspage

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
)

// ExplainPath is where both binaries serve their reasons as JSON.
const ExplainPath = "/status/explain"

// ExplainDoc is the JSON answer of GET /status/explain.
type ExplainDoc struct {
	Entries []explain.Entry `json:"entries"`
	// Omitted counts reasons the book's bounds left out (not the ones
	// the filter did); present only when some were.
	Omitted int `json:"omitted,omitempty"`
}

// ExplainHandler answers GET /status/explain from book: every reason of
// the last compile, in a stable order, narrowed by ?app= and ?port=;
// refine completes the filter with what the program knows (sync: the
// service name of a Marathon app id).
func ExplainHandler(book *explain.Book, refine ...func(*explain.Filter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, fn := range refine {
			fn(&f)
		}
		entries, omitted := book.Entries(f)
		if entries == nil {
			entries = []explain.Entry{} // [] rather than null: one shape for clients
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ExplainDoc{Entries: entries, Omitted: omitted})
	})
}

// ParseFilter reads ?app= and ?port= (each at most once). An app id
// without its leading slash gets one: Marathon ids and registrator's etcd
// keys both start with "/". A port is a number in 1..65535. Other
// parameters are ignored (the page has its own, ?refresh=).
func ParseFilter(q url.Values) (explain.Filter, error) {
	var f explain.Filter
	for _, k := range []string{"app", "port"} {
		if len(q[k]) > 1 {
			return f, fmt.Errorf("%s: give it once", k)
		}
	}
	if vs, ok := q["app"]; ok {
		app := strings.TrimSpace(vs[0])
		if app == "" {
			return f, fmt.Errorf("app: empty; want an app id such as /product/web, or a registrator key")
		}
		if !strings.HasPrefix(app, "/") {
			app = "/" + app
		}
		f.App = app
	}
	if vs, ok := q["port"]; ok {
		p, err := strconv.Atoi(strings.TrimSpace(vs[0]))
		if err != nil || p < 1 || p > 65535 {
			return f, fmt.Errorf("port %q: want a number from 1 to 65535", clip(vs[0], 40))
		}
		f.Port = p
	}
	return f, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
