package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBackendNamesItself(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, "web-7", addr) }()

	var body string
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/x")
		if err != nil {
			if i > 200 {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Backend") != "web-7" {
			t.Errorf("X-Backend = %q, want web-7", resp.Header.Get("X-Backend"))
		}
		body = string(b)
		break
	}
	if !strings.Contains(body, "hello from web-7 ("+addr+")") || !strings.Contains(body, "/x") {
		t.Errorf("body = %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

func TestBackendDelay(t *testing.T) {
	h := handler("web-8", "127.0.0.1:1")
	for _, bad := range []string{"forever", "-1s", "11s"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/?delay="+bad, nil))
		if w.Code != http.StatusBadRequest {
			t.Errorf("delay=%s: status %d, want 400", bad, w.Code)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/slow?delay=20ms", nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "hello from web-8") {
		t.Errorf("delay=20ms: %d %q", w.Code, w.Body.String())
	}
	// A client that goes away is not waited for.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/?delay=10s", nil).WithContext(ctx))
	if w.Body.Len() != 0 {
		t.Errorf("answered a request whose client went away: %q", w.Body.String())
	}
}
