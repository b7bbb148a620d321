package fault

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncd is a running proxymatic-sync.
type syncd struct {
	*proc
	out    string // services.yaml
	status string // http://127.0.0.1:port
}

// startSync runs proxymatic-sync writing to out (a fresh temp file when
// empty), with a 1 s refresh so that recoveries happen quickly.
func startSync(t testing.TB, out string, args ...string) *syncd {
	t.Helper()
	if out == "" {
		out = filepath.Join(t.TempDir(), "services.yaml")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	all := append([]string{"--output", out, "--status-endpoint", addr, "--refresh-interval", "1"}, args...)
	s := &syncd{proc: start(t, binSync, all), out: out, status: "http://" + addr}
	eventually(t, 10*time.Second, "sync status endpoint up", func() bool {
		s.alive(t)
		code, _ := get(s.status + "/status")
		return code != 0
	})
	return s
}

func (s *syncd) statusCode() int { c, _ := get(s.status + "/status"); return c }

// waitFile waits until the file exists and contains every string.
func (s *syncd) waitFile(t testing.TB, within time.Duration, contains ...string) []byte {
	t.Helper()
	eventually(t, within, fmt.Sprintf("%s containing %q", s.out, contains), func() bool {
		s.alive(t)
		b, err := os.ReadFile(s.out)
		if err != nil {
			return false
		}
		for _, c := range contains {
			if !strings.Contains(string(b), c) {
				return false
			}
		}
		return true
	})
	return readFile(t, s.out)
}

// flaky is a TCP forwarder in front of a server that can be taken down
// (listener closed, connections cut: clients get "connection refused") and
// brought back on the same address.
type flaky struct {
	t      testing.TB
	target string
	addr   string
	URL    string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newFlaky(t testing.TB, targetURL string) *flaky {
	t.Helper()
	f := &flaky{t: t, target: strings.TrimPrefix(targetURL, "http://"), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.URL = "http://" + f.addr
	f.serve(ln)
	t.Cleanup(f.Down)
	return f
}

func (f *flaky) serve(ln net.Listener) {
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.pipe(c)
		}
	}()
}

func (f *flaky) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", f.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	if f.ln == nil {
		f.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	f.conns[c], f.conns[up] = true, true
	f.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, c)
	delete(f.conns, up)
	f.mu.Unlock()
}

// Down closes the listener and every connection through it.
func (f *flaky) Down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
		delete(f.conns, c)
	}
}

// Up listens again on the same address.
func (f *flaky) Up() {
	f.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			f.serve(ln)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("flaky: listen again on %s: %v", f.addr, err)
}

// refused reports whether a connection to the address is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

var _ = http.StatusOK
