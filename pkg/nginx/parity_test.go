package nginx

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

type bigResult struct {
	n       int
	blocked bool
	err     error
}

// bigBody is far more than the socket buffers between the backend and a
// client that reads nothing (a few MB on loopback).
const bigBody = 64 << 20

// parityBackend answers /host with the Host header it got, /text with a
// compressible text body, /binary with the same bytes as octet-stream,
// /stream with a first line at once and the rest only when release is
// closed, and /big with bigBody bytes, reporting on big how many it wrote
// and whether a write then blocked for a second.
func parityBackend(t *testing.T, release <-chan struct{}, big chan<- bigResult) services.Server {
	t.Helper()
	text := strings.Repeat("proxymatic compresses text responses. ", 100)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/host":
			fmt.Fprint(w, r.Host)
		case "/text":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, text)
		case "/binary":
			w.Header().Set("Content-Type", "application/octet-stream")
			fmt.Fprint(w, text)
		case "/stream":
			w.Header().Set("Content-Type", "application/octet-stream")
			fmt.Fprint(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, "second\n")
		case "/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			rc := http.NewResponseController(w)
			chunk := make([]byte, 64<<10)
			res := bigResult{}
			for res.n < bigBody {
				rc.SetWriteDeadline(time.Now().Add(time.Second))
				m, err := w.Write(chunk)
				res.n += m
				if err == nil {
					err = rc.Flush()
				}
				if err != nil {
					res.blocked, res.err = errors.Is(err, os.ErrDeadlineExceeded), err
					break
				}
			}
			big <- res
		}
	}))
	t.Cleanup(s.Close)
	return services.Server{IP: s.Listener.Addr().(*net.TCPAddr).AddrPort().Addr(), Port: s.Listener.Addr().(*net.TCPAddr).Port, Weight: services.DefaultWeight}
}

// TestLiveNginxParity runs the rendered config under the supervisor the agent
// uses, with a logger standing in for the agent's log: the Host header
// reaches the backend as sent (port included), text is gzipped and other
// types are not, a streamed response arrives before it is complete, and the
// request is logged in the agent's log at info level.
func TestLiveNginxParity(t *testing.T) {
	bin := testbin.Require(t, "nginx")
	prefix := t.TempDir()
	// nginx's workers run as nobody when the test runs as root.
	for _, d := range []string{filepath.Dir(prefix), prefix} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := MakeDirs(prefix); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	port := freePort(t)
	big := make(chan bigResult, 1)
	cfg, err := Render(Params{RunDir: prefix, Port: port, MaxConnections: 64}, []VHost{{
		Host: "web.test.local", Service: services.Key{Port: 10001, Protocol: services.TCP}, Servers: []services.Server{parityBackend(t, release, big)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ConfigFile(prefix), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testbin.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := NewServer(bin, prefix, supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, logger)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}()

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
	get := func(path, host string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v", path, host, err)
		}
		return resp
	}
	body := func(resp *http.Response) string {
		t.Helper()
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Host as sent, port and all.
	for _, host := range []string{"web.test.local:8080", "web.test.local", "WEB.test.local:80"} {
		if got := body(get("/host", host)); got != host {
			t.Errorf("backend got Host %q, client sent %q", got, host)
		}
	}

	// gzip for text, with Vary; not for a type outside gzip_types, nor for a
	// client that does not ask for it.
	resp := get("/text", "web.test.local", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("text/plain: Content-Encoding %q, Vary %q; want gzip", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	} else {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || !strings.HasPrefix(string(plain), "proxymatic compresses") {
			t.Errorf("gunzipped body %.40q, %v", plain, err)
		}
	}
	resp.Body.Close()
	if resp := get("/binary", "web.test.local", "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("application/octet-stream compressed: %q", resp.Header.Get("Content-Encoding"))
	} else {
		resp.Body.Close()
	}
	if resp := get("/text", "web.test.local"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("compressed for a client that did not accept it: %q", resp.Header.Get("Content-Encoding"))
	} else {
		resp.Body.Close()
	}

	// Unbuffered: the first line arrives while the backend still holds the
	// rest back.
	resp = get("/stream", "web.test.local")
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != "first\n" {
		t.Errorf("streamed response: %q, %v; want the first line before the response ends", first, err)
	}
	close(release)
	resp.Body.Close()

	// Unbuffered: a client that reads nothing holds the backend back (a
	// buffering nginx would take the whole body into a temp file).
	resp = get("/big", "web.test.local")
	select {
	case r := <-big:
		if !r.blocked {
			t.Errorf("the backend wrote %d bytes to a client that read none, then %v: want it held back by the client (nginx must not buffer)", r.n, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend neither finished nor blocked")
	}
	resp.Body.Close()

	// The access log line reaches the agent's log, at info level.
	resp = get("/logged-request?x=1", "web.test.local:8080")
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var line string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "GET /logged-request?x=1 HTTP/1.1") {
				line = l
			}
		}
		if line != "" {
			if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "web.test.local 127.0.0.1 - -") || !strings.Contains(line, `\" 200 `) || !strings.Contains(line, "process=nginx") {
				t.Errorf("access log line in the agent's log: %s", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no access log line for the request in the agent's log")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Only nginx's own severity tag sets the level: a request line that
// happens to hold "[error]" stays an info line.
func TestLogLevel(t *testing.T) {
	for line, want := range map[string]slog.Level{
		`2024/05/01 10:00:00 [error] 12#12: *1 connect() failed (111: Connection refused)`:                          slog.LevelError,
		`2024/05/01 10:00:00 [warn] 12#12: an upstream response is buffered to a temporary file`:                    slog.LevelWarn,
		`2024/05/01 10:00:00 [emerg] 12#12: bind() to 0.0.0.0:80 failed (98: Address in use)`:                       slog.LevelError,
		`2024/05/01 10:00:00 [notice] 12#12: signal process started`:                                                slog.LevelInfo,
		`nginx: [emerg] unknown directive "frobnicate" in /run/nginx.conf:3`:                                        slog.LevelError,
		`nginx: [warn] the "user" directive makes sense only if the master process runs with super-user privileges`: slog.LevelWarn,
		`web.test.local 10.0.0.9 - - [01/May/2024:10:00:00 +0000] "GET /[error] HTTP/1.1" 404 0 "-" "curl"`:         slog.LevelInfo,
		`web.test.local 10.0.0.9 - - [01/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "[warn]"`:              slog.LevelInfo,
	} {
		if got := logLevel(line); got != want {
			t.Errorf("logLevel(%q) = %v, want %v", line, got, want)
		}
	}
}
