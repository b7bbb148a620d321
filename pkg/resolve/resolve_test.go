package resolve

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// table answers from a map and counts its lookups; block makes a host hang
// until the lookup's context ends.
type table struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	block map[string]bool
	calls map[string]int
}

func (t *table) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	t.mu.Lock()
	t.calls[host]++
	a, ok := t.addrs[host]
	block := t.block[host]
	t.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if !ok {
		return nil, errors.New("no such host")
	}
	return a, nil
}

func (t *table) set(host string, addrs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if addrs == nil {
		delete(t.addrs, host)
		return
	}
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	t.addrs[host] = as
}

func newTable() *table {
	return &table{addrs: map[string][]netip.Addr{}, block: map[string]bool{}, calls: map[string]int{}}
}

func TestResolve(t *testing.T) {
	tb := newTable()
	tb.set("a.example", "10.0.0.9", "2001:db8::1", "10.0.0.2") // lowest IPv4 wins
	tb.set("b.example", "2001:db8::9", "2001:db8::3")          // else the lowest IPv6
	var logs bytes.Buffer
	c := New(Options{Resolver: tb, Name: "test", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	clock := time.Unix(1000, 0)
	c.now = func() time.Time { return clock }
	ctx := context.Background()

	got := c.Resolve(ctx, []string{"a.example", "b.example", "gone.example", "a.example"})
	want := map[string]netip.Addr{"a.example": netip.MustParseAddr("10.0.0.2"), "b.example": netip.MustParseAddr("2001:db8::3")}
	if len(got) != 2 || got["a.example"] != want["a.example"] || got["b.example"] != want["b.example"] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "gone.example") {
		t.Errorf("the unresolvable name is not logged:\n%s", logs.String())
	}

	// Within Fresh: answered from the cache, no new lookup.
	c.Resolve(ctx, []string{"a.example"})
	if tb.calls["a.example"] != 1 {
		t.Errorf("a.example looked up %d times within Fresh, want 1", tb.calls["a.example"])
	}
	// After it: looked up again, and a new answer is taken.
	clock = clock.Add(2 * time.Second)
	tb.set("a.example", "10.0.0.7")
	if got := c.Resolve(ctx, []string{"a.example"}); got["a.example"] != netip.MustParseAddr("10.0.0.7") || tb.calls["a.example"] != 2 {
		t.Errorf("re-resolved to %v after %d lookups, want 10.0.0.7 after 2", got, tb.calls["a.example"])
	}
	// A failed lookup keeps the last good address while it is young
	// enough, then the name is left out.
	clock = clock.Add(2 * time.Second)
	tb.set("a.example")
	if got := c.Resolve(ctx, []string{"a.example"}); got["a.example"] != netip.MustParseAddr("10.0.0.7") {
		t.Errorf("failed lookup: %v, want the last good address", got)
	}
	clock = clock.Add(11 * time.Minute)
	if got := c.Resolve(ctx, []string{"a.example"}); len(got) != 0 {
		t.Errorf("failed lookup past Stale: %v, want nothing", got)
	}
}

// One call is bounded by Timeout however many lookups hang; the others
// still answer.
func TestResolveBounded(t *testing.T) {
	tb := newTable()
	tb.set("ok.example", "10.0.0.1")
	tb.block["hang.example"] = true
	c := New(Options{Resolver: tb, Timeout: 100 * time.Millisecond, Workers: 2, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan map[string]netip.Addr)
	go func() { done <- c.Resolve(context.Background(), []string{"hang.example", "ok.example"}) }()
	select {
	case got := <-done:
		if len(got) != 1 || got["ok.example"] != netip.MustParseAddr("10.0.0.1") {
			t.Errorf("got %v, want ok.example only", got)
		}
	case <-time.After(30 * time.Second): // a safety net: the bound is 100ms
		t.Fatal("Resolve did not return: not bounded")
	}
}

// Real DNS, as the registrator source uses it: localhost resolves (to the
// IPv4 loopback, preferred), a name under .invalid never does.
func TestResolveSystem(t *testing.T) {
	c := New(Options{Logger: slog.New(slog.DiscardHandler)})
	got := c.Resolve(context.Background(), []string{"localhost", "no-such-host.invalid"})
	if a := got["localhost"]; !a.IsLoopback() {
		t.Errorf("localhost resolved to %v", a)
	}
	if _, ok := got["no-such-host.invalid"]; ok {
		t.Errorf("no-such-host.invalid resolved: %v", got)
	}
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "node-1.example.com": true, "a": true, "x1.y2": true, "1a.example": true,
		"": false, "10.0.0.300": false, "1.2.3.4": false, "a..b": false, "-a.example": false, "a-.example": false,
		"a_b.example": false, "A.example": false, "a b": false, "a\nb": false, "a;b": false, ".a": false, "a.": false,
		strings.Repeat("a", 64) + ".example": false, strings.Repeat("a.", 127) + "a": false,
	} {
		if got := ValidHost(h); got != want {
			t.Errorf("ValidHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// A name that keeps failing is asked again on every call (a source calls on
// every change of its state) but warned about once, when it starts failing;
// when its last good address is given up, that is a warning of its own; once
// it resolves again, a new failure is warned about again.
func TestFailureWarnedOnce(t *testing.T) {
	tb := newTable()
	tb.set("a.example", "10.0.0.1")
	var logs bytes.Buffer
	c := New(Options{Resolver: tb, Name: "test", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	clock := time.Unix(1000, 0)
	c.now = func() time.Time { return clock }
	ctx := context.Background()
	warnings := func(msg string) int {
		n := 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, msg) {
				n++
			}
		}
		return n
	}
	call := func() map[string]netip.Addr {
		clock = clock.Add(2 * time.Second) // past Fresh: asked again
		return c.Resolve(ctx, []string{"a.example", "gone.example"})
	}

	for range 3 {
		call()
	}
	if n := warnings("does not resolve"); n != 1 {
		t.Errorf("a name failing 3 times warned %d times, want 1:\n%s", n, logs.String())
	}
	if tb.calls["gone.example"] != 3 {
		t.Errorf("gone.example looked up %d times, want 3 (failures are asked again)", tb.calls["gone.example"])
	}

	tb.set("a.example") // fails from now on: its last address stands in
	for range 3 {
		if got := call(); got["a.example"] != netip.MustParseAddr("10.0.0.1") {
			t.Fatalf("stale fallback: %v", got)
		}
	}
	if n := warnings("keeping its last address"); n != 1 {
		t.Errorf("the stale fallback warned %d times over 3 calls, want 1:\n%s", n, logs.String())
	}
	clock = clock.Add(11 * time.Minute) // past Stale: given up, warned
	call()
	call()
	if n := warnings("does not resolve"); n != 2 {
		t.Errorf("giving up the last address: %d warnings that it does not resolve, want 2 in all:\n%s", n, logs.String())
	}

	tb.set("gone.example", "10.0.0.9") // back
	if got := call(); got["gone.example"] != netip.MustParseAddr("10.0.0.9") {
		t.Fatalf("resolved again: %v", got)
	}
	tb.set("gone.example")
	call()
	if n := warnings("keeping its last address"); n != 2 {
		t.Errorf("failing again after resolving: %d stale-fallback warnings in all, want 2:\n%s", n, logs.String())
	}
}
