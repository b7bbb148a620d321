package version

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// buildInfo is registered on import: every binary that links this package
// (both do, through pkg/cli) exports it, whatever else it runs.
var buildInfo = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "proxymatic_build_info",
	Help: "1, labelled with the running build's version, commit and Go version.",
}, []string{"version", "commit", "goversion"})

func init() {
	i := Get()
	buildInfo.WithLabelValues(i.Version, i.Commit, i.GoVersion).Set(1)
}
