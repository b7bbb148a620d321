package marathon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meltwater/proxymatic/pkg/redact"
	"github.com/meltwater/proxymatic/pkg/services"
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
		return replica{}, fmt.Errorf("marathon: replica URL %q does not parse", redact.URL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: scheme must be http or https", redact.URL(raw))
	}
	if u.Host == "" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: no host", redact.URL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return replica{}, fmt.Errorf("marathon: replica URL %q: no query or fragment allowed", redact.URL(raw))
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

// origin is a URL's scheme, host and port, the unit credentials are sent
// to: "http://marathon-1:8080" (default ports filled in, host lowered).
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(services.ASCIILower(u.Hostname()), port)
}

// redirectPolicy follows a non-leader's redirect to the leader, sending
// basic-auth credentials only to a configured replica's origin (scheme,
// host and port): a follower redirects to the leader, which is another
// configured replica. Anywhere else the redirect is followed without
// credentials (Go itself would keep them for a subdomain, or for the same
// host on another port). The credentials sent are the target replica's own
// when it has some, else the ones the request started with.
func redirectPolicy(replicas []replica) func(*http.Request, []*http.Request) error {
	byOrigin := make(map[string]replica, len(replicas))
	for _, r := range replicas {
		if _, dup := byOrigin[origin(r.base)]; !dup {
			byOrigin[origin(r.base)] = r
		}
	}
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		req.Header.Del("Authorization")
		target, ok := byOrigin[origin(req.URL)]
		if !ok {
			return nil
		}
		if target.auth {
			req.SetBasicAuth(target.user, target.pass)
		} else if user, pass, ok := via[0].BasicAuth(); ok {
			req.SetBasicAuth(user, pass)
		}
		return nil
	}
}

// client sends each request to the replica that last answered in full
// first, and fails over to the next when one fails: a connection error,
// any non-2xx answer (a follower that is not ready, a proxy's 403 or 404:
// the next replica may well answer), a body that breaks off, stalls,
// exceeds maxBody or outlasts the request deadline.
type client struct {
	replicas []replica
	http     *http.Client
	last     atomic.Int32
	log      *slog.Logger
	// maxBody caps a decompressed answer (0: no cap); timeout bounds one
	// request from connect to its last byte (0: no bound); idle bounds the
	// silence while its body is read.
	maxBody int64
	timeout time.Duration
	idle    time.Duration
}

// errIdle is the cause set when a response body stays silent too long.
var errIdle = errors.New("read timeout: no data")

// errDeadline is the cause set when a request outlasts client.timeout.
var errDeadline = errors.New("request deadline")

// statusError is a non-2xx answer.
type statusError struct {
	code int
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// TooLargeError is an answer over the body cap.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("answer larger than %d bytes (--marathon-max-body)", e.Limit)
}

// do sends GET path to the replicas in turn and hands the body of each
// 2xx answer to read, until one is read without error. The replica that
// served it is asked first next time; one that failed is not. read's
// error on a body counts as that replica's failure (failing over) unless
// ctx is done. Each attempt is bounded by c.timeout as a whole, body
// included.
func (c *client) do(ctx context.Context, path, accept string, read func(body io.Reader) error) (replica, error) {
	n := len(c.replicas)
	start := int(c.last.Load())
	var errs []error
	for i := range n {
		idx := (start + i) % n
		rep := c.replicas[idx]
		err := c.attempt(ctx, rep, path, accept, read)
		if err == nil {
			c.last.Store(int32(idx))
			return rep, nil
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		c.failed(idx)
		err = fmt.Errorf("marathon %s: %w", rep.name, err)
		if i < n-1 {
			c.log.Warn("replica failed, trying the next", "replica", rep.name, "err", err)
		}
		errs = append(errs, err)
	}
	return replica{}, errors.Join(errs...)
}

func (c *client) attempt(ctx context.Context, rep replica, path, accept string, read func(io.Reader) error) error {
	actx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("%w of %s passed (--marathon-timeout)", errDeadline, c.timeout))
		defer cancel()
	}
	resp, err := c.try(actx, rep, path, accept, c.idle)
	if err != nil {
		failuresTotal.WithLabelValues(rep.name).Inc()
		return deadlineCause(actx, err)
	}
	if c.maxBody > 0 && resp.ContentLength > c.maxBody {
		resp.Body.Close()
		failuresTotal.WithLabelValues(rep.name).Inc()
		return &TooLargeError{c.maxBody}
	}
	err = read(&capReader{rc: resp.Body, left: c.maxBody, limit: c.maxBody})
	resp.Body.Close()
	if err != nil {
		if ctx.Err() == nil {
			failuresTotal.WithLabelValues(rep.name).Inc()
		}
		return deadlineCause(actx, readErr(resp.Body, err))
	}
	return nil
}

// deadlineCause names the request deadline when it is what ended err.
func deadlineCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errDeadline) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// failed makes the replica after idx the first one asked, when idx was:
// a replica that answered its headers and then failed its body (or went
// silent on an event stream) must not stay first.
func (c *client) failed(idx int) {
	c.last.CompareAndSwap(int32(idx), int32((idx+1)%len(c.replicas)))
}

// capReader fails a body that goes past its limit (0: none), without
// reading more than one byte past it. Close closes the body, which
// releases a Read blocked in it.
type capReader struct {
	rc    io.ReadCloser
	left  int64
	limit int64
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.limit == 0 {
		return r.rc.Read(p)
	}
	if r.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := r.rc.Read(one[:])
		if n > 0 {
			return 0, &TooLargeError{r.limit}
		}
		return 0, err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *capReader) Close() error { return r.rc.Close() }

// get returns the first 2xx response of a long-lived request (the event
// stream), failing over on a connection error or any non-2xx answer. Its
// body cancels the request when no byte arrives for idle, and reading it
// then fails with errIdle. The caller reports a stream that failed later
// with failed, so that the next connection starts elsewhere.
func (c *client) get(ctx context.Context, path, accept string, idle time.Duration) (*http.Response, replica, int, error) {
	n := len(c.replicas)
	start := int(c.last.Load())
	var errs []error
	for i := range n {
		idx := (start + i) % n
		rep := c.replicas[idx]
		resp, err := c.try(ctx, rep, path, accept, idle)
		if err == nil {
			return resp, rep, idx, nil
		}
		if ctx.Err() != nil {
			return nil, rep, idx, ctx.Err()
		}
		failuresTotal.WithLabelValues(rep.name).Inc()
		c.failed(idx)
		err = fmt.Errorf("marathon %s: %w", rep.name, err)
		if i < n-1 {
			c.log.Warn("replica failed, trying the next", "replica", rep.name, "err", err)
		}
		errs = append(errs, err)
	}
	return nil, replica{}, -1, errors.Join(errs...)
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
		// A little of the body, bounded in size and time, lets the
		// connection be reused; a replica that stalls here is not waited on.
		drain := time.AfterFunc(time.Second, func() { cancel(nil) })
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		drain.Stop()
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
