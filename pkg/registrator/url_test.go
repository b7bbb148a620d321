package registrator

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want Config
	}{
		{"etcd://localhost:4001/services", Config{API: V2, Endpoints: []string{"localhost:4001"}, Prefix: "/services"}},
		{"etcd3://a:1,b:2/svc/prod/", Config{API: V3, Endpoints: []string{"a:1", "b:2"}, Prefix: "/svc/prod"}},
		{"etcd3s://u:p%40ss@[::1]:2379/x", Config{API: V3, TLS: true, Endpoints: []string{"[::1]:2379"}, Prefix: "/x", Username: "u", Password: "p@ss"}},
		{"etcds://h", Config{API: V2, TLS: true, Endpoints: []string{"h:2379"}}},
		{"ETCD://h:1/", Config{API: V2, Endpoints: []string{"h:1"}}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if got.API != tt.want.API || got.TLS != tt.want.TLS || got.Prefix != tt.want.Prefix ||
			got.Username != tt.want.Username || got.Password != tt.want.Password ||
			strings.Join(got.Endpoints, ",") != strings.Join(tt.want.Endpoints, ",") {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ in, mention string }{
		{"localhost:4001/services", "missing scheme"},
		{"http://h:1/x", `scheme "http"`},
		{"etcd:///x", "no endpoint"},
		{"etcd://h:1,,h:2/x", "stray comma"},
		{"etcd://h:99999/x", `port "99999"`},
		{"etcd://h:abc/x", `port "abc"`},
		{"etcd://::1:2379/x", "bracketed"},
		{"etcd://:2379/x", "missing host"},
		{"etcd://h:1/x?y=1", "query"},
		{"etcd3://admin:s3cret%zz@h:1/x", "badly escaped"},
		{"etcd://h:1/a//b", "empty path segment"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", tt.in)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParseURL(%q) = %q, want it to mention %q", tt.in, err, tt.mention)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseURL(%q) error leaks the password: %q", tt.in, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := ParseURL("etcd3://admin:s3cret@h:1,g:2/services")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Redacted(), "etcd3://admin:xxxxx@h:1,g:2/services"; got != want {
		t.Errorf("Redacted() = %q, want %q", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{URL: "etcd://h:1/x", Cert: "/c.pem"}); err == nil || !strings.Contains(err.Error(), "together") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := New(Options{URL: "etcd://h:1/x", CACert: "/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), "ETCD_CA_CERT") {
		t.Errorf("missing CA file: %v", err)
	}
	s, err := New(Options{URL: "etcd3://h:1/x"})
	if err != nil || s.Name() != "registrator" || s.tls != nil {
		t.Errorf("plain etcd3: %v %v", s, err)
	}
	if s, err := New(Options{URL: "etcd3s://h:1/x"}); err != nil || s.tls == nil {
		t.Errorf("etcd3s must use TLS: %v", err)
	}
}
