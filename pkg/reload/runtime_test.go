package reload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// checkedService is an http service whose servers HAProxy health-checks,
// so servers added at run time need their check enabled too.
func checkedService(port int, bs ...backend) services.Service {
	s := service(port, bs...)
	s.Mode = services.ModeHTTP
	s.HealthCheck = &services.HealthCheck{Path: "/"}
	return s
}

const haproxyRuntime = `proxymatic_reload_runtime_updates_total{proxy="haproxy"}`
const haproxyReloads = `proxymatic_reload_reloads_total{proxy="haproxy"}`

func metricOr0(h *harness, series string) float64 {
	if !strings.Contains(h.metrics(), series+" ") {
		return 0
	}
	return metricValue(h.t, h.metrics(), series)
}

// TestScaleWithoutReload makes 20 scale changes (a server added, another
// removed, weights changed) under a load of fresh connections: no request
// fails, HAProxy keeps the same master generation and worker, each new
// server answers, each removed one stops answering, weights read back from
// HAProxy. A change to anything but servers still reloads, keeping the
// servers' ids.
func TestScaleWithoutReload(t *testing.T) {
	bs := newBackends(t, 5)
	h := startAgent(t, withHAProxy, "", nil)
	h.write(checkedService(h.port, bs[0], bs[1]))
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	c := h.client(withHAProxy)
	c.eventually(t, bs[1].name, 10*time.Second)
	m := haproxy.NewMaster(testbin.Require(t, "haproxy"), h.cfg.RunDir, supervise.DefaultBackoff, nil) // only its sockets are used
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runtime0, reloads0 := metricOr0(h, haproxyRuntime), metricValue(t, h.metrics(), haproxyReloads)

	l := startLoad(c, 3)
	var took []time.Duration
	backendName := fmt.Sprintf("web-%d", h.port)
	for i := 1; i <= 20; i++ {
		// Servers i and i+1: i+1 is new, i-1 leaves.
		cur, next, gone := bs[i%len(bs)], bs[(i+1)%len(bs)], bs[(i-1)%len(bs)]
		weight := services.DefaultWeight
		if i%3 == 0 {
			weight = 250 // HAProxy 64
		}
		cur.srv.Weight = weight
		start := time.Now()
		h.write(checkedService(h.port, cur, next))
		c.eventually(t, next.name, 10*time.Second)
		took = append(took, time.Since(start))
		if err := h.waitApplied(); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		for range 10 {
			if got, err := c.get(); err != nil || got == gone.name {
				t.Fatalf("change %d: removed server %s still answers (%q, %v)", i, gone.name, got, err)
			}
		}
		states, err := m.ServerState(ctx, backendName)
		if err != nil {
			t.Fatal(err)
		}
		// A removed server still finishing a request drains in maintenance.
		states = slices.DeleteFunc(states, haproxy.ServerState.Maint)
		if len(states) != 2 || !slices.ContainsFunc(states, func(s haproxy.ServerState) bool {
			return s.Port == cur.srv.Port && s.Weight == haproxy.Weight(weight) && s.ID == haproxy.ServerID(cur.srv)
		}) {
			t.Fatalf("change %d: HAProxy runs %+v", i, states)
		}
	}
	ok, failed, errs := l.finish()
	t.Logf("haproxy runtime: %d requests, %d failed; rename to first response from the added server: p50 %v, p99 %v, max %v",
		ok+failed, failed, percentile(took, .5), percentile(took, .99), slices.Max(took))
	if failed > 0 {
		t.Fatalf("%d of %d requests failed during 20 scale changes: %v", failed, ok+failed, errs)
	}
	after, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.MasterReloads != before.MasterReloads || !slices.Equal(after.Workers, before.Workers) || len(after.OldWorkers) > 0 {
		t.Fatalf("HAProxy reloaded: %+v -> %+v", before, after)
	}
	if got := metricValue(t, h.metrics(), haproxyRuntime) - runtime0; got != 20 {
		t.Errorf("runtime updates counted: %v, want 20", got)
	}
	if got := metricValue(t, h.metrics(), haproxyReloads) - reloads0; got != 0 {
		t.Errorf("reloads counted: %v, want 0", got)
	}
	// What is on disk is what runs: rendered from the last file.
	cfg, err := os.ReadFile(filepath.Join(h.cfg.RunDir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	last := []backend{bs[20%len(bs)], bs[21%len(bs)]}
	for _, b := range last {
		if !strings.Contains(string(cfg), fmt.Sprintf(" %s id %d ", b.srv.Address(), haproxy.ServerID(b.srv))) {
			t.Fatalf("haproxy.cfg lacks %s:\n%s", b.srv.Address(), cfg)
		}
	}

	// Anything else reloads, and the servers keep their ids.
	s := checkedService(h.port, last...)
	s.Timeouts = &services.Timeouts{Server: 30 * time.Second}
	h.write(s)
	if err := h.waitApplied(); err != nil {
		t.Fatal(err)
	}
	reloaded, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.MasterReloads != before.MasterReloads+1 {
		t.Fatalf("a timeout change did not reload: %+v", reloaded)
	}
	if got := metricValue(t, h.metrics(), haproxyReloads) - reloads0; got != 1 {
		t.Errorf("reloads counted: %v, want 1", got)
	}
	states, err := m.ServerState(ctx, backendName)
	if err != nil || len(states) != 2 {
		t.Fatalf("after reload: %+v %v", states, err)
	}
	for _, st := range states {
		if !slices.ContainsFunc(last, func(b backend) bool { return b.srv.Port == st.Port && haproxy.ServerID(b.srv) == st.ID }) {
			t.Errorf("after reload: unexpected server %+v", st)
		}
	}
}
