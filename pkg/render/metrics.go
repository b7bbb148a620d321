package render

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	renderSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "proxymatic_render_duration_seconds",
		Help:    "Time to render one proxy's configs from services.yaml.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
	}, []string{"proxy"})
	penDropped = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_pen_dropped_servers",
		Help: "Servers left out of pen configs at the last render because their service has more servers than --pen-servers.",
	})
)
