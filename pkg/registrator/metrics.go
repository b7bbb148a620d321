package registrator

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Endpoint labels are host:port only: credentials never reach a label.
var (
	reads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_registrator_reads_total",
		Help: "Complete reads of the registrator prefix, by etcd endpoint.",
	}, []string{"endpoint"})
	watchEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_registrator_watch_events_total",
		Help: "Key changes received from etcd watches, by etcd endpoint.",
	}, []string{"endpoint"})
	failures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_registrator_failures_total",
		Help: "Failed connects, reads, watches and health probes, by etcd endpoint.",
	}, []string{"endpoint"})
	rereads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_registrator_rereads_total",
		Help: "Full re-reads forced because etcd no longer had the watched history (v3 compaction, v2 event index cleared).",
	}, []string{"endpoint"})
	lastSuccess = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_registrator_last_success_timestamp_seconds",
		Help: "Unix time of the last successful read or watch event from etcd.",
	})
	publishes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_registrator_publishes_total",
		Help: "States handed to the sync daemon (unchanged states are not published).",
	})
	watchUp = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_registrator_watch_up",
		Help: "1 while a watch on etcd is open after a complete read, 0 while reconnecting.",
	})
	skipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_registrator_skipped_keys_total",
		Help: "Keys skipped because the key or value did not parse or a name was invalid.",
	})
)
