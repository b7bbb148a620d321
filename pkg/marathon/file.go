package marathon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/meltwater/proxymatic/pkg/redact"
)

// A file:// URL in place of the replicas reads a saved answer of
// GET /v2/apps?embed=apps.tasks (what `curl .../v2/apps?embed=apps.tasks >
// apps.json` saves), for CI jobs that cannot reach Marathon.
//
// The file is served to the ordinary client by an http.RoundTripper that
// answers that one request with the file's bytes, so Fetch reads, decodes,
// resolves and compiles it through exactly the code a live answer goes
// through: the same services, byte for byte, by construction rather than by
// a second reader kept in step. Any other request (the event stream) gets
// 404. A file source is meant for Fetch (--once, --dry-run); Watch would
// poll the file while its event stream keeps failing.

// isFileURL reports whether raw names a saved /v2/apps answer rather than
// a Marathon replica.
func isFileURL(raw string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(raw)), "file:")
}

// filePath returns the local path of a file URL: file:///abs/path,
// file://localhost/abs/path, or file:relative/path.
func filePath(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !strings.EqualFold(u.Scheme, "file") {
		return "", errors.New("want file:///path/to/apps.json")
	}
	if u.Opaque != "" {
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return "", errors.New("want file:///path/to/apps.json")
		}
		return p, nil
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("host %q: want file:///path/to/apps.json (three slashes) or file:relative/path", u.Host)
	}
	if u.Path == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("want file:///path/to/apps.json")
	}
	return u.Path, nil
}

// newFileSource builds a Source over a saved answer; the file must exist
// (and is read again on every Fetch).
func newFileSource(opts Options, log *slog.Logger) (*Source, error) {
	if len(opts.URLs) != 1 {
		return nil, errors.New("marathon: a file:// answer cannot be combined with other replicas")
	}
	raw := strings.TrimSpace(opts.URLs[0])
	path, err := filePath(raw)
	if err != nil {
		return nil, fmt.Errorf("marathon %s: %w", redact.URL(raw), err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("marathon %s: %w", redact.URL(raw), err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("marathon %s: %s is not a regular file", redact.URL(raw), path)
	}
	rep := replica{base: &url.URL{Scheme: "file"}, name: redact.URL(raw)}
	// The file transport never redirects.
	hc := &http.Client{Transport: fileTransport{path: path}}
	// A saved answer has no version definitions to read: the tasks of past
	// versions take the current one (the file transport answers 404).
	return &Source{
		opts:      opts,
		client:    &client{replicas: []replica{rep}, http: hc, log: log, maxBody: max(opts.MaxBody, 0), idle: opts.ReadTimeout},
		dns:       newDNSCache(resolverOf(opts), opts.DNSTTL, log),
		log:       log,
		versions:  newVersionCache(versionCacheSize),
		health:    newHealthCache(opts.HealthCacheSize),
		explained: map[string]bool{},
		again:     make(chan struct{}, 1),
	}, nil
}

func resolverOf(opts Options) Resolver {
	if opts.Resolver != nil {
		return opts.Resolver
	}
	return net.DefaultResolver
}

// fileTransport answers GET /v2/apps with a file's contents.
type fileTransport struct{ path string }

func (t fileTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := &http.Response{
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{},
		Request: req,
	}
	if req.Method != http.MethodGet || req.URL.Path != "/v2/apps" {
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
		resp.Body = io.NopCloser(strings.NewReader(""))
		return resp, nil
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(t.path)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil {
		resp.ContentLength = st.Size()
	}
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Header.Set("Content-Type", "application/json")
	resp.Body = f
	return resp, nil
}
