package marathon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"log/slog"
)

// replica is one configured Marathon. Its credentials are kept apart from
// the URL so that no error or log line built from the URL can carry them.
type replica struct {
	base       *url.URL // without user info
	user, pass string
	auth       bool
	name       string // scheme://host/path, safe to log and use as a metric label
}

func parseReplica(raw string) (replica, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Parse quotes the input in its error; never echo it.
		return replica{}, fmt.Errorf("marathon: replica URL %q does not parse", redact(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: scheme must be http or https", redact(raw))
	}
	if u.Host == "" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: no host", redact(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: no query or fragment allowed", redact(raw))
	}
	r := replica{}
	if u.User != nil {
		r.user = u.User.Username()
		r.pass, _ = u.User.Password()
		r.auth = true
		u.User = nil
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	r.base = u
	r.name = u.String()
	return r, nil
}

// redact strips user info from a URL-ish string that may not even parse.
func redact(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			s = s[:i+3] + "xxxxx@" + rest[at+1:]
		}
	} else if at := strings.LastIndex(s, "@"); at >= 0 {
		s = "xxxxx@" + s[at+1:]
	}
	return s
}

// keepAuthOnRedirect follows a non-leader's redirect to the leader with the
// same credentials. Go drops Authorization when the host changes; Marathon's
// leader is another host by design. Credentials never follow a downgrade
// from https to plain http.
func keepAuthOnRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0]
	if user, pass, ok := first.BasicAuth(); ok {
		if first.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("refusing to send credentials over a redirect from https to %s", req.URL.Scheme)
		}
		req.SetBasicAuth(user, pass)
	}
	return nil
}

// client sends each request to the replica that last answered first and
// fails over to the next on a connection error, a timeout or a 5xx.
type client struct {
	replicas []replica
	http     *http.Client
	last     atomic.Int32
	log      *slog.Logger
}

// errIdle is the cause set when a response body stays silent too long.
var errIdle = errors.New("read timeout: no data")

// statusError is a non-2xx answer that failing over would not cure.
type statusError struct {
	code int
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// get returns the first successful response. Its body cancels the request
// when no byte arrives for idle, and reading it then fails with errIdle.
func (c *client) get(ctx context.Context, path, accept string, idle time.Duration) (*http.Response, replica, error) {
	n := len(c.replicas)
	start := int(c.last.Load())
	var errs []error
	for i := range n {
		idx := (start + i) % n
		rep := c.replicas[idx]
		resp, err := c.try(ctx, rep, path, accept, idle)
		if err == nil {
			c.last.Store(int32(idx))
			return resp, rep, nil
		}
		if ctx.Err() != nil {
			return nil, rep, ctx.Err()
		}
		failuresTotal.WithLabelValues(rep.name).Inc()
		err = fmt.Errorf("marathon %s: %w", rep.name, err)
		var se *statusError
		if errors.As(err, &se) && se.code < 500 {
			return nil, rep, err
		}
		if i < n-1 {
			c.log.Warn("replica failed, trying the next", "replica", rep.name, "err", err)
		}
		errs = append(errs, err)
	}
	return nil, replica{}, errors.Join(errs...)
}

func (c *client) try(ctx context.Context, rep replica, path, accept string, idle time.Duration) (*http.Response, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	ref, err := url.Parse(path)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	u := *rep.base
	u.Path += ref.Path
	u.RawQuery = ref.RawQuery
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "proxymatic")
	if rep.auth {
		req.SetBasicAuth(rep.user, rep.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel(nil)
		return nil, &statusError{code: resp.StatusCode}
	}
	resp.Body = newIdleReader(resp.Body, idle, cancel)
	return resp, nil
}

// idleReader cancels its request when the peer sends nothing for d: a
// connection can stay open with nobody on the other end.
type idleReader struct {
	rc     io.ReadCloser
	d      time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
	fired  atomic.Bool
}

func newIdleReader(rc io.ReadCloser, d time.Duration, cancel context.CancelCauseFunc) *idleReader {
	r := &idleReader{rc: rc, d: d, cancel: cancel}
	r.timer = time.AfterFunc(d, func() {
		r.fired.Store(true)
		cancel(errIdle)
	})
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	if err != nil && err != io.EOF && r.fired.Load() {
		err = fmt.Errorf("%w after %s", errIdle, r.d)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	err := r.rc.Close()
	r.cancel(nil)
	return err
}

// readErr prefers the idle-timeout cause over the transport's "context
// canceled", which would read as if the caller had given up.
func readErr(body io.Reader, err error) error {
	if ir, ok := body.(*idleReader); ok && ir.fired.Load() && !errors.Is(err, errIdle) {
		return fmt.Errorf("%w after %s", errIdle, ir.d)
	}
	return err
}
