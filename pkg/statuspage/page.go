// Package statuspage is the operator's view of a running proxymatic: the
// HTML page both binaries serve on their status endpoint (proxymatic-sync
// at /, proxymatic-reload at /proxymatic) and GET /status/explain, the
// reasons why something is not served, as JSON.
//
// The page is rendered on the server with html/template from a View the
// binary builds per request; its template and stylesheet are embedded
// (go:embed). It has no JavaScript at all, and says so to the browser
// (Content-Security-Policy without script-src): whatever an app id, label
// or etcd key holds is shown as text, never run. ?refresh=N (seconds) adds
// a meta refresh; ?app= and ?port= narrow the explanations as on
// /status/explain.
package statuspage

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/version"
)

// Bounds of one page: a cluster of 10,000 services gets a page a browser
// shows at once; the whole lists are services.yaml and /status/explain.
const (
	MaxServices      = 500
	MaxServers       = 12 // per service row
	MaxExplanations  = 500
	MaxRefreshPeriod = 3600
)

//go:embed assets/page.html.tmpl assets/style.css
var assets embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"when":   when,
	"ago":    ago,
	"port":   portText,
	"plural": plural,
}).ParseFS(assets, "assets/page.html.tmpl"))

var style = func() template.CSS {
	b, err := assets.ReadFile("assets/style.css")
	if err != nil {
		panic(err)
	}
	return template.CSS(b) // our own embedded file, not input
}()

// contentSecurityPolicy forbids every script, plugin and frame: the page
// needs none, so an injection that got past the escaping would still run
// nothing.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// View is everything one page shows; the binary fills what it has.
type View struct {
	Program string // "proxymatic-sync", "proxymatic-reload"
	State   string // what /status answers: OK, INITIALIZING...
	Started time.Time
	Links   []Link // the other binary's page, HAProxy's stats, ...

	Sources []Source // proxymatic-sync
	Proxies []Proxy  // proxymatic-reload
	File    *File    // the services file
	Apply   *Apply   // proxymatic-reload: the last services file applied

	Services      []Service // all of them; the page shows the first MaxServices
	ServicesTitle string    // "Services in services.yaml", "Services and the proxies serving them"

	Explain        []explain.Entry // already filtered by the page's ?app= and ?port=
	ExplainOmitted int

	Errors      []logging.Record // newest first
	ErrorsTotal uint64
}

// Link is one link in the page's header.
type Link struct {
	Text, URL string
}

// Source is one discovery source of proxymatic-sync.
type Source struct {
	Name      string
	State     string // "ok", "waiting for a first read", "failing"
	OK        bool
	LastGood  time.Time // zero: never
	Reads     uint64    // good reads handed to the daemon
	LastError *logging.Record
	Stream    string // "up", "down", "" when the source has none
	StreamFor string // "event stream", "watch"
}

// Proxy is one proxy of proxymatic-reload.
type Proxy struct {
	Name     string
	InSync   bool   // runs the config of the last file
	Last     string // "reload", "start", "runtime update", "unchanged", "stop"
	LastAt   time.Time
	Outcome  string // "ok" or the error
	Services int    // services it was given by the last plan
}

// File is the services file as the binary last saw it.
type File struct {
	Path     string
	Modified time.Time
	Services int
	Servers  int
	Err      string // unreadable or unparseable
}

// Apply is proxymatic-reload's last application of the services file.
type Apply struct {
	At       time.Time
	SHA256   string
	Services int
	Took     time.Duration
	Err      string
}

// Service is one row of the services table.
type Service struct {
	Name     string
	Port     int
	Protocol string
	Mode     string
	Source   string
	Servers  []string // "10.0.0.1:31001" (weight when not the default)
	Proxies  []string // reload: "haproxy", "pen", "nginx web.apps.example.com"
}

// data is what the template gets: the view, cut to the page's bounds.
type data struct {
	View
	Now              time.Time
	Version          version.Info
	Refresh          int
	Filter           explain.Filter
	Filtered         bool
	Style            template.CSS
	Path             string
	ShownServices    []Service
	MoreServices     int
	ShownExplain     []explain.Entry
	MoreExplain      int
	ErrorsHaveSource bool
	RefreshChoices   []refreshChoice
}

type refreshChoice struct {
	Label string
	URL   string
	On    bool
}

// Handler renders the page for every GET, from a View built by view for
// the request's filter (f). ?refresh=N must be 1..MaxRefreshPeriod;
// ?app= and ?port= are checked as on /status/explain: a bad value is 400.
func Handler(view func(r *http.Request, f explain.Filter) View) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, err := ParseFilter(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		refresh := 0
		if vs, ok := q["refresh"]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(vs[0]))
			if len(vs) != 1 || err != nil || n < 1 || n > MaxRefreshPeriod {
				http.Error(w, fmt.Sprintf("refresh %q: want seconds from 1 to %d", clip(vs[0], 40), MaxRefreshPeriod), http.StatusBadRequest)
				return
			}
			refresh = n
		}
		v := view(r, f)
		d := data{View: v, Now: time.Now(), Version: version.Get(), Refresh: refresh, Filter: f,
			Filtered: f != (explain.Filter{}), Style: style, Path: r.URL.Path}
		d.ShownServices, d.MoreServices = cut(v.Services, MaxServices)
		d.ShownExplain, d.MoreExplain = cut(v.Explain, MaxExplanations)
		d.RefreshChoices = refreshChoices(r.URL, refresh)
		d.ErrorsHaveSource = slices.ContainsFunc(v.Errors, func(rec logging.Record) bool { return rec.Source != "" })
		var buf bytes.Buffer
		if err := page.Execute(&buf, d); err != nil {
			slog.Error("status page", "err", err)
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		w.Write(buf.Bytes())
	})
}

// ServiceRow is how the page shows one service.
func ServiceRow(s services.Service) Service {
	row := Service{Name: s.Name, Port: s.Port, Protocol: string(s.Protocol), Mode: string(s.Mode), Source: string(s.Source)}
	for i, srv := range s.Servers {
		if i == MaxServers {
			row.Servers = append(row.Servers, fmt.Sprintf("+%d more", len(s.Servers)-i))
			break
		}
		a := srv.Address()
		if srv.Weight != services.DefaultWeight {
			a += " w" + strconv.Itoa(srv.Weight)
		}
		row.Servers = append(row.Servers, a)
	}
	return row
}

func cut[T any](all []T, n int) ([]T, int) {
	if len(all) <= n {
		return all, 0
	}
	return all[:n], len(all) - n
}

// refreshChoices are the page's own links: off, 5 s, 30 s, keeping the
// filter.
func refreshChoices(u *url.URL, current int) []refreshChoice {
	var out []refreshChoice
	for _, n := range []int{0, 5, 30} {
		q := u.Query()
		q.Del("refresh")
		label := "off"
		if n > 0 {
			q.Set("refresh", strconv.Itoa(n))
			label = strconv.Itoa(n) + " s"
		}
		link := url.URL{Path: u.Path, RawQuery: q.Encode()}
		out = append(out, refreshChoice{Label: label, URL: link.String(), On: n == current})
	}
	return out
}

// OtherPage resolves the link to the other binary's page. base is what
// --sync-status-url or --reload-status-url gave: an http(s) URL, or
// ":PORT" for "this host, that port" (the combined image, where both
// endpoints are on one host). path is the other page's path.
func OtherPage(base, path string, r *http.Request) string {
	if base == "" {
		return ""
	}
	if strings.HasPrefix(base, ":") {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if strings.Contains(host, ":") { // an IPv6 literal
			host = "[" + host + "]"
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + host + base + path
	}
	return strings.TrimRight(base, "/") + path
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func portText(port int, protocol string) string {
	if port == 0 {
		return ""
	}
	if protocol == "" {
		return strconv.Itoa(port)
	}
	return strconv.Itoa(port) + "/" + protocol
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
