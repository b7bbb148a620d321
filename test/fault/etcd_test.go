package fault

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/etcdtest"
)

// etcd is restarted (killed hard, as a crash) while the daemon watches it,
// for both API versions: the file keeps its bytes meanwhile, and changes
// made after the restart reach it without restarting the daemon.
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

			e.Stop()
			never(t, 2*time.Second, "file changed while etcd was down", func() bool { return !fileEquals(s.out, good) })
			s.alive(t)
			e.Restart()
			put("/services/web@10001/node2:web:80", "10.0.0.2:31002")
			s.waitFile(t, 20*time.Second, "10.0.0.1", "10.0.0.2")
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
// while its watch is cut (etcd down): the daemon re-lists and converges on
// the current keys, deletions included.
func TestEtcdCompaction(t *testing.T) {
	e := etcdtest.Start(t)
	for i := 1; i <= 3; i++ {
		e.Put(t, fmt.Sprintf("/services/web@10001/node%d:web:80", i), fmt.Sprintf("10.0.0.%d:31000", i))
	}
	s := startSync(t, "", "--registrator", "etcd3://"+e.Endpoint+"/services")
	s.waitFile(t, 15*time.Second, "10.0.0.1", "10.0.0.2", "10.0.0.3")

	// Bring etcd down, restart it and write and compact before the
	// daemon's watch is back: it must resume from a compacted revision.
	e.Stop()
	e.Restart()
	e.Delete(t, "/services/web@10001/node1:web:80")
	for i := range 50 {
		e.Put(t, "/services/churn@10002/node9:churn:80", fmt.Sprintf("10.0.1.%d:31000", i%200+1))
	}
	e.Put(t, "/services/web@10001/node4:web:80", "10.0.0.4:31000")
	e.Compact(t)
	e.Put(t, "/services/web@10001/node5:web:80", "10.0.0.5:31000")
	b := s.waitFile(t, 20*time.Second, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.1.50")
	eventually(t, 10*time.Second, "deleted key gone from the file", func() bool {
		b = readFile(t, s.out)
		return !bytes.Contains(b, []byte("ip: 10.0.0.1\n"))
	})
	if m := metric(t, s.status, "proxymatic_sync_file_write_errors_total"); m > 0 {
		t.Fatalf("write errors: %v", m)
	}
}
