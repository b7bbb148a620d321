package supervise

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	restarts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_proxy_restarts_total",
		Help: "Times a supervised proxy process exited unexpectedly and was started again.",
	}, []string{"process"})
	running = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "proxymatic_proxy_running",
		Help: "1 while the supervised proxy process is running.",
	}, []string{"process"})
)
