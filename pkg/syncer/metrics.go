package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The sources declare their own metrics (requests, errors, staleness); these
// are the daemon's: what it published and what it could not.
var (
	fileWrites = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_sync_file_writes_total",
		Help: "Times services.yaml was replaced because its contents changed.",
	})
	fileWriteMethods = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_sync_file_rewrites_total",
		Help: "Writes of services.yaml's content by how they were done: in_place (the slot file rewritten from its first changed byte) or new_file, with why (unknown: first write of that slot since start; busy: a reader still had the slot open; changed: the slot was not as the daemon left it; unopenable: it could not be opened for writing).",
	}, []string{"how", "why"})
	fileBytesWritten = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_sync_file_written_bytes_total",
		Help: "Bytes written to services.yaml's slot files.",
	})
	fileWriteErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_sync_file_write_errors_total",
		Help: "Failed attempts to replace services.yaml; the previous file was kept.",
	})
	lastWrite = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_last_publish_timestamp_seconds",
		Help: "When services.yaml last held the merged state of the sources (written or already equal).",
	})
	servicesPublished = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_services",
		Help: "Services in the services.yaml last published.",
	})
	serversPublished = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_servers",
		Help: "Servers, over all services, in the services.yaml last published.",
	})
	mergeCollisions = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_merge_collisions",
		Help: "(port, protocol) pairs claimed by more than one source; the higher-precedence source's service is published.",
	})
	rejectedServices = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_sync_rejected_services",
		Help: "Invalid services in a source's last state, dropped and never written.",
	}, []string{"source"})
	netHostDropped = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_sync_nethost_dropped_services",
		Help: "Services in a source's last state left out because a server listens on the service's own port (net=host); --expose-host keeps them.",
	}, []string{"source"})
	emptyServices = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_empty_services",
		Help: "Services in the services.yaml last built that have no servers; their ports stay open.",
	})
	sourcesNotRead = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_sync_sources_not_read",
		Help: "Configured sources that have not had a good read since start-up.",
	})
)

// observeWrite counts how atomicfile.Slots wrote the file.
func observeWrite(how, why string, n int64) {
	fileWriteMethods.WithLabelValues(how, why).Inc()
	fileBytesWritten.Add(float64(n))
}
