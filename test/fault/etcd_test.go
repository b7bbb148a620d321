package fault

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/etcdtest"
)

// etcd is restarted (killed hard, as a crash) while the daemon watches it,
// for both API versions: the daemon notices the outage (it counts a failure
// and logs it; etcd stays down until it has), the file keeps its bytes
// meanwhile, and after the restart the daemon reads everything again and
// changes made since reach the file without restarting the daemon.
func TestEtcdRestartMidWatch(t *testing.T) {
	for _, v := range []string{"etcd", "etcd3"} {
		t.Run(v, func(t *testing.T) {
			e := etcdtest.Start(t)
			put := func(k, val string) {
				if v == "etcd3" {
					e.Put(t, k, val)
				} else {
					e.V2Put(t, k, val)
				}
			}
			put("/services/web@10001/node1:web:80", "10.0.0.1:31001")
			s := startSync(t, "", "--registrator", v+"://"+e.Endpoint+"/services")
			good := s.waitFile(t, 15*time.Second, "10.0.0.1")

			failures := metric(t, s.status, "proxymatic_registrator_failures_total")
			reads := metric(t, s.status, "proxymatic_registrator_reads_total")
			e.Stop()
			// The daemon probes a quiet watch every 5 s: etcd stays down
			// until it has seen the outage.
			eventually(t, 30*time.Second, "the daemon to count etcd's outage", func() bool {
				s.alive(t)
				return metric(t, s.status, "proxymatic_registrator_failures_total") > failures
			})
			if !strings.Contains(s.log.String(), "etcd unavailable; keeping the last state") {
				t.Error("the outage is not logged")
			}
			never(t, 2*time.Second, "file changed while etcd was down", func() bool { return !fileEquals(s.out, good) })
			s.alive(t)
			e.Restart()
			put("/services/web@10001/node2:web:80", "10.0.0.2:31002")
			s.waitFile(t, 20*time.Second, "10.0.0.1", "10.0.0.2")
			if got := metric(t, s.status, "proxymatic_registrator_reads_total"); got <= reads {
				t.Errorf("no full read after the outage: reads %v -> %v", reads, got)
			}
		})
	}
}

// etcd is unreachable when the daemon starts: it starts anyway, /status
// says INITIALIZING and nothing is written; once etcd is up the file
// appears and /status turns OK, with no restart.
func TestEtcdUnreachableAtStartup(t *testing.T) {
	e := etcdtest.Start(t)
	e.Put(t, "/services/web@10001/node1:web:80", "10.0.0.1:31001")
	e.Stop()
	s := startSync(t, "", "--registrator", "etcd3://"+e.Endpoint+"/services")
	never(t, 3*time.Second, "status other than 503 INITIALIZING while etcd is down", func() bool {
		s.alive(t)
		code, body := get(s.status + "/status")
		return code != http.StatusServiceUnavailable || body != "INITIALIZING\n"
	})
	if _, err := os.Stat(s.out); !os.IsNotExist(err) {
		t.Fatalf("file written before etcd answered: %v", err)
	}
	e.Restart()
	s.waitFile(t, 20*time.Second, "10.0.0.1")
	eventually(t, 5*time.Second, "status OK", func() bool { return s.statusCode() == http.StatusOK })
}

// The v3 history is compacted past the revision the daemon watches from,
// while its watch is cut: the daemon finds its history gone, reads
// everything again (proxymatic_registrator_rereads_total, and its log line)
// and converges on the current keys, deletions included.
//
// The daemon reaches etcd through a TCP proxy the test can cut. The cut
// starts right after one of the daemon's health probes (every 5 s) has been
// answered and lasts only for the writes and the compaction, so the session
// survives it: etcd's client reconnects the watch by itself and resumes it
// from its last revision, which is compacted by then. (Killing etcd
// instead, the daemon's probe sometimes noticed the outage first and
// started a fresh session, which never meets the compaction: the test then
// passed without any re-read.)
func TestEtcdCompaction(t *testing.T) {
	e := etcdtest.Start(t)
	for i := 1; i <= 3; i++ {
		e.Put(t, fmt.Sprintf("/services/web@10001/node%d:web:80", i), fmt.Sprintf("10.0.0.%d:31000", i))
	}
	cut := newCutProxy(t, e.Endpoint)
	s := startSync(t, "", "--registrator", "etcd3://"+cut.addr+"/services")
	s.waitFile(t, 15*time.Second, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	if got := metric(t, s.status, "proxymatic_registrator_rereads_total"); got > 0 {
		t.Fatalf("re-reads before the compaction: %v", got)
	}

	cut.afterProbe(t)
	cut.cut()
	e.Delete(t, "/services/web@10001/node1:web:80")
	for i := range 50 {
		e.Put(t, "/services/churn@10002/node9:churn:80", fmt.Sprintf("10.0.1.%d:31000", i%200+1))
	}
	e.Put(t, "/services/web@10001/node4:web:80", "10.0.0.4:31000")
	e.Compact(t)
	e.Put(t, "/services/web@10001/node5:web:80", "10.0.0.5:31000")
	cut.resume()

	b := s.waitFile(t, 20*time.Second, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.1.50")
	eventually(t, 10*time.Second, "deleted key gone from the file", func() bool {
		b = readFile(t, s.out)
		return !bytes.Contains(b, []byte("ip: 10.0.0.1\n"))
	})
	if got := metric(t, s.status, "proxymatic_registrator_rereads_total"); got < 1 {
		t.Errorf("the daemon did not re-read after the compaction (rereads %v):\n%s", got, tail(s.log.String(), 2<<10))
	}
	if !strings.Contains(s.log.String(), "watch history gone; reading everything again") {
		t.Error("the re-read is not logged")
	}
	if m := metric(t, s.status, "proxymatic_sync_file_write_errors_total"); m > 0 {
		t.Fatalf("write errors: %v", m)
	}
}

// cutProxy forwards TCP connections to target and can cut them all (and
// refuse new ones) for a while. It notes when the client last sent and
// the server last answered, to find the daemon's quiet moments.
type cutProxy struct {
	addr   string
	target string
	ln     net.Listener

	mu       sync.Mutex
	conns    []net.Conn
	down     bool
	lastUp   time.Time // client -> etcd
	lastDown time.Time // etcd -> client
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), target: target, ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.cut()
	})
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn, last *time.Time) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				*last = time.Now()
				p.mu.Unlock()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
			if err != nil {
				dst.Close()
				src.Close()
				return
			}
		}
	}
	go pipe(u, c, &p.lastUp)
	go pipe(c, u, &p.lastDown)
}

// cut closes every connection and refuses new ones until resume.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// afterProbe returns once the client has been quiet for a second and then
// sent a request (the daemon's probe of a quiet watch) that etcd answered.
func (p *cutProxy) afterProbe(t *testing.T) {
	t.Helper()
	var quietSince time.Time
	eventually(t, 15*time.Second, "a quiet second on the watch", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		quietSince = time.Now()
		return time.Since(p.lastUp) > time.Second && time.Since(p.lastDown) > time.Second
	})
	eventually(t, 15*time.Second, "the daemon's next probe, answered", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastUp.After(quietSince) && p.lastDown.After(p.lastUp) && time.Since(p.lastDown) > 50*time.Millisecond
	})
}
