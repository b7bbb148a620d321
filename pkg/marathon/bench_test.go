package marathon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// agentDNS resolves the 200 agents marathontest.Generate spreads tasks over.
func agentDNS() fakeResolver {
	r := fakeResolver{}
	for i := range 200 {
		r[fmt.Sprintf("agent-%03d.example.com", i)] = []netip.Addr{netip.AddrFrom4([4]byte{10, 2, byte(i / 256), byte(i % 256)})}
	}
	return r
}

// peakHeap samples HeapInuse while the benchmark runs: the figure to hold
// against the 150 MB budget.
func peakHeap(b *testing.B) (stop func()) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MB")
	}
}

// BenchmarkCompile is one refresh without the network: streaming decode of
// the /v2/apps body, host resolution (cached, as in steady state) and the
// compile rules.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("apps=%d/tasks=4", n), func(b *testing.B) {
			body := marathontest.AppsJSON(marathontest.Generate(n, 4))
			log := slog.New(slog.DiscardHandler)
			dns := newDNSCache(agentDNS(), time.Hour, log)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			stop := peakHeap(b)
			var out []services.Service
			for b.Loop() {
				apps, err := decodeApps(bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				c := compiler{groupSize: 1, log: log, addrs: dns.resolveAll(context.Background(), taskHosts(apps))}
				out = c.compile(apps)
			}
			stop()
			if len(out) != n {
				b.Fatalf("%d services, want %d", len(out), n)
			}
			b.ReportMetric(float64(len(body))/(1<<20), "body-MB")
		})
	}
}

// BenchmarkFetch adds HTTP from the fake Marathon on loopback.
func BenchmarkFetch(b *testing.B) {
	m := marathontest.New(b)
	m.SetAppsJSON(marathontest.AppsJSON(marathontest.Generate(10000, 4)))
	s, err := New(Options{URLs: []string{m.URL}, Resolver: agentDNS(), DNSTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	stop := peakHeap(b)
	for b.Loop() {
		if _, err := s.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	stop()
}

// BenchmarkEventToPublish is the time from Marathon pushing an event to
// Watch publishing the refreshed state (100 apps × 4 tasks).
func BenchmarkEventToPublish(b *testing.B) {
	m := marathontest.New(b)
	m.SetApps(marathontest.Generate(100, 4)...)
	s, err := New(Options{URLs: []string{m.URL}, Resolver: agentDNS(), RefreshInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan struct{}, 1)
	done := make(chan error)
	go func() {
		done <- s.Watch(ctx, func([]services.Service) {
			select {
			case published <- struct{}{}:
			default:
			}
		})
	}()
	<-published
	for m.Subscribers() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// Absorb the refresh the stream's attach triggers.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-published:
	default:
	}
	for b.Loop() {
		m.PushEvent("status_update_event")
		<-published
	}
	cancel()
	<-done
}

// BenchmarkDecode is the streaming decode alone, against the encoding/json
// decoder it replaced (decodeAppsV1, kept in decode_test.go as the fuzz
// reference), to show where a refresh's time goes.
func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		body := marathontest.AppsJSON(marathontest.Generate(n, 4))
		for _, d := range []struct {
			name   string
			decode func(io.Reader) ([]app, error)
		}{{"scanner", decodeApps}, {"encoding-json", decodeAppsV1}} {
			b.Run(fmt.Sprintf("%s/apps=%d/tasks=4", d.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					apps, err := d.decode(bytes.NewReader(body))
					if err != nil || len(apps) != n {
						b.Fatalf("%d apps, %v", len(apps), err)
					}
				}
			})
		}
	}
}

// BenchmarkApplyEventAt10k is one task's health event applied to the state
// of 10,000 apps × 4 tasks and compiled: decode the payload, apply it,
// recompile the app, rebuild its service. No I/O: the logic an event costs
// before the file is written (the daemon's share is in pkg/syncer).
func BenchmarkApplyEventAt10k(b *testing.B) {
	apps := marathontest.Generate(10000, 4)
	decoded, err := decodeApps(bytes.NewReader(marathontest.AppsJSON(apps)))
	if err != nil {
		b.Fatal(err)
	}
	normalize(decoded)
	c := compiler{groupSize: 1, log: slog.New(slog.DiscardHandler), health: newHealthCache(0)}
	l := newLive(c)
	dups := 0
	for i := range decoded {
		l.addListed(&decoded[i], &dups)
	}
	hosts := l.newHosts()
	l.resolved(hosts, newDNSCache(agentDNS(), time.Hour, c.log).resolveAll(context.Background(), hosts))
	l.settle()
	payloads := make([][]byte, 2*len(apps))
	for i, a := range apps {
		for j, alive := range []bool{false, true} {
			payloads[2*i+j] = fmt.Appendf(nil, `{"appId":%q,"instanceId":%q,"version":"2024-03-01T09:59:00.000Z","alive":%v,"eventType":"health_status_changed_event","timestamp":"2024-03-01T10:00:00.000Z"}`,
				a.ID, marathontest.InstanceID(a.Tasks[0].ID), alive)
		}
	}
	b.ReportAllocs()
	changed := 0
	for i := 0; b.Loop(); i++ {
		ev := parseEvent("health_status_changed_event", payloads[(i*2+i/len(apps))%len(payloads)], false)
		var p plan
		l.apply(&ev, &p, c.health)
		if p.full != "" || len(p.fetch) > 0 {
			b.Fatalf("a health event needed a read: %+v", p)
		}
		keys, _ := l.settle()
		changed += len(keys)
	}
	if changed == 0 {
		b.Fatal("no event changed a service")
	}
}
