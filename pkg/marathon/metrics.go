package marathon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The replica label is the replica URL without credentials: a handful of
// values fixed by configuration.
var (
	refreshesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_refreshes_total",
		Help: "Successful reads of /v2/apps, by replica.",
	}, []string{"replica"})
	failuresTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_request_failures_total",
		Help: "Failed requests (connection, timeout, HTTP status, broken body), by replica.",
	}, []string{"replica"})
	lastSuccess = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_marathon_last_success_timestamp_seconds",
		Help: "Unix time of the last successful refresh.",
	})
	eventsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_events_total",
		Help: "Events received on /v2/events, by type (unknown types count as \"other\").",
	}, []string{"type"})
	streamConnects = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_event_stream_connects_total",
		Help: "Event stream connection attempts, by result (ok, error).",
	}, []string{"result"})
	streamUp = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_marathon_event_stream_up",
		Help: "1 while an event stream (/v2/events) is attached, 0 while reconnecting.",
	})
	refreshDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "proxymatic_marathon_refresh_duration_seconds",
		Help:    "Time to fetch, decode and compile all apps.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	servicesCompiled = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_marathon_services",
		Help: "Services compiled by the last successful refresh.",
	})
	malformedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_malformed_values_total",
		Help: "Values of an app of an unexpected JSON type (or too long), by what was skipped for them: the field (a label), the task or the app. Counted on every refresh that reads them.",
	}, []string{"skipped"})
	serversCompiled = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "proxymatic_marathon_servers",
		Help: "Servers compiled by the last successful refresh.",
	})
	eventsApplied = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_events_applied_total",
		Help: "Events applied to the in-memory state without a full read of /v2/apps, by type.",
	}, []string{"type"})
	appFetches = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_app_fetches_total",
		Help: "Reads of one app (GET /v2/apps/{id}?embed=app.tasks) an event asked for, by result (ok, gone, error).",
	}, []string{"result"})
	versionFetches = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_version_fetches_total",
		Help: "Reads of a past app version's definition (GET /v2/apps/{id}/versions/{version}), by result (ok, gone, error).",
	}, []string{"result"})
	fullFetches = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "proxymatic_marathon_full_fetches_total",
		Help: "Full reads of /v2/apps by a watching source, by reason (start, poll, refresh, reconnect, replica, unparseable, unknown-app, unknown-type, unnamed-apps, many-apps, overflow, fetch-failed, retry).",
	}, []string{"reason"})
	driftTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "proxymatic_marathon_drift_apps_total",
		Help: "Apps whose services, applied from events, differed from the scheduled full read (the full read won).",
	})
)
