package filewatch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	reads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_filewatch_reads_total",
		Help: "Reads of the followed file, by what caused them (event, resync, start).",
	}, []string{"cause"})
	watchErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_filewatch_errors_total",
		Help: "Errors from the file system watcher (such as a queue overflow), each followed by a re-read.",
	})
)
