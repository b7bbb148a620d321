package reload

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	reloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_reload_reloads_total",
		Help: "Configs a proxy took on (a start or a confirmed reload), by proxy.",
	}, []string{"proxy"})
	runtimeUpdates = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_reload_runtime_updates_total",
		Help: "Changes a proxy took on without a reload (HAProxy: servers added, removed or re-weighted through the admin socket), by proxy.",
	}, []string{"proxy"})
	runtimeFallbacks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_reload_runtime_fallbacks_total",
		Help: "Runtime updates that failed (a command refused, or show servers state did not confirm it) and were replaced by a checked reload, by proxy.",
	}, []string{"proxy"})
	reloadFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_reload_failures_total",
		Help: "Configs a proxy did not take on (rejected by its check, or a reload or start that failed), by proxy. The running config stays.",
	}, []string{"proxy"})
	proxyHealthy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_reload_proxy_in_sync",
		Help: "1 when the proxy runs the config rendered from the last services file, 0 when its last change failed.",
	}, []string{"proxy"})
	fileErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_reload_file_errors_total",
		Help: "Reads of the services file that were missing, unreadable or unparseable; the running config stays.",
	})
	droppedServices = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_reload_dropped_services",
		Help: "Services of the current file that were invalid and left out.",
	})
	droppedServicesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_reload_dropped_services_total",
		Help: "Invalid services left out, summed over every file applied.",
	})
	servicesRefused = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_reload_services_rejected_by_proxy",
		Help: "Services the last apply left out of a proxy because the proxy refused their part of the config (the rest was applied), by proxy.",
	}, []string{"proxy"})
	servicesRefusedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_reload_services_rejected_by_proxy_total",
		Help: "Services left out of a proxy because the proxy refused their part of the config, summed over every apply, by proxy.",
	}, []string{"proxy"})
	portConflicts = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_reload_port_conflicts",
		Help: "Services left out of the last apply because another process holds their port; retried every few seconds.",
	})
	vhostConflicts = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_reload_vhost_conflicts",
		Help: "Services of the last file that got no virtual host because another service holds their name (the holder keeps it; a newcomer never takes it).",
	})
	lastGoodTime = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_reload_last_good_timestamp_seconds",
		Help: "When a services file was last applied to every proxy without error.",
	})
	lastGoodHash = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_reload_last_good_file_info",
		Help: "1, labelled with the SHA-256 of the services file last applied without error.",
	}, []string{"sha256"})
	applySeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "proxymatic_reload_apply_seconds",
		Help:    "Time from reading a changed services file to every proxy running its config.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	})
)

// initProxyMetrics exports every per-proxy series at 0 from the start, so a
// dashboard or alert sees "no reload yet" rather than a missing series.
func initProxyMetrics(proxy string) {
	reloads.WithLabelValues(proxy)
	runtimeUpdates.WithLabelValues(proxy)
	runtimeFallbacks.WithLabelValues(proxy)
	reloadFailures.WithLabelValues(proxy)
	servicesRefused.WithLabelValues(proxy)
	servicesRefusedTotal.WithLabelValues(proxy)
}
