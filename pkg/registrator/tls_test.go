package registrator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// TestTLSAndAuth runs both APIs against an etcd that requires client
// certificates, then turns on v3 authentication.
func TestTLSAndAuth(t *testing.T) {
	e := etcdtest.StartWith(t, etcdtest.Options{TLS: true})
	e.Put(t, "/secure/web/h1:web:80", "10.6.0.1:1")
	e.V2Put(t, "/secure/web/h1:web:80", "10.6.0.1:1")
	certs := func(o Options) Options {
		o.CACert, o.Cert, o.Key = e.CACertFile, e.CertFile, e.KeyFile
		return o
	}
	const want = "{web@80/tcp[h1=10.6.0.1:1]}"
	ctx := context.Background()

	// etcds:// by scheme, etcd:// and etcd3:// by the presence of certificates.
	for _, u := range []string{"etcds://", "etcd://", "etcd3s://", "etcd3://"} {
		src, _ := newSource(t, certs(Options{URL: u + e.Endpoint + "/secure"}))
		ss, err := src.Fetch(ctx)
		if err != nil || render(ss) != want {
			t.Errorf("%s with certificates: Fetch = %s, %v; want %s", u, render(ss), err, want)
		}
	}
	// Without the client certificate the member refuses.
	src, _ := newSource(t, Options{URL: "etcd3s://" + e.Endpoint + "/secure", CACert: e.CACertFile, RequestTimeout: time.Second})
	if _, err := src.Fetch(ctx); err == nil {
		t.Error("etcd3s without a client certificate: Fetch succeeded")
	}

	c := e.Client()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.RoleAdd(actx, "root"); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	if _, err := c.UserAdd(actx, "root", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserGrantRole(actx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthEnable(actx); err != nil {
		t.Fatal(err)
	}

	h := start(t, certs(Options{URL: "etcd3s://root:s3cret@" + e.Endpoint + "/secure"}))
	h.rec.waitFor(t, "the state read with user and password", hasRender(want))

	bad, logs := newSource(t, certs(Options{URL: "etcd3s://root:wr0ngpw@" + e.Endpoint + "/secure", RequestTimeout: time.Second}))
	_, err := bad.Fetch(ctx)
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	// Watch keeps retrying and publishes nothing.
	wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer wcancel()
	published := 0
	if err := bad.Watch(wctx, func([]services.Service) { published++ }); err != nil {
		t.Errorf("Watch with a wrong password returned %v, want it to retry until cancelled", err)
	}
	if published != 0 {
		t.Errorf("a source that cannot read published %d states", published)
	}
	for _, text := range []string{err.Error(), logs.String(), h.logs.String()} {
		if strings.Contains(text, "wr0ngpw") || strings.Contains(text, "s3cret") {
			t.Errorf("a password reached an error or log: %s", text)
		}
	}
	if !strings.Contains(logs.String(), "root:xxxxx@") {
		t.Errorf("logs do not name the source by its redacted URL:\n%s", logs.String())
	}
}
