package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// BenchmarkMarathonStorm is issue 14's target, measured on the real
// binary: `proxymatic-sync` as a daemon (--refresh-interval 3600) against
// the stand-in at 10,000 apps × 4 tasks, then a storm of 200 single-task
// changes at 50 per second, each one task's health check failing with its
// real health_status_changed_event. It reports the full reads of /v2/apps
// during the storm, the Marathon bytes served per event (and their share
// of one full read), sync's CPU per event (from the kernel's per-thread
// run time), change → services.yaml renamed, and sync's memory before and
// after 10,000 more events. Run it alone: -benchtime 1x. STORM_PERF=file
// records `perf record -g` of the sync process during the storm into file.
func BenchmarkMarathonStorm(b *testing.B) {
	const (
		n, k   = 10000, 4
		storm  = 200
		rate   = 50 // changes per second
		events = 10000
	)
	apps := marathontest.Generate(n, k)
	for i, a := range apps {
		for j, t := range a.Tasks {
			agent := (i*k + j) % 200
			t.Host = fmt.Sprintf("10.2.%d.%d", agent/256, agent%256)
		}
	}
	m := marathontest.New(b)
	m.SetApps(apps...)
	debug.FreeOSMemory()
	for b.Loop() {
		runStorm(b, m, apps, storm, rate, events)
	}
}

// syncProc is the daemon under measurement.
type syncProc struct {
	cmd    *exec.Cmd
	status string
	logs   bytes.Buffer
}

// cpu is the run time of every thread of the process so far.
func (p *syncProc) cpu(tb testing.TB) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var total time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // a thread that just ended
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// rss is the process's resident set, from /proc.
func (p *syncProc) rss(tb testing.TB) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startSyncDaemon(tb testing.TB, m *marathontest.Server, out string) *syncProc {
	p := &syncProc{status: fmt.Sprintf("127.0.0.1:%d", freePort(tb))}
	ctx, cancel := context.WithCancel(context.Background())
	p.cmd = exec.CommandContext(ctx, filepath.Join(bins, "proxymatic-sync"), "--marathon", m.URL, "--output", out,
		"--refresh-interval", "3600", "--status-endpoint", p.status)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = 15 * time.Second
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		p.cmd.Wait()
		if tb.Failed() {
			tb.Logf("proxymatic-sync output:\n%s", p.logs.Bytes())
		}
	})
	return p
}

// change is one task's health failing, and when the file showed it.
type change struct {
	app, task   string
	block, gone string // the service's first line, and the server line that must go
	pushed      time.Time
	seen        time.Time
	cpu         time.Duration // sync's CPU when the file showed it
}

// visible reports whether the file no longer serves c's task.
func (c *change) visible(file []byte) bool {
	i := bytes.Index(file, []byte(c.block))
	if i < 0 {
		return false
	}
	blk := file[i+len(c.block):]
	if j := bytes.Index(blk, []byte("\n- name: ")); j >= 0 {
		blk = blk[:j]
	}
	return !bytes.Contains(blk, []byte(c.gone))
}

func runStorm(b *testing.B, m *marathontest.Server, apps []*marathontest.App, storm, rate, events int) {
	dir := tempDir(b)
	out := filepath.Join(dir, "services.yaml")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		b.Fatal(err)
	}
	fullBefore, bytesBefore := m.Requests("/v2/apps"), m.BytesServed("apps")
	p := startSyncDaemon(b, m, out)
	waitFor(b, 60*time.Second, "services.yaml written", func() bool { _, err := os.Stat(out); return err == nil })
	waitFor(b, 10*time.Second, "event stream attached", func() bool { return m.Subscribers() > 0 })
	time.Sleep(time.Second) // let start-up settle
	fullReads := m.Requests("/v2/apps") - fullBefore
	fullSize := (m.BytesServed("apps") - bytesBefore) / int64(max(fullReads, 1))
	startRSS := p.rss(b)

	// The storm: 200 different apps, each one task failing.
	changes := make([]*change, storm)
	for i := range changes {
		idx := i * (len(apps) / storm)
		a := apps[idx]
		name := strings.Join(reversed(strings.Split(strings.Trim(a.ID, "/"), "/")), ".")
		t := a.Tasks[0]
		changes[i] = &change{app: a.ID, task: t.ID, block: "- name: " + name + "\n", gone: "port: " + strconv.Itoa(t.Ports[0]) + "\n"}
	}
	alloc0 := metric(b, p.status, "go_memstats_alloc_bytes_total")
	written0 := metric(b, p.status, "proxymatic_sync_file_written_bytes_total")
	gc0 := metric(b, p.status, "go_gc_duration_seconds_count")
	reads0 := m.Requests("/v2/apps")
	served0 := m.BytesServed("apps") + m.BytesServed("app") + m.BytesServed("versions") + m.BytesServed("events")
	cpu0 := p.cpu(b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := 0
		deadline := time.After(60 * time.Second)
		for next < len(changes) {
			select {
			case ev := <-w.Events:
				if filepath.Clean(ev.Name) != out || ev.Op&(fsnotify.Create|fsnotify.Rename|fsnotify.Write) == 0 {
					continue
				}
				at, cpu := time.Now(), p.cpu(b)
				data, err := os.ReadFile(out)
				if err != nil {
					continue
				}
				for next < len(changes) && !changes[next].pushed.IsZero() && changes[next].visible(data) {
					changes[next].seen, changes[next].cpu = at, cpu
					next++
				}
			case <-deadline:
				return
			}
		}
	}()
	var perf *exec.Cmd
	if out := os.Getenv("STORM_PERF"); out != "" {
		perf = exec.Command("perf", "record", "-F", "4999", "-g", "-p", strconv.Itoa(p.cmd.Process.Pid), "-o", out)
		perf.Stderr = os.Stderr
		if err := perf.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	start := time.Now()
	for i, c := range changes {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		c.pushed = time.Now()
		m.SetHealth(c.app, c.task, false)
	}
	<-done
	if perf != nil {
		perf.Process.Signal(syscall.SIGINT)
		perf.Wait()
	}
	for i, c := range changes {
		if c.seen.IsZero() {
			b.Fatalf("change %d (%s) never reached services.yaml", i, c.app)
		}
	}
	stormReads := m.Requests("/v2/apps") - reads0
	allocated := metric(b, p.status, "go_memstats_alloc_bytes_total") - alloc0
	written := metric(b, p.status, "proxymatic_sync_file_written_bytes_total") - written0
	gcs := metric(b, p.status, "go_gc_duration_seconds_count") - gc0
	served := m.BytesServed("apps") + m.BytesServed("app") + m.BytesServed("versions") + m.BytesServed("events") - served0
	var lat, cpus []time.Duration
	prev := cpu0
	for _, c := range changes {
		lat = append(lat, c.seen.Sub(c.pushed))
		cpus = append(cpus, c.cpu-prev)
		prev = c.cpu
	}
	totalCPU := changes[len(changes)-1].cpu - cpu0
	slices.Sort(lat)
	slices.Sort(cpus)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(fullReads), "start-full-reads")
	b.ReportMetric(float64(stormReads), "storm-full-reads")
	b.ReportMetric(float64(served)/float64(storm), "marathon-bytes/event")
	b.ReportMetric(100*float64(served)/float64(storm)/float64(fullSize), "bytes/event-%-of-full-read")
	b.ReportMetric(float64(fullSize)/(1<<20), "full-read-MB")
	b.ReportMetric(pct(cpus, 0.5), "cpu-ms/event-p50")
	b.ReportMetric(float64(totalCPU.Microseconds())/1000/float64(storm), "cpu-ms/event-mean")
	b.ReportMetric(pct(lat, 0.5), "change-to-file-p50-ms")
	b.ReportMetric(pct(lat, 0.99), "change-to-file-p99-ms")
	b.ReportMetric(float64(startRSS)/(1<<20), "rss-start-MB")
	b.ReportMetric(allocated/float64(storm)/1024, "alloc-KB/event")
	b.ReportMetric(gcs, "storm-gc-cycles")
	// Bytes the sync wrote to services.yaml's slot files per change: the
	// tail from the first changed byte (atomicfile.Slots).
	b.ReportMetric(written/float64(storm)/(1<<20), "file-MB-written/event")

	// Memory over 10,000 more events (after 2,000 to warm up): one task of
	// the apps in turn fails, then passes again (so the state it leaves is
	// the state it found: any growth is the sync's, not the cluster's),
	// 500 events a second, coalescing as they come. The heap goal (next_gc:
	// twice the heap live after the last collection) shows whether live
	// memory grows; RSS what a user sees.
	flip := func(i int) {
		a := apps[(i/2*7919)%len(apps)]
		m.SetHealth(a.ID, a.Tasks[1].ID, i%2 == 1)
		if i%500 == 499 {
			time.Sleep(time.Second)
		}
	}
	for i := range 2000 {
		flip(i)
	}
	time.Sleep(time.Second)
	rss := []int64{p.rss(b)}
	goal := []float64{metric(b, p.status, "go_memstats_next_gc_bytes")}
	for i := 2000; i < 2000+events; i++ {
		flip(i)
		if (i-2000)%2500 == 2499 {
			rss = append(rss, p.rss(b))
			goal = append(goal, metric(b, p.status, "go_memstats_next_gc_bytes"))
		}
	}
	time.Sleep(2 * time.Second)
	rss = append(rss, p.rss(b))
	goal = append(goal, metric(b, p.status, "go_memstats_next_gc_bytes"))
	b.ReportMetric(float64(rss[0])/(1<<20), "rss-before-10k-MB")
	b.ReportMetric(float64(rss[len(rss)-1])/(1<<20), "rss-after-10k-MB")
	b.ReportMetric(goal[0]/(1<<20), "heap-goal-before-10k-MB")
	b.ReportMetric(goal[len(goal)-1]/(1<<20), "heap-goal-after-10k-MB")
	b.Logf("heap goal MB every 2,500 events: %.1f", mbf(goal))
	if reads := m.Requests("/v2/apps") - reads0 - stormReads; reads > 0 {
		b.Logf("%d full reads during the 10,000 events", reads)
	}
	b.Logf("latencies ms: p50 %.1f p90 %.1f p99 %.1f max %.1f; cpu/event ms: p50 %.2f p90 %.2f max %.2f; rss MB %v",
		pct(lat, .5), pct(lat, .9), pct(lat, .99), float64(lat[len(lat)-1].Microseconds())/1000,
		pct(cpus, .5), pct(cpus, .9), float64(cpus[len(cpus)-1].Microseconds())/1000, mb(rss))
}

func reversed(s []string) []string {
	slices.Reverse(s)
	return s
}

func mbf(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x / (1 << 20)
	}
	return out
}

func mb(xs []int64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x>>10) / 1024
	}
	return out
}
