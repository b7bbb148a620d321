// Package etcdtest starts a real, single-member etcd for tests: v2 and v3
// APIs enabled, data in t.TempDir(), client and peer listeners on random free
// 127.0.0.1 ports, killed on cleanup. Tests never mock etcd; when the etcd
// binary is missing, testbin decides between skip and failure (CI=true).
//
//	e := etcdtest.Start(t)
//	e.Put(t, "/services/web/host:web:80", "10.0.0.1:31000") // v3
//	e.V2Put(t, "/services/web/host:web:80", "10.0.0.1:31000") // v2 keyspace
//	e.Stop(); e.Restart() // same ports, same data
//	e.Compact(t)          // v3 compaction at the current revision
package etcdtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meltwater/proxymatic/internal/testbin"
)

// Options changes how the member is started.
type Options struct {
	// TLS serves the client port over HTTPS and requires client
	// certificates signed by a CA the package generates (see CACertFile,
	// CertFile, KeyFile).
	TLS bool
}

// Etcd is one running (or stopped) etcd member.
type Etcd struct {
	// ClientURL is the client URL, e.g. "http://127.0.0.1:40123".
	ClientURL string
	// Endpoint is the client address as host:port, the form REGISTRATOR_URL wants.
	Endpoint string
	// DataDir is the member's data directory (kept across Restart).
	DataDir string
	// CACertFile, CertFile and KeyFile are set with Options.TLS: the CA that
	// signed the server certificate and a client certificate and key it accepts.
	CACertFile, CertFile, KeyFile string

	t       testing.TB
	bin     string
	args    []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	client *clientv3.Client
	http   *http.Client
}

// Start starts a plain-HTTP member and waits until it is healthy.
func Start(t testing.TB) *Etcd { return StartWith(t, Options{}) }

// StartWith starts a member with the given options and waits until it is healthy.
func StartWith(t testing.TB, o Options) *Etcd {
	t.Helper()
	bin := testbin.Require(t, "etcd")
	dir := t.TempDir()
	clientPort, peerPort := FreePort(t), FreePort(t)
	scheme := "http"
	e := &Etcd{
		t:       t,
		bin:     bin,
		DataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "etcd.log"),
		http:    &http.Client{Timeout: 5 * time.Second},
	}
	var tlsArgs []string
	if o.TLS {
		scheme = "https"
		e.CACertFile, e.CertFile, e.KeyFile, tlsArgs = writeCerts(t, dir)
		tc, err := e.TLSConfig()
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		e.http.Transport = &http.Transport{TLSClientConfig: tc}
	}
	e.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))
	e.ClientURL = scheme + "://" + e.Endpoint
	peerURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
	e.args = append([]string{
		"--name", "default",
		"--data-dir", e.DataDir,
		"--enable-v2=true",
		"--listen-client-urls", e.ClientURL,
		"--advertise-client-urls", e.ClientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default=" + peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	}, tlsArgs...)
	t.Cleanup(func() {
		e.mu.Lock()
		if e.client != nil {
			e.client.Close()
			e.client = nil
		}
		e.mu.Unlock()
		e.kill()
		if t.Failed() {
			if b, err := os.ReadFile(e.logPath); err == nil {
				t.Logf("etcd log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})
	e.start()
	return e
}

// TLSConfig returns the client TLS configuration for a member started with
// Options.TLS (nil for a plain member).
func (e *Etcd) TLSConfig() (*tls.Config, error) {
	if e.CACertFile == "" {
		return nil, nil
	}
	ca, err := os.ReadFile(e.CACertFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (e *Etcd) start() {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatalf("etcdtest: %v", err)
	}
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a kill never leaves a child behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatalf("etcdtest: start %s: %v", e.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	e.mu.Lock()
	e.cmd, e.exited = cmd, exited
	e.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(e.logPath)
			e.t.Fatalf("etcdtest: etcd exited during start-up:\n%s", tail(b, 4096))
		default:
		}
		if e.healthy() {
			return
		}
		if time.Now().After(deadline) {
			e.kill()
			b, _ := os.ReadFile(e.logPath)
			e.t.Fatalf("etcdtest: etcd not healthy after 30s:\n%s", tail(b, 4096))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *Etcd) healthy() bool {
	resp, err := e.http.Get(e.ClientURL + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct{ Health string }
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK && h.Health == "true"
}

// kill stops the process (SIGKILL, as a crash would) and waits for it.
func (e *Etcd) kill() {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// Stop kills the member as a crash would; its data stays for Restart.
func (e *Etcd) Stop() { e.kill() }

// Restart stops the member if it runs and starts it again on the same ports
// with the same data, waiting until it is healthy.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.kill()
	e.start()
}

// Client returns a v3 client for the member, created on first use and
// closed on cleanup. It is safe for concurrent use.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client
	}
	tc, err := e.TLSConfig()
	if err != nil {
		e.t.Fatalf("etcdtest: %v", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.ClientURL},
		DialTimeout: 5 * time.Second,
		TLS:         tc,
		Logger:      zapNop(),
	})
	if err != nil {
		e.t.Fatalf("etcdtest: v3 client: %v", err)
	}
	e.client = c
	return c
}

func ctx10s() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Put writes a key in the v3 keyspace and returns the new revision.
func (e *Etcd) Put(t testing.TB, key, value string) int64 {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	r, err := e.Client().Put(ctx, key, value)
	if err != nil {
		t.Fatalf("etcdtest: v3 put %q: %v", key, err)
	}
	return r.Header.Revision
}

// Delete removes a key from the v3 keyspace.
func (e *Etcd) Delete(t testing.TB, key string) {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	if _, err := e.Client().Delete(ctx, key); err != nil {
		t.Fatalf("etcdtest: v3 delete %q: %v", key, err)
	}
}

// Compact compacts the v3 keyspace at its current revision (physically, so
// a watch from an older revision fails at once) and returns that revision.
func (e *Etcd) Compact(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := ctx10s()
	defer cancel()
	c := e.Client()
	r, err := c.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatalf("etcdtest: get revision: %v", err)
	}
	rev := r.Header.Revision
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact at %d: %v", rev, err)
	}
	return rev
}

// V2Put sets a key in the v2 keyspace (optionally with a TTL) and returns
// the new etcd index.
func (e *Etcd) V2Put(t testing.TB, key, value string) uint64 {
	t.Helper()
	idx, err := e.V2Do(http.MethodPut, key, url.Values{"value": {value}})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return idx
}

// V2Delete removes a key (or, with dir, a directory recursively) from the v2 keyspace.
func (e *Etcd) V2Delete(t testing.TB, key string, dir bool) {
	t.Helper()
	form := url.Values{}
	if dir {
		form.Set("recursive", "true")
	}
	if _, err := e.V2Do(http.MethodDelete, key, form); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
}

// V2Do sends one v2 keys API request and returns the resulting
// X-Etcd-Index. It does not use t, so goroutines may call it.
func (e *Etcd) V2Do(method, key string, form url.Values) (uint64, error) {
	u := e.ClientURL + "/v2/keys" + (&url.URL{Path: key}).EscapedPath()
	var body io.Reader
	if method == http.MethodDelete {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("v2 %s %q: %w", method, key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return 0, fmt.Errorf("v2 %s %q: %s: %s", method, key, resp.Status, b)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	return idx, nil
}

// FreePort returns a TCP port that was free a moment ago, outside the
// ephemeral range: while a member is down for Restart, a client retrying
// 127.0.0.1:port could otherwise be given that very port as its own and
// connect to itself (TCP simultaneous open), holding the port so that the
// member cannot bind it again (seen: "bind: address already in use").
func FreePort(t testing.TB) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
