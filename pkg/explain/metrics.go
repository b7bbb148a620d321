package explain

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The process's book, exported on /metrics. One per process: sync's
// sources and daemon share one, reload has its own.
var exported atomic.Pointer[Book]

// Export makes b the book /metrics counts (a later call replaces it).
func Export(b *Book) { exported.Store(b) }

var (
	entriesDesc = prometheus.NewDesc("proxymatic_explain_entries",
		"Reasons held now for something not served, by source and reason (see /status/explain).",
		[]string{"source", "reason"}, nil)
	omittedDesc = prometheus.NewDesc("proxymatic_explain_omitted",
		"Reasons left out of /status/explain by the bounds of the book.", nil, nil)
)

// collector counts the exported book at scrape time: the book is the
// truth, so the metric can never drift from it.
type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- omittedDesc
}

func (collector) Collect(ch chan<- prometheus.Metric) {
	b := exported.Load()
	if b == nil {
		return
	}
	entries, omitted := b.Entries(Filter{})
	type key struct {
		source string
		reason Reason
	}
	counts := map[key]int{}
	for _, e := range entries {
		counts[key{e.Source, e.Reason}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(n), k.source, string(k.reason))
	}
	ch <- prometheus.MustNewConstMetric(omittedDesc, prometheus.GaugeValue, float64(omitted))
}

func init() { prometheus.MustRegister(collector{}) }
