// Package marathon is the Marathon discovery source: it reads every app with
// its tasks from a set of Marathon replicas, follows Marathon's event stream,
// and compiles the running, healthy tasks into services.yaml services by the
// original proxymatic rules.
//
// A full read is one request (GET /v2/apps?embed=apps.tasks), decoded as a
// stream into only the fields the rules use; the one-shot Fetch compiles it
// as it arrives. A watching source keeps the apps in memory and applies the
// events of GET /v2/events to them (apply.go), reading one app when an event
// names it and everything only when the state is in doubt; it compiles again
// only what changed (state.go). A jittered poll stays a full read and
// reconciles.
package marathon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// Defaults for the zero values of Options.
const (
	DefaultRefreshInterval   = 60 * time.Second
	DefaultConnectTimeout    = 3 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultStreamIdleTimeout = 60 * time.Second
	DefaultDNSTTL            = 60 * time.Second
	DefaultRequestTimeout    = 30 * time.Second
	DefaultMaxBody           = 256 << 20
)

// Resolver turns task host names into addresses; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Source. Zero values take the defaults above.
type Options struct {
	// URLs are the Marathon replicas, e.g. "http://user:pass@marathon-01:8080".
	// A path is kept as a prefix (Marathon behind a reverse proxy). One
	// file:///path/apps.json instead reads a saved answer (file.go).
	URLs []string
	// ExposeHost is no longer applied here: servers on their service's own
	// port (net=host) are compiled like any other, and the syncer drops
	// the whole service unless --expose-host, for every source alike.
	ExposeHost bool
	// GroupSize is the number of proxymatic instances sharing the
	// backends; a maxconn label is divided by it.
	GroupSize int
	// RefreshInterval is the safety-net poll period (jittered to 75-100%).
	RefreshInterval time.Duration
	// CACertFile is a PEM file whose certificates are trusted in addition
	// to the system pool (MARATHON_CA_CERT).
	CACertFile string
	// Resolver resolves task hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// Logger; nil discards.
	Logger *slog.Logger
	// Explain, when set, receives the reasons of the last compile: why an
	// app, task or port is not served (key "marathon <app id>", one key per
	// app, replaced whenever that app is compiled again).
	Explain *explain.Book
	// HealthCacheSize bounds the tasks whose last health result is kept
	// (health.go); 0 takes DefaultHealthCacheSize.
	HealthCacheSize int
	// HTTPClient replaces the built-in client (its timeouts and TLS
	// settings are then the caller's). Its CheckRedirect is replaced so
	// that credentials follow the redirect to the leader, and only there.
	HTTPClient *http.Client
	// MaxBody caps one decompressed /v2/apps answer in bytes; a larger one
	// fails that replica (--marathon-max-body). 0 means DefaultMaxBody,
	// negative no cap.
	MaxBody int64
	// RequestTimeout bounds one /v2/apps request, from connect to the last
	// byte of its body; when it passes, the next replica is asked
	// (--marathon-timeout). 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration

	ConnectTimeout    time.Duration // TCP connect (and TLS handshake) limit
	ReadTimeout       time.Duration // longest silence while reading /v2/apps
	StreamIdleTimeout time.Duration // an event stream silent this long is dead
	DNSTTL            time.Duration // how long a resolved host is cached
}

// Source reads Marathon. It satisfies syncer.Source.
type Source struct {
	opts     Options
	client   *client
	dns      *dnsCache
	log      *slog.Logger
	versions *versionCache
	health   *healthCache

	explainMu sync.Mutex
	explained map[string]bool // apps with reasons in opts.Explain

	again chan struct{} // ReadAgain's request to the watch loop
}

// New validates opts and builds a Source. It does not contact Marathon.
func New(opts Options) (*Source, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("marathon: no replica URL given")
	}
	if opts.GroupSize == 0 {
		opts.GroupSize = 1
	}
	if opts.GroupSize < 1 {
		return nil, fmt.Errorf("marathon: group size %d is not >= 1", opts.GroupSize)
	}
	for _, d := range []struct {
		v    *time.Duration
		def  time.Duration
		name string
	}{
		{&opts.RefreshInterval, DefaultRefreshInterval, "refresh interval"},
		{&opts.ConnectTimeout, DefaultConnectTimeout, "connect timeout"},
		{&opts.ReadTimeout, DefaultReadTimeout, "read timeout"},
		{&opts.StreamIdleTimeout, DefaultStreamIdleTimeout, "stream idle timeout"},
		{&opts.DNSTTL, DefaultDNSTTL, "DNS TTL"},
		{&opts.RequestTimeout, DefaultRequestTimeout, "request timeout"},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("marathon: %s %s is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", "marathon")
	if opts.MaxBody == 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if slices.ContainsFunc(opts.URLs, isFileURL) {
		return newFileSource(opts, log) // a saved answer: file.go
	}
	replicas := make([]replica, 0, len(opts.URLs))
	for _, raw := range opts.URLs {
		r, err := parseReplica(raw)
		if err != nil {
			return nil, err
		}
		replicas = append(replicas, r)
	}
	maxBody := max(opts.MaxBody, 0)
	hc, err := httpClient(opts, replicas)
	if err != nil {
		return nil, err
	}
	var res Resolver = net.DefaultResolver
	if opts.Resolver != nil {
		res = opts.Resolver
	}
	if opts.HealthCacheSize < 0 {
		return nil, fmt.Errorf("marathon: health cache size %d is negative", opts.HealthCacheSize)
	}
	return &Source{
		opts:      opts,
		client:    &client{replicas: replicas, http: hc, log: log, maxBody: maxBody, timeout: opts.RequestTimeout, idle: opts.ReadTimeout},
		dns:       newDNSCache(res, opts.DNSTTL, log),
		log:       log,
		versions:  newVersionCache(versionCacheSize),
		health:    newHealthCache(opts.HealthCacheSize),
		explained: map[string]bool{},
		again:     make(chan struct{}, 1),
	}, nil
}

func httpClient(opts Options, replicas []replica) (*http.Client, error) {
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		c.CheckRedirect = redirectPolicy(replicas)
		return &c, nil
	}
	// No extra CA: RootCAs stays nil and crypto/tls loads the system pool on
	// the first TLS handshake, not at start-up (~30 ms of CPU that a plain
	// http replica, or a --once run, would pay for nothing).
	var pool *x509.CertPool
	if opts.CACertFile != "" {
		var err error
		pool, err = x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opts.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("marathon: CA certificate: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("marathon: CA certificate %s: no PEM certificate found", opts.CACertFile)
		}
	}
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.ReadTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, CheckRedirect: redirectPolicy(replicas)}, nil
}

// SeedHealth takes the servers of the services.yaml a previous run left as
// last seen healthy until the first full read (see healthCache.seed): a
// sync restarted during a leader election keeps serving them. Call it
// before Watch or WatchChanges.
func (s *Source) SeedHealth(previous []services.Service) {
	s.health.seed(previous)
}

// Name identifies the source.
func (s *Source) Name() string { return string(services.SourceMarathon) }

// Fetch reads all apps with their tasks once and compiles them. A replica
// whose answer fails anywhere — status, body, size, deadline — is that
// replica's failure, and the next one is asked.
func (s *Source) Fetch(ctx context.Context) ([]services.Service, error) {
	start := time.Now()
	var cm *compilation
	c := compiler{exposeHost: s.opts.ExposeHost, groupSize: s.opts.GroupSize, log: s.log, versions: s.versions.get, explain: s.opts.Explain != nil}
	rep, err := s.client.do(ctx, appsPath, "application/json", func(body io.Reader) error {
		var err error
		cm, err = c.stream(ctx, body, streamBatch)
		if err != nil {
			return fmt.Errorf("reading apps: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(cm.deferred) > 0 {
		// Tasks of past versions take that version's rules.
		fetched, err := s.fetchVersions(ctx, cm.missing)
		if err != nil {
			return nil, fmt.Errorf("marathon: reading past app versions: %w", err)
		}
		c.versions = s.versionLookup(fetched)
		deferred := cm.deferred
		cm.deferred, cm.missing = nil, nil
		for _, a := range deferred {
			c.add(cm, a)
		}
	}
	c.addrs = s.dns.resolveAll(ctx, cm.hosts)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out := c.merge(cm)
	s.explainAll(cm.notes)
	refreshesTotal.WithLabelValues(rep.name).Inc()
	lastSuccess.SetToCurrentTime()
	refreshDuration.Observe(time.Since(start).Seconds())
	servers := 0
	for i := range out {
		servers += len(out[i].Servers)
	}
	servicesCompiled.Set(float64(len(out)))
	serversCompiled.Set(float64(servers))
	return out, nil
}

const appsPath = "/v2/apps?embed=apps.tasks"

// streamBatch is how many apps the decoder hands to the compiler at once:
// enough to make the channel hand-off negligible, few enough that the
// apps in flight stay a small, reused part of the heap.
const streamBatch = 256

// stream decodes the body and compiles its apps concurrently: the decoder
// fills batches of apps, one goroutine compiles them (address-free, see
// compiler.add) and gives the batches back for reuse, so on two cores the
// compile rules run while the body is still being read, and the 10,000
// decoded apps of a large cluster are never all in memory. The goroutine
// ends before stream returns, whatever happens; ctx cancels the decoder
// through the body (the request carries ctx) and also between batches.
func (c *compiler) stream(ctx context.Context, body io.Reader, batchSize int) (*compilation, error) {
	const inFlight = 3 // one being decoded, one queued, one being compiled
	full := make(chan []app, inFlight)
	free := make(chan []app, inFlight)
	for range inFlight {
		free <- nil
	}
	cm := &compilation{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for batch := range full {
			for i := range batch {
				c.add(cm, &batch[i])
			}
			free <- batch[:0]
		}
	})
	var batch []app
	send := func() error {
		select {
		case full <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case batch = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	batch = <-free
	err := decodeAppStream(body, func() *app {
		if batch == nil {
			batch = make([]app, 0, batchSize)
		}
		if len(batch) < cap(batch) {
			batch = batch[:len(batch)+1] // reuse the app that was here
		} else {
			batch = append(batch, app{})
		}
		return &batch[len(batch)-1]
	}, func(*app) error {
		if len(batch) < batchSize {
			return nil
		}
		return send()
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	close(full)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return cm, nil
}
