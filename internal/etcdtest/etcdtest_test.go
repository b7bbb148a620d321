package etcdtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartPutRestartCompact(t *testing.T) {
	e := Start(t)
	e.Put(t, "/a", "1")
	if idx := e.V2Put(t, "/b/c", "2"); idx == 0 {
		t.Fatal("v2 put returned no X-Etcd-Index")
	}
	e.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := e.Client().Get(ctx, "/a")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "1" {
		t.Fatalf("after restart: %v %v", r, err)
	}
	resp, err := http.Get(e.ClientURL + "/v2/keys/b/c")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("v2 key lost across restart: %v %v", resp, err)
	}
	resp.Body.Close()
	rev := e.Compact(t)
	if _, err := e.Client().Get(ctx, "/a", clientv3.WithRev(rev-1)); err == nil {
		t.Fatal("read below the compacted revision succeeded")
	}
	e.Stop()
	if e.healthy() {
		t.Fatal("healthy after Stop")
	}
}

func TestTLS(t *testing.T) {
	e := StartWith(t, Options{TLS: true})
	e.Put(t, "/tls", "ok")
	// Without a client certificate the member refuses.
	if resp, err := http.Get(e.ClientURL + "/health"); err == nil {
		resp.Body.Close()
		t.Fatal("plain client reached a TLS member")
	}
}
