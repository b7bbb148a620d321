package resolve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var lookups = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "proxymatic_resolve_lookups_total",
	Help: "Host name lookups by source and result: ok, stale (failed, the last good address kept), failed (left out).",
}, []string{"source", "result"})
