package main

import (
	"context"
	"io"
	"net"
	"net/http"
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
