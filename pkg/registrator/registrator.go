// Package registrator is the discovery source that reads the services
// gliderlabs/registrator (or one of its etcd v3 forks) writes to etcd:
// keys "PREFIX/<service-name>/<hostname>:<container-name>:<port>[:udp]"
// holding "ip:port". It reads the prefix once, then follows it with a watch,
// and hands the sync daemon one complete, validated state per change.
//
// etcd:// uses the v2 keys API over plain net/http; etcd3:// uses the v3
// client. The two keyspaces are separate in etcd, so the scheme must match
// the API registrator writes to. See README.md for the rules and decisions.
package registrator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/backoff"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/resolve"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Options configure a Source. Only URL is required.
type Options struct {
	// URL is REGISTRATOR_URL, e.g. "etcd://etcd-1:2379,etcd-2:2379/services".
	URL string
	// CACert, Cert and Key are PEM files (ETCD_CA_CERT, ETCD_CERT, ETCD_KEY).
	// Setting any of them turns TLS on; Cert and Key go together.
	CACert, Cert, Key string
	// Coalesce is how long changes are gathered before one publish
	// (default 100ms): a host starting hundreds of containers publishes a
	// few times, not hundreds.
	Coalesce time.Duration
	// ProbeInterval is how often a quiet watch checks that etcd still
	// answers (default 5s); a failed probe counts as an outage.
	ProbeInterval time.Duration
	// RequestTimeout bounds each read and probe (default 5s).
	RequestTimeout time.Duration
	// MaxBackoff caps the jittered wait between reconnects (default 10s).
	MaxBackoff time.Duration
	// Logger receives warnings about skipped keys and outages (default slog.Default()).
	Logger *slog.Logger
	// Explain, when set, receives why a key is not served (key
	// "registrator <etcd key>"), replaced on every compile.
	Explain *explain.Book
	// Resolver looks up values that name a host instead of an address
	// (default net.DefaultResolver).
	Resolver resolve.Resolver
}

const (
	defaultCoalesce       = 100 * time.Millisecond
	defaultProbeInterval  = 5 * time.Second
	defaultRequestTimeout = 5 * time.Second
	defaultMaxBackoff     = 10 * time.Second
	minBackoff            = 200 * time.Millisecond
)

// Source reads registrator's keys from etcd. It satisfies syncer.Source.
type Source struct {
	cfg  Config
	opts Options
	tls  *tls.Config
	log  *slog.Logger
	res  *resolve.Cache
	open func(ctx context.Context, endpoint string) (session, error)

	// afterList, when set by a test, runs between a complete read and the
	// watch that follows it: the window in which etcd may drop history.
	afterList func()
}

// session is one connection to one etcd endpoint.
type session interface {
	// list reads every key below the prefix and the revision (v3) or
	// etcd index (v2) the read reflects.
	list(ctx context.Context) (map[string]string, int64, error)
	// watch reports changes from revision from on until ctx is done or the
	// watch fails; errCompacted means the history is gone and a full read
	// is needed.
	watch(ctx context.Context, from int64, emit func([]change) error) error
	// probe checks that the endpoint still answers for the prefix.
	probe(ctx context.Context) error
	close()
}

// errCompacted is returned by watch when etcd no longer has the events from
// the requested revision (v3 compaction, v2 "event index cleared").
var errCompacted = errors.New("watched history is gone (compacted or cleared)")

// New validates the options and returns a Source. It does not connect.
func New(opts Options) (*Source, error) {
	cfg, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Coalesce <= 0 {
		opts.Coalesce = defaultCoalesce
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = defaultProbeInterval
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = defaultRequestTimeout
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Source{cfg: cfg, opts: opts, log: opts.Logger.With("source", "registrator", "url", cfg.Redacted())}
	s.res = resolve.New(resolve.Options{Resolver: opts.Resolver, Logger: s.log, Name: "registrator"})
	if s.tls, err = loadTLS(cfg.TLS, opts); err != nil {
		return nil, err
	}
	switch cfg.API {
	case V2:
		s.open = s.openV2
	case V3:
		s.open = s.openV3
	}
	return s, nil
}

// loadTLS decides TLS: the etcds/etcd3s schemes or any certificate option
// turn it on. Without ETCD_CA_CERT the system roots verify the server.
func loadTLS(scheme bool, o Options) (*tls.Config, error) {
	if !scheme && o.CACert == "" && o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, fmt.Errorf("registrator TLS: ETCD_CERT and ETCD_KEY must be given together")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("registrator TLS: ETCD_CA_CERT: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registrator TLS: ETCD_CA_CERT %s holds no PEM certificate", o.CACert)
		}
		tc.RootCAs = pool
	}
	if o.Cert != "" {
		cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("registrator TLS: ETCD_CERT/ETCD_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Name implements syncer.Source.
func (s *Source) Name() string { return "registrator" }

// Config returns the parsed URL (with the password: do not log it; use Config.Redacted).
func (s *Source) Config() Config { return s.cfg }

// Fetch reads the complete state once, trying the endpoints in order.
func (s *Source) Fetch(ctx context.Context) ([]services.Service, error) {
	var errs []error
	for _, ep := range s.cfg.Endpoints {
		kv, err := s.fetchFrom(ctx, ep)
		if err == nil {
			st := newState(s.cfg.Prefix, s.log, s.res)
			st.why = newExplainer(s.opts.Explain)
			st.replace(kv)
			return st.services(ctx), nil
		}
		failures.WithLabelValues(ep).Inc()
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("registrator %s: %w", s.cfg.Redacted(), errors.Join(errs...))
}

func (s *Source) fetchFrom(ctx context.Context, ep string) (map[string]string, error) {
	sess, err := s.open(ctx, ep)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	kv, _, err := sess.list(rctx)
	if err != nil {
		return nil, err
	}
	reads.WithLabelValues(ep).Inc()
	lastSuccess.SetToCurrentTime()
	return kv, nil
}

// update is what the follower hands the publishing loop.
type update struct {
	full    bool
	kv      map[string]string // full: the complete keyspace below the prefix
	changes []change          // !full: watch changes
}

// Watch implements syncer.Source: it publishes the first complete read,
// then every changed state, at most once per Coalesce window. An outage
// publishes nothing; the follower reconnects with jittered backoff and
// re-reads, and the re-read publishes only if the state changed meanwhile.
func (s *Source) Watch(ctx context.Context, publish func([]services.Service)) error {
	ctx, cancel := context.WithCancel(ctx)
	updates := make(chan update)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.follow(ctx, updates)
	}()
	defer wg.Wait()
	defer cancel()

	st := newState(s.cfg.Prefix, s.log, s.res)
	st.why = newExplainer(s.opts.Explain)
	var (
		last      []services.Service
		published bool
		timer     *time.Timer
		fire      <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-updates:
			var changed bool
			if u.full {
				changed = st.replace(u.kv)
			} else {
				changed = st.apply(u.changes)
			}
			if (changed || !published) && fire == nil {
				// The window opens at the first change and does not slide, so
				// a steady stream of changes still publishes every Coalesce.
				d := s.opts.Coalesce
				if !published {
					d = 0 // the daemon waits for the first state: no reason to delay it
				}
				timer = time.NewTimer(d)
				fire = timer.C
			}
		case <-fire:
			fire = nil
			svcs := st.services(ctx)
			if published && equalServices(last, svcs) {
				continue
			}
			publish(svcs)
			publishes.Inc()
			last, published = svcs, true
		}
	}
}

// follow keeps a session open on one endpoint after another until ctx is
// done: read everything, then watch from the read's revision.
func (s *Source) follow(ctx context.Context, out chan<- update) {
	n := len(s.cfg.Endpoints)
	i := 0
	bo := backoff.Backoff{Min: minBackoff, Max: s.opts.MaxBackoff, Jitter: true}
	for ctx.Err() == nil {
		ep := s.cfg.Endpoints[i%n]
		listed, err := s.session(ctx, ep, out)
		if ctx.Err() != nil {
			return
		}
		if listed {
			bo.Reset()
		}
		if errors.Is(err, errCompacted) {
			rereads.WithLabelValues(ep).Inc()
			s.log.Info("registrator: watch history gone; reading everything again", "endpoint", ep)
			continue
		}
		failures.WithLabelValues(ep).Inc()
		wait := bo.Next()
		s.log.Warn("registrator: etcd unavailable; keeping the last state", "endpoint", ep, "error", err, "retry_in", wait.Round(time.Millisecond))
		i++ // fail over: the next attempt goes to the next endpoint
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session runs one connection: a complete read, then a watch guarded by
// periodic probes. It reports whether the read succeeded and why it ended.
func (s *Source) session(ctx context.Context, ep string, out chan<- update) (listed bool, err error) {
	sess, err := s.open(ctx, ep)
	if err != nil {
		return false, err
	}
	defer sess.close()

	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	kv, rev, err := sess.list(rctx)
	cancel()
	if err != nil {
		return false, err
	}
	reads.WithLabelValues(ep).Inc()
	lastSuccess.SetToCurrentTime()
	select {
	case out <- update{full: true, kv: kv}:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	if s.afterList != nil {
		s.afterList()
	}

	watchUp.Set(1)
	defer watchUp.Set(0)
	wctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.probeLoop(wctx, sess, stop)
	}()
	defer func() {
		stop(nil)
		wg.Wait()
	}()
	emit := func(cs []change) error {
		watchEvents.WithLabelValues(ep).Add(float64(len(cs)))
		lastSuccess.SetToCurrentTime()
		select {
		case out <- update{changes: cs}:
			return nil
		case <-wctx.Done():
			return context.Cause(wctx)
		}
	}
	err = sess.watch(wctx, rev+1, emit)
	if cause := context.Cause(wctx); cause != nil && ctx.Err() == nil && !errors.Is(cause, context.Canceled) {
		err = cause // the probe failed: that, not "context canceled", is the reason
	}
	if err == nil {
		err = errors.New("watch ended")
	}
	return true, err
}

// probeLoop cancels the watch when etcd stops answering: a watch on a
// silently dead connection would otherwise wait forever (the v3 client
// retries a broken watch stream without telling).
func (s *Source) probeLoop(ctx context.Context, sess session, stop context.CancelCauseFunc) {
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		err := sess.probe(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			stop(fmt.Errorf("probe: %w", err))
			return
		}
	}
}
