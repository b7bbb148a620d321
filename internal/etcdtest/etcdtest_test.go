package etcdtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// A TLS member serves the package's client certificate, and refuses a
// client for the right reason: without a client certificate the member
// itself refuses the handshake (a TLS alert from the server, with the CA
// trusted so that nothing else can fail), and a client that does not trust
// the package's CA refuses the member's certificate.
func TestTLS(t *testing.T) {
	e := StartWith(t, Options{TLS: true})
	e.Put(t, "/tls", "ok")
	full, err := e.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	get := func(tc *tls.Config) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get(e.ClientURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(full); err != nil {
		t.Fatalf("with the CA and the client certificate: %v", err)
	}

	noCert := full.Clone()
	noCert.Certificates = nil
	err = get(noCert)
	// "remote error": the alert came from the member (certificate required).
	if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
		t.Errorf("without a client certificate: %v; want the member's TLS alert", err)
	} else {
		t.Logf("without a client certificate: %v", err)
	}

	noCA := full.Clone()
	noCA.RootCAs = x509.NewCertPool()
	var unknown x509.UnknownAuthorityError
	if err := get(noCA); !errors.As(err, &unknown) {
		t.Errorf("not trusting the CA: %v; want x509's unknown authority", err)
	}
}
