package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// BenchmarkAB weighs one special path against its absence on the real
// binaries, as docs/performance.md's "what each special path buys" table
// was measured. AB_BINS names directories (comma-separated, the first is
// the reference), each holding proxymatic-sync and proxymatic-reload built
// from one variant of the tree as TestMain builds them (CGO_ENABLED=0
// -trimpath -ldflags='-s -w'). Each iteration runs
// `proxymatic-sync --once --dry-run > services.yaml` then
// `proxymatic-reload --dry-run --validate=false --haproxy` once with every
// variant in turn, so the VM's minute-to-minute drift and the other
// engineers' load fall on all of them alike; medians of the wall times
// are reported per variant, and for each variant after the first the
// median of its per-iteration difference to the first, in per cent
// (AB_APPS apps × 4 tasks, default 10,000).
func BenchmarkAB(b *testing.B) {
	dirs := strings.Split(os.Getenv("AB_BINS"), ",")
	if dirs[0] == "" {
		b.Skip("AB_BINS is not set: nothing to compare")
	}
	n := 10000
	if v := os.Getenv("AB_APPS"); v != "" {
		fmt.Sscan(v, &n)
	}
	m := marathontest.New(b)
	m.SetAppsJSON(cluster(n, 4))
	debug.FreeOSMemory()
	work := tempDir(b)
	ctx := context.Background()
	// AB_ONLY=sync or reload runs only that binary (reload then reads the
	// file the reference's sync wrote once), for more samples a minute
	// when a variant changes only one of them.
	only := os.Getenv("AB_ONLY")
	type walls struct{ sync, reload, both, syncCPU, reloadCPU []time.Duration }
	res := make([]walls, len(dirs))
	syncOnce := func(dir string) usage {
		out, err := os.Create(filepath.Join(work, "services.yaml"))
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		u, err := runIn(ctx, dir, out, "proxymatic-sync", "--once", "--dry-run", "--marathon", m.URL, "--status-endpoint", "")
		if err != nil {
			b.Fatal(err)
		}
		return u
	}
	if only == "reload" {
		syncOnce(dirs[0])
	}
	for b.Loop() {
		for i, dir := range dirs {
			var us, ur usage
			if only != "reload" {
				us = syncOnce(dir)
			}
			if only != "sync" {
				var err error
				ur, err = runIn(ctx, dir, io.Discard, "proxymatic-reload", "--dry-run", "--validate=false", "--haproxy",
					"--services", filepath.Join(work, "services.yaml"), "--output-dir", filepath.Join(work, "out"),
					"--run-dir", filepath.Join(work, "run"), "--status-endpoint", "")
				if err != nil {
					b.Fatal(err)
				}
			}
			res[i].sync = append(res[i].sync, max(us.wall, 1))
			res[i].reload = append(res[i].reload, max(ur.wall, 1))
			res[i].both = append(res[i].both, us.wall+ur.wall)
			res[i].syncCPU = append(res[i].syncCPU, max(us.cpu, 1))
			res[i].reloadCPU = append(res[i].reloadCPU, max(ur.cpu, 1))
		}
	}
	median := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	// Each variant against the reference run just before it, iteration by
	// iteration: the median of those ratios is steadier than a ratio of
	// medians when the machine's speed drifts.
	ratio := func(v, ref []time.Duration) float64 {
		r := make([]float64, len(v))
		for k := range v {
			r[k] = float64(v[k]) / float64(ref[k])
		}
		slices.Sort(r)
		return 100 * (r[len(r)/2] - 1)
	}
	for i, dir := range dirs {
		name := filepath.Base(dir)
		b.ReportMetric(median(res[i].sync), name+"-sync-ms")
		b.ReportMetric(median(res[i].reload), name+"-reload-ms")
		b.ReportMetric(median(res[i].both), name+"-both-ms")
		b.ReportMetric(median(res[i].syncCPU), name+"-sync-cpu-ms")
		b.ReportMetric(median(res[i].reloadCPU), name+"-reload-cpu-ms")
		if i > 0 {
			b.ReportMetric(ratio(res[i].sync, res[0].sync), name+"-sync-%")
			b.ReportMetric(ratio(res[i].reload, res[0].reload), name+"-reload-%")
			b.ReportMetric(ratio(res[i].both, res[0].both), name+"-both-%")
		}
	}
}

// runIn is run with the binaries of dir.
func runIn(ctx context.Context, dir string, stdout io.Writer, name string, args ...string) (usage, error) {
	return run(ctx, stdout, filepath.Join(dir, name), args...)
}
