package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// BenchmarkHostileReplicaRSS is the memory side of issue 18's hostile
// replica: the first replica answers a small gzip body that expands to
// 512 MiB — one app whose ignored "env" value is a single 512 MiB string —
// the second a small, valid cluster. `proxymatic-sync --once --dry-run`
// must fail the first over at --marathon-max-body and publish the second;
// peak-RSS-MB is its peak resident memory for each cap. Without a cap (the
// issue's figures) the same answer took sync to 2.4 GB.
//
//	go test -run '^$' -bench HostileReplicaRSS -benchtime 1x ./bench/
func BenchmarkHostileReplicaRSS(b *testing.B) {
	const expanded = 512 << 20
	bomb := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		zw.Write([]byte(`{"apps":[{"id":"/bomb","env":{"k":"`))
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for range expanded >> 20 {
			if _, err := zw.Write(chunk); err != nil {
				return // the client gave up: the cap worked
			}
		}
		zw.Write([]byte(`"}}]}`))
		zw.Close()
	})
	for _, limit := range []string{"16MiB", "64MiB", "256MiB"} {
		b.Run("max-body="+limit, func(b *testing.B) {
			bad := httptest.NewServer(bomb)
			b.Cleanup(bad.Close)
			good := marathontest.New(b)
			good.SetAppsJSON(cluster(100, 4))
			st := statsOf{name: "sync"}
			for b.Loop() {
				var out bytes.Buffer
				u, err := run(context.Background(), &out, "proxymatic-sync", "--once", "--dry-run", "--status-endpoint", "",
					"--marathon", bad.URL+","+good.URL, "--marathon-max-body", limit, "--marathon-timeout", "60s")
				if err != nil {
					b.Fatal(err)
				}
				if got := bytes.Count(out.Bytes(), []byte("\n- name: ")); got != 100 {
					b.Fatalf("%d services published, want the healthy replica's 100", got)
				}
				st.add(u)
			}
			st.report(b)
			b.ReportMetric(float64(expanded)/(1<<20), "hostile-expanded-MB")
		})
	}
}
