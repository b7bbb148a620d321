package syncer

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/marathon"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// tracked wraps a Source to remember its last good read for the status
// page. It changes nothing the daemon sees.
type tracked struct {
	Source
	mu       sync.Mutex
	lastGood time.Time
	reads    uint64
}

func track(sources []Source) []*tracked {
	out := make([]*tracked, len(sources))
	for i, s := range sources {
		out[i] = &tracked{Source: s}
	}
	return out
}

func (t *tracked) good() {
	t.mu.Lock()
	t.lastGood = time.Now()
	t.reads++
	t.mu.Unlock()
}

func (t *tracked) Fetch(ctx context.Context) ([]services.Service, error) {
	svcs, err := t.Source.Fetch(ctx)
	if err == nil {
		t.good()
	}
	return svcs, err
}

func (t *tracked) Watch(ctx context.Context, publish func([]services.Service)) error {
	return t.Source.Watch(ctx, func(svcs []services.Service) {
		t.good()
		publish(svcs)
	})
}

func (t *tracked) snapshot() (time.Time, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastGood, t.reads
}

// sourceMetrics names, per source, the counter of its failures and the
// gauge saying its event stream or watch is open (the sources declare
// them; the page reads them back rather than reaching into the sources).
var sourceMetrics = map[string]struct{ failures, stream, streamFor string }{
	"marathon":    {"proxymatic_marathon_request_failures_total", "proxymatic_marathon_event_stream_up", "event stream"},
	"registrator": {"proxymatic_registrator_failures_total", "proxymatic_registrator_watch_up", "watch"},
}

// page builds the status page of a running proxymatic-sync.
type page struct {
	cfgOutput string
	reloadURL string
	started   time.Time
	status    *status.Server
	sources   []*tracked
	book      *explain.Book
	ring      *logging.Ring
	gatherer  prometheus.Gatherer

	mu       sync.Mutex
	failedAt map[string]float64 // failures counted at the last good read seen, per source
	seenGood map[string]time.Time
}

func (p *page) view(r *http.Request, f explain.Filter) statuspage.View {
	v := statuspage.View{Program: "proxymatic-sync", State: p.status.State().String(), Started: p.started,
		ServicesTitle: "Services in services.yaml"}
	if link := statuspage.OtherPage(p.reloadURL, "/proxymatic", r); link != "" {
		v.Links = append(v.Links, statuspage.Link{Text: "proxymatic-reload", URL: link})
	}
	metrics := gatherValues(p.gatherer)
	for _, t := range p.sources {
		v.Sources = append(v.Sources, p.source(t, metrics))
	}
	v.File, v.Services = readFileView(p.cfgOutput, f.Port)
	marathon.RelateApp(&f)
	v.Explain, v.ExplainOmitted = p.book.Entries(f)
	v.Errors, v.ErrorsTotal = p.ring.Records()
	return v
}

// source says how one source is doing: waiting for its first read,
// failing (failures counted since its last good read) or ok.
func (p *page) source(t *tracked, metrics map[string]float64) statuspage.Source {
	name := t.Name()
	last, reads := t.snapshot()
	s := statuspage.Source{Name: name, LastGood: last, Reads: reads}
	m := sourceMetrics[name]
	failures := metrics[m.failures]
	if m.stream != "" {
		s.StreamFor, s.Stream = m.streamFor, "down"
		if metrics[m.stream] >= 1 {
			s.Stream = "up"
		}
	}
	if rec, ok := p.ring.Last(name); ok {
		s.LastError = &rec
	}
	p.mu.Lock()
	if !last.Equal(p.seenGood[name]) {
		p.seenGood[name], p.failedAt[name] = last, failures
	}
	since := failures - p.failedAt[name]
	p.mu.Unlock()
	switch {
	case last.IsZero():
		s.State = "waiting for a first read"
	case since > 0:
		s.State = "failing: " + strconv.FormatFloat(since, 'f', 0, 64) + " failures since the last good read"
	default:
		s.State, s.OK = "ok", true
	}
	return s
}

// readFileView reads the services file as the page shows it (only the
// services on port, when port is not 0).
func readFileView(path string, port int) (*statuspage.File, []statuspage.Service) {
	file := &statuspage.File{Path: path}
	fh, err := os.Open(path)
	if err != nil {
		file.Err = err.Error()
		return file, nil
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil {
		file.Modified = st.ModTime()
	}
	d, err := services.ReadFile(fh)
	if err != nil {
		file.Err = err.Error()
		return file, nil
	}
	var rows []statuspage.Service
	for _, s := range d.File.Services {
		file.Services++
		file.Servers += len(s.Servers)
		if port != 0 && s.Port != port {
			continue
		}
		rows = append(rows, statuspage.ServiceRow(s))
	}
	return file, rows
}

// gatherValues sums each metric family of g over its series: the page
// wants "how many failures" and "is a stream up", not the labels.
func gatherValues(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	mfs, err := g.Gather()
	if err != nil {
		slog.Debug("status page: gathering metrics", "err", err)
	}
	for _, mf := range mfs {
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
		out[mf.GetName()] = sum
	}
	return out
}
