package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServesTheCacheReadOnly(t *testing.T) {
	dir := t.TempDir()
	// The GOPROXY layout, as the module cache keeps it (upper case escaped).
	p := filepath.Join(dir, "github.com", "!some", "mod", "@v")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "v1.0.0.mod"), []byte("module github.com/Some/mod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(dir))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/github.com/!some/mod/@v/v1.0.0.mod")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET a cached .mod: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/github.com/!some/mod/@v/v9.9.9.mod")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a missing version: %d, want 404 (go then reports it missing)", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/github.com/!some/mod/@v/v1.0.0.mod", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "10.0.0.1:0"} {
		if err := run(context.Background(), t.TempDir(), addr); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("listen %s: %v, want a loopback error", addr, err)
		}
	}
	if err := run(context.Background(), filepath.Join(t.TempDir(), "none"), "127.0.0.1:0"); err == nil {
		t.Error("a missing cache directory was served")
	}
}
