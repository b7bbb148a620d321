package marathon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meltwater/proxymatic/pkg/explain"
)

// versionFetchers bounds the version definitions asked for at once.
const versionFetchers = 4

// isNotFound reports that every replica asked answered 404: the app (or
// version) does not exist. A 404 from one replica and another failure from
// the next is no answer at all.
func isNotFound(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		for _, e := range errs {
			if !isNotFound(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	var se *statusError
	return errors.As(err, &se) && se.code == http.StatusNotFound
}

// fetchApp reads one app with its tasks (GET /v2/apps/{id}?embed=app.tasks).
// gone reports that Marathon has no such app (404).
func (s *Source) fetchApp(ctx context.Context, id string) (a *app, rep string, gone bool, err error) {
	path, ok := appPath(id)
	if !ok {
		return nil, "", false, fmt.Errorf("marathon: app id %q cannot be fetched on its own", clip(id))
	}
	r, err := s.client.do(ctx, path+"?embed=app.tasks", "application/json", func(body io.Reader) error {
		var err error
		if a, err = decodeApp(body); err != nil {
			return fmt.Errorf("reading app %s: %w", clip(id), err)
		}
		if a.ID != id {
			return fmt.Errorf("asked for app %s, got %s", clip(id), clip(a.ID))
		}
		return nil
	})
	if err != nil {
		if isNotFound(err) {
			appFetches.WithLabelValues("gone").Inc()
			return nil, r.name, true, nil
		}
		appFetches.WithLabelValues("error").Inc()
		return nil, "", false, err
	}
	appFetches.WithLabelValues("ok").Inc()
	for i := range a.Tasks {
		a.Tasks[i] = cloneTask(&a.Tasks[i])
	}
	return a, r.name, false, nil
}

// fetchVersion reads the definition of one app version; nil, nil when
// Marathon no longer has it.
func (s *Source) fetchVersion(ctx context.Context, id, version string) (*app, error) {
	path, ok := appPath(id)
	if !ok || !validVersion(version) {
		return nil, nil
	}
	var def *app
	_, err := s.client.do(ctx, path+"/versions/"+version, "application/json", func(body io.Reader) error {
		var err error
		if def, err = decodeAppVersion(body); err != nil {
			return fmt.Errorf("reading app %s version %s: %w", clip(id), clip(version), err)
		}
		return nil
	})
	if err != nil {
		if isNotFound(err) {
			versionFetches.WithLabelValues("gone").Inc()
			return nil, nil
		}
		versionFetches.WithLabelValues("error").Inc()
		return nil, err
	}
	versionFetches.WithLabelValues("ok").Inc()
	s.reportMalformedVersion(id, version, def)
	return def, nil
}

// reportMalformedVersion logs in one line, naming the app and the version,
// the values of a past version's definition that could not be used, and
// counts them as reportMalformed counts an app's. A definition is read once
// and cached, so this is logged once. Task values are left out: a
// definition has no tasks (decodeAppVersion drops them).
func (s *Source) reportMalformedVersion(id, version string, def *app) {
	const shown = 5
	var details []string
	n := 0
	for _, m := range def.malformed {
		if m.scope == scopeTask {
			continue
		}
		n++
		malformedTotal.WithLabelValues(m.scope.String()).Inc()
		if len(details) < shown {
			details = append(details, clip(m.path)+": "+m.msg)
		}
	}
	rest, msg := scopeField, "malformed values of an app version ignored"
	if def.skip {
		rest, msg = scopeApp, "malformed app version: its tasks skipped"
	}
	if def.dropped > 0 {
		n += def.dropped
		malformedTotal.WithLabelValues(rest.String()).Add(float64(def.dropped))
	}
	if n == 0 && !def.skip {
		return
	}
	s.log.Warn(msg, "app", clip(id), "version", clip(version), "malformed", n, "details", strings.Join(details, "; "))
}

// fetchVersions reads the given version definitions (at most a few at
// once) into the cache and returns them. Any failure but a 404 fails them
// all: the caller keeps its last good state.
func (s *Source) fetchVersions(ctx context.Context, keys []versionKey) (map[versionKey]*app, error) {
	out := make(map[versionKey]*app, len(keys))
	var todo []versionKey
	for _, k := range keys {
		if _, dup := out[k]; dup {
			continue
		}
		out[k] = nil
		todo = append(todo, k)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan versionKey)
	)
	for range min(versionFetchers, len(todo)) {
		wg.Go(func() {
			for k := range next {
				def, err := s.fetchVersion(ctx, k.id, k.version)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					out[k] = def
					s.versions.put(k.id, k.version, def)
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range todo {
		next <- k
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// versionLookup finds a definition among those just fetched, then in the
// cache.
func (s *Source) versionLookup(fetched map[versionKey]*app) func(id, version string) (*app, bool) {
	return func(id, version string) (*app, bool) {
		if def, ok := fetched[versionKey{id, version}]; ok {
			return def, true
		}
		return s.versions.get(id, version)
	}
}

// explainAll replaces what the Explain book holds for Marathon with the
// reasons of a full compile.
func (s *Source) explainAll(notes map[string][]explain.Entry) {
	if s.opts.Explain == nil {
		return
	}
	s.explainMu.Lock()
	defer s.explainMu.Unlock()
	for id := range s.explained {
		if len(notes[id]) == 0 {
			s.opts.Explain.Set("marathon "+id, nil)
			delete(s.explained, id)
		}
	}
	for id, es := range notes {
		if len(es) == 0 {
			continue
		}
		s.opts.Explain.Set("marathon "+id, es)
		s.explained[id] = true
	}
}

// explainApp replaces one app's reasons (none: the key is removed).
func (s *Source) explainApp(id string, es []explain.Entry) {
	if s.opts.Explain == nil {
		return
	}
	s.explainMu.Lock()
	defer s.explainMu.Unlock()
	if len(es) == 0 {
		if s.explained[id] {
			s.opts.Explain.Set("marathon "+id, nil)
			delete(s.explained, id)
		}
		return
	}
	s.opts.Explain.Set("marathon "+id, es)
	s.explained[id] = true
}

// appRead is the answer of one app's read.
type appRead struct {
	id      string
	app     *app
	gone    bool
	replica string
	err     error
}

// fetchApps reads the given apps, a few at once.
func (s *Source) fetchApps(ctx context.Context, ids []string) []appRead {
	out := make([]appRead, len(ids))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(appFetchers, len(ids)) {
		wg.Go(func() {
			for i := range next {
				a, rep, gone, err := s.fetchApp(ctx, ids[i])
				out[i] = appRead{id: ids[i], app: a, gone: gone, replica: rep, err: err}
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// liveCompiler is the compiler a watching Source keeps its state with.
func (s *Source) liveCompiler() compiler {
	return compiler{
		exposeHost: s.opts.ExposeHost, groupSize: s.opts.GroupSize, log: s.log,
		health: s.health, versions: s.versions.get, explain: s.opts.Explain != nil,
	}
}

// readLive reads every app into a new state and compiles it: what Fetch
// does, keeping the apps.
func (s *Source) readLive(ctx context.Context) (*live, string, error) {
	start := time.Now()
	var l *live
	dups := 0
	rep, err := s.client.do(ctx, appsPath, "application/json", func(body io.Reader) error {
		// A new state for each replica tried: nothing of a failed answer stays.
		l, dups = newLive(s.liveCompiler()), 0
		err := decodeAppStream(body, func() *app { return &app{} }, func(a *app) error {
			l.addListed(a, &dups)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading apps: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if dups > 0 {
		s.log.Warn("app ids listed more than once; events reach the first of each", "count", dups)
	}
	if missing := l.missingVersions(); len(missing) > 0 {
		fetched, err := s.fetchVersions(ctx, missing)
		if err != nil {
			return nil, "", fmt.Errorf("marathon: reading past app versions: %w", err)
		}
		l.c.versions = s.versionLookup(fetched)
		defer func() { l.c.versions = s.versions.get }()
	}
	hosts := l.newHosts()
	l.resolved(hosts, s.dns.resolveAll(ctx, hosts))
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	l.settle()
	refreshesTotal.WithLabelValues(rep.name).Inc()
	lastSuccess.SetToCurrentTime()
	refreshDuration.Observe(time.Since(start).Seconds())
	servers := 0
	for _, svc := range l.out {
		servers += len(svc.Servers)
	}
	servicesCompiled.Set(float64(len(l.out)))
	serversCompiled.Set(float64(servers))
	return l, rep.name, nil
}
