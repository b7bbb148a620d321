package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	// The two commands' packages: importing them registers every metric
	// either binary exports (each binary's main imports nothing else).
	_ "github.com/meltwater/proxymatic/pkg/cli/reloadcmd"
	_ "github.com/meltwater/proxymatic/pkg/cli/synccmd"
)

const dashboardPath = "grafana/proxymatic-dashboard.json"

// registered reports whether a metric family called name is registered
// with the default registry. Gathering is not enough: a vector without a
// series yet (failures that never happened) is registered but not
// gathered. Registering a probe of the same name fails exactly when the
// name is taken (the registry's documented consistency rule), and a probe
// that succeeds is unregistered again.
func registered(name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "grafana_test probe"})
	if err := prometheus.DefaultRegisterer.Register(probe); err != nil {
		return true
	}
	prometheus.DefaultRegisterer.Unregister(probe)
	return false
}

// exported reports whether a series name the dashboard uses is exported:
// a family, or a histogram's _bucket, _sum or _count series.
func exported(name string) bool {
	if registered(name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered(base) {
			return true
		}
	}
	return false
}

// metricName finds the series names in a PromQL expression: ours, and the
// Go and process collectors' every client exports.
var metricName = regexp.MustCompile(`\b(?:proxymatic|process|go)_[a-z0-9_]+\b`)

// queries returns every PromQL expression of the dashboard with where it
// is: panel targets (rows' nested panels too) and template variables.
func queries(t *testing.T, dash map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm, _ := p.(map[string]any)
			title, _ := pm["title"].(string)
			if title == "" {
				t.Errorf("a panel without a title: %v", pm["id"])
			}
			if pm["type"] != "row" {
				targets, _ := pm["targets"].([]any)
				if len(targets) == 0 {
					t.Errorf("panel %q has no query", title)
				}
				for i, tg := range targets {
					expr, _ := tg.(map[string]any)["expr"].(string)
					if expr == "" {
						t.Errorf("panel %q: target %d has no expr", title, i)
					}
					out["panel "+title+" #"+string(rune('A'+i))] = expr
				}
			}
			if nested, ok := pm["panels"].([]any); ok {
				walk(nested)
			}
		}
	}
	panels, _ := dash["panels"].([]any)
	walk(panels)
	tmpl, _ := dash["templating"].(map[string]any)
	vars, _ := tmpl["list"].([]any)
	for _, v := range vars {
		vm := v.(map[string]any)
		if vm["type"] != "query" {
			continue
		}
		q := vm["query"]
		if qm, ok := q.(map[string]any); ok {
			q = qm["query"]
		}
		out["variable "+vm["name"].(string)], _ = q.(string)
	}
	return out
}

func TestGrafanaDashboardUsesOnlyExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardPath, err)
	}
	if dash["title"] == "" || dash["uid"] == "" {
		t.Error("dashboard without title or uid")
	}

	// The probe agrees with what the registry gathers, and refuses a
	// name nobody registered: it can tell the two apart.
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !registered(mf.GetName()) {
			t.Fatalf("probe says gathered %s is not registered", mf.GetName())
		}
	}
	if registered("proxymatic_no_such_metric_total") {
		t.Fatal("probe says an unknown name is registered")
	}

	used := map[string]bool{}
	qs := queries(t, dash)
	if len(qs) < 20 {
		t.Fatalf("%d queries found: the walk misses panels", len(qs))
	}
	for where, expr := range qs {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q uses no metric the binaries export", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported(n) {
				t.Errorf("%s: %s is not a metric either binary exports (expr %q)", where, n, expr)
			}
		}
	}

	// What an operator watches is on it: sources, refreshes, events, file
	// writes, reloads, runtime updates, rejected services, proxies, and
	// the explanations.
	for _, want := range []string{
		"proxymatic_build_info",
		"proxymatic_marathon_refreshes_total", "proxymatic_marathon_request_failures_total", "proxymatic_marathon_events_total",
		"proxymatic_marathon_event_stream_up", "proxymatic_registrator_watch_up", "proxymatic_registrator_reads_total",
		"proxymatic_registrator_failures_total", "proxymatic_marathon_last_success_timestamp_seconds",
		"proxymatic_sync_file_writes_total", "proxymatic_sync_file_write_errors_total", "proxymatic_sync_services",
		"proxymatic_sync_rejected_services",
		"proxymatic_reload_reloads_total", "proxymatic_reload_runtime_updates_total", "proxymatic_reload_failures_total",
		"proxymatic_reload_proxy_in_sync", "proxymatic_reload_dropped_services", "proxymatic_reload_port_conflicts",
		"proxymatic_proxy_running",
		"proxymatic_explain_entries", "proxymatic_explain_omitted",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	if testing.Verbose() {
		names := make([]string, 0, len(used))
		for n := range used {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Logf("%d metrics used: %s", len(names), strings.Join(names, " "))
	}
}
