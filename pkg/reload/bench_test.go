package reload

import (
	"testing"
	"time"
)

// BenchmarkSwitchLatency measures, per proxy, the time from the rename of
// services.yaml to the first response from the service's new backend
// (fresh connections, no other load). Reported as p50-ms and p99-ms.
// "haproxy" is the runtime-API path, "haproxy-reload" the reload path.
//
//	go test -run '^$' -bench SwitchLatency -benchtime 20x ./pkg/reload
func BenchmarkSwitchLatency(b *testing.B) {
	for _, tc := range switchCases(b) {
		m := tc.m
		b.Run(tc.name, func(b *testing.B) {
			bs := newBackends(b, 4)
			h := startAgent(b, m, tc.templateDir, nil)
			h.write(service(h.port, bs[0]))
			if err := h.waitApplied(); err != nil {
				b.Fatal(err)
			}
			c := h.client(m)
			c.eventually(b, bs[0].name, 10*time.Second)
			var took []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				next := bs[(i+1)%len(bs)]
				start := time.Now()
				h.write(service(h.port, next))
				c.eventually(b, next.name, 10*time.Second)
				took = append(took, time.Since(start))
				b.StopTimer()
				if err := h.waitApplied(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(percentile(took, .5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(took, .99).Microseconds())/1000, "p99-ms")
		})
	}
}
