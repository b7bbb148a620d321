package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/services"
)

// A source that follows its state as it changes (Marathon's event stream)
// publishes only the services that changed. The daemon then works key by
// key: the changed services go through the same per-service rules as a
// full state (prepare), the same precedence (build, on just those keys),
// and only their encodings are redone (services.Encoded) before the file
// is written whole from the kept pieces, without reading the old one: at
// 10,000 services a change costs what the changed services cost, plus the
// write itself.

// ChangeSource is a Source that can publish what changed instead of its
// whole state (marathon.Source). The first publish is Full. ReadAgain
// (SIGHUP) asks it to read everything again and publish what differs,
// without blocking: a Fetch merged beside its changes would put the two out
// of step.
type ChangeSource interface {
	Source
	WatchChanges(ctx context.Context, publish func(services.Delta)) error
	ReadAgain()
}

// BuffersSink is a Sink that takes the file in pieces (*atomicfile.Writer).
// compare false means the caller knows the file holds something else.
type BuffersSink interface {
	Sink
	WriteBuffers(bufs [][]byte, compare bool) (changed bool, err error)
}

func byKey(s services.Service, k services.Key) int { return s.Key().Compare(k) }

// scratch is a merger over the same sources for a few keys: the rules run
// on it (accept, build) are the full merge's own; what they check as
// already logged is m's, and what they remember is merged back into m by
// the caller.
func (m *merger) scratch() *merger {
	n := len(m.names)
	return &merger{
		logger: m.logger, exposeHost: m.exposeHost, names: m.names,
		states: make([][]services.Service, n), read: m.read, seeded: m.seeded,
		collisions: m.collisions, rejections: slices.Clone(m.rejections),
		netHost: make([][]netHostDrop, n), netLogged: slices.Clone(m.netLogged),
		emptied: m.emptied, explained: map[string][]explain.Entry{},
		rejectedKeys: make([]map[services.Key]bool, n), ownState: make([]bool, n),
	}
}

// applyDelta puts a change of source i into its state and returns the keys
// it touches. set is the source's (a private copy). The changed services go
// through accept, as a whole state does: normalized, invalid ones dropped
// and logged, net=host services dropped and logged.
func (m *merger) applyDelta(i int, set []services.Service, removed []services.Key) []services.Key {
	in := make([]services.Key, len(set))
	for j := range set {
		in[j] = set[j].Key()
	}
	keys := slices.Concat(in, removed)
	slices.SortFunc(keys, services.Key.Compare)
	keys = slices.Compact(keys)
	touched := make(map[services.Key]bool, len(keys))
	for _, k := range keys {
		touched[k] = true
	}

	sub := m.scratch()
	sub.accept(i, set, false)
	valid := sub.states[i]
	// What this change logged stays logged.
	if m.rejections[i] == nil {
		m.rejections[i] = map[string]bool{}
	}
	for msg := range sub.rejections[i] {
		m.rejections[i][msg] = true
	}
	// Its net=host drops replace the old ones on these keys.
	drops := slices.DeleteFunc(m.netHost[i], func(d netHostDrop) bool { return touched[d.svc.Key()] })
	m.netHost[i] = append(drops, sub.netHost[i]...)
	logged := map[string]bool{}
	for id := range m.netLogged[i] {
		if !touched[keyOfID(id)] {
			logged[id] = true
		}
	}
	for id := range sub.netLogged[i] {
		logged[id] = true
	}
	m.netLogged[i] = logged
	netHostDropped.WithLabelValues(m.names[i]).Set(float64(len(m.netHost[i])))
	m.noteRejected(i, in, touched, valid, sub.netHost[i])

	if !m.ownState[i] {
		m.states[i] = slices.Clone(m.states[i])
		m.ownState[i] = true
	}
	// A changed service replaces its old self in place; only services
	// that come or go move the others.
	st := m.states[i]
	put := make(map[services.Key]bool, len(valid))
	for _, s := range valid {
		put[s.Key()] = true
		if j, found := slices.BinarySearchFunc(st, s.Key(), byKey); found {
			st[j] = s
		} else {
			st = slices.Insert(st, j, s)
		}
	}
	for _, k := range keys {
		if put[k] {
			continue
		}
		if j, found := slices.BinarySearchFunc(st, k, byKey); found {
			st = slices.Delete(st, j, j+1)
		}
	}
	m.states[i] = st
	return keys
}

// noteRejected keeps, per source, the keys whose service was refused by
// the contract (given, but neither valid nor dropped as net=host), for the
// rejected-services gauge. touched nil: in is the source's whole state.
func (m *merger) noteRejected(i int, in []services.Key, touched map[services.Key]bool, valid []services.Service, drops []netHostDrop) {
	if touched == nil || m.rejectedKeys[i] == nil {
		m.rejectedKeys[i] = map[services.Key]bool{}
	}
	for k := range touched {
		delete(m.rejectedKeys[i], k)
	}
	kept := make(map[services.Key]bool, len(valid)+len(drops))
	for j := range valid {
		kept[valid[j].Key()] = true
	}
	for _, d := range drops {
		kept[d.svc.Key()] = true
	}
	for _, k := range in {
		if !kept[k] {
			m.rejectedKeys[i][k] = true
		}
	}
	if touched != nil && len(m.rejectedKeys[i]) == 0 {
		clear(m.rejections[i])
	}
	rejectedServices.WithLabelValues(m.names[i]).Set(float64(len(m.rejectedKeys[i])))
}

// keyOfID is the key a log id ("name port/protocol") ends with.
func keyOfID(id string) services.Key {
	j := strings.LastIndexByte(id, ' ')
	port, proto, _ := strings.Cut(id[j+1:], "/")
	p, _ := strconv.Atoi(port)
	return services.Key{Port: p, Protocol: services.Protocol(proto)}
}

// buildKeys merges the sources on the given keys (sorted) only, by build
// itself on the sources' services with those keys: the rules are the full
// merge's, precedence and empty services included. The collisions, empty
// services and reasons it finds replace m's for these keys.
func (m *merger) buildKeys(keys []services.Key) []services.Service {
	sub := m.scratch()
	sub.book = m.book
	touched := make(map[services.Key]bool, len(keys))
	for _, k := range keys {
		touched[k] = true
		if es, ok := m.explained["sync "+k.String()]; ok {
			sub.explained["sync "+k.String()] = es
		}
	}
	for i, st := range m.states {
		for _, k := range keys {
			if j, found := slices.BinarySearchFunc(st, k, byKey); found {
				sub.states[i] = append(sub.states[i], st[j])
			}
		}
		for _, d := range m.netHost[i] {
			if touched[d.svc.Key()] {
				sub.netHost[i] = append(sub.netHost[i], d)
			}
		}
	}
	f := sub.build()
	for id := range m.collisions {
		for _, k := range keys {
			if strings.HasPrefix(id, k.String()+" ") {
				delete(m.collisions, id)
			}
		}
	}
	maps.Copy(m.collisions, sub.collisions)
	mergeCollisions.Set(float64(len(m.collisions)))
	emptied := map[string]bool{}
	for id := range m.emptied {
		if !touched[keyOfID(id)] {
			emptied[id] = true
		}
	}
	maps.Copy(emptied, sub.emptied)
	m.emptied = emptied
	emptyServices.Set(float64(len(m.emptied)))
	for _, k := range keys {
		delete(m.explained, "sync "+k.String())
	}
	maps.Copy(m.explained, sub.explained)
	return f.Services
}

// commitKeys records that the file now holds desired, which differs from
// what was published only on keys, and logs each change as commit does.
func (m *merger) commitKeys(desired []services.Service, keys []services.Key) {
	if !m.ownPublished {
		m.published = slices.Clone(m.published)
		m.ownPublished = true
	}
	type line struct {
		c      change
		s, was *services.Service
	}
	var lines []line
	var counts [3]int
	for _, k := range keys {
		var now *services.Service
		if j, found := slices.BinarySearchFunc(desired, k, byKey); found {
			now = &desired[j]
		}
		j, found := slices.BinarySearchFunc(m.published, k, byKey)
		switch {
		case now != nil && found:
			if m.published[j].Equal(now) {
				continue
			}
			was := m.published[j]
			m.publishedCount[1] += len(now.Servers) - len(was.Servers)
			m.published[j] = *now
			lines = append(lines, line{modified, now, &was})
			counts[modified]++
		case now != nil:
			m.published = slices.Insert(m.published, j, *now)
			m.publishedCount[0]++
			m.publishedCount[1] += len(now.Servers)
			lines = append(lines, line{added, now, nil})
			counts[added]++
		case found:
			was := m.published[j]
			m.published = slices.Delete(m.published, j, j+1)
			m.publishedCount[0]--
			m.publishedCount[1] -= len(was.Servers)
			lines = append(lines, line{removed, &was, nil})
			counts[removed]++
		}
	}
	total := len(lines)
	level := slog.LevelInfo
	if total > maxChangeLines {
		m.logger.Info("services changed", "added", counts[added], "modified", counts[modified],
			"removed", counts[removed], "detail", "one line per service at debug level")
		level = slog.LevelDebug
	}
	if total > 0 && m.logger.Enabled(context.Background(), level) {
		for _, l := range lines {
			attrs := serviceAttrs(*l.s)
			if l.was != nil {
				attrs = append(attrs, "was", describe(*l.was))
			}
			m.logger.Log(context.Background(), level, l.c.String(), attrs...)
		}
	}
	servicesPublished.Set(float64(m.publishedCount[0]))
	serversPublished.Set(float64(m.publishedCount[1]))
}

// fileImage is what the daemon means the file to hold: the merged
// services (its own array) and their encoding, kept in step.
type fileImage struct {
	desired   []services.Service
	enc       services.Encoded
	unwritten map[services.Key]bool // changed since the last good write
	current   bool                  // the file holds enc (last write good)
	started   bool
}

// reset makes the image hold svcs (sorted by key), re-encoding only the
// services that differ.
func (im *fileImage) reset(svcs []services.Service) {
	if im.unwritten == nil {
		im.unwritten = map[services.Key]bool{}
	}
	if !im.started {
		im.started = true
		im.enc.Reset(svcs)
		im.desired = slices.Clone(svcs)
		return
	}
	diff(im.desired, svcs, func(c change, s, _ *services.Service) {
		if c == removed {
			im.enc.Delete(s.Key())
		} else {
			im.enc.Set(s)
		}
		im.unwritten[s.Key()] = true
	})
	im.desired = slices.Clone(svcs)
}

// set puts the services of keys (sorted) as build gave them (svcs, sorted)
// in the image; it reports whether anything changed.
func (im *fileImage) set(keys []services.Key, svcs []services.Service) bool {
	changed := false
	for _, k := range keys {
		var now *services.Service
		if j, found := slices.BinarySearchFunc(svcs, k, byKey); found {
			now = &svcs[j]
		}
		j, found := slices.BinarySearchFunc(im.desired, k, byKey)
		switch {
		case now != nil && found:
			if im.desired[j].Equal(now) {
				continue
			}
			im.desired[j] = *now
			im.enc.Set(now)
		case now != nil:
			im.desired = slices.Insert(im.desired, j, *now)
			im.enc.Set(now)
		case found:
			im.desired = slices.Delete(im.desired, j, j+1)
			im.enc.Delete(k)
		default:
			continue
		}
		im.unwritten[k] = true
		changed = true
	}
	return changed
}

// unwrittenKeys lists, sorted, the keys changed since the last good write.
func (im *fileImage) unwrittenKeys() []services.Key {
	keys := make([]services.Key, 0, len(im.unwritten))
	for k := range im.unwritten {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, services.Key.Compare)
	return keys
}

// publishKeys writes the change of the given keys. Nothing changed and the
// file current: nothing is written.
func (d *Daemon) publishKeys(m *merger, keys []services.Key) error {
	bs, ok := d.Sink.(BuffersSink)
	if !ok || !d.image.started {
		return d.publish(m)
	}
	if !d.image.set(keys, m.buildKeys(keys)) && d.image.current {
		lastWrite.SetToCurrentTime()
		return nil
	}
	changed, err := bs.WriteBuffers(d.image.enc.Buffers(), !d.image.current)
	if err != nil {
		d.image.current = false
		fileWriteErrors.Inc()
		d.Logger.Error("services.yaml not replaced; the previous one stays", "err", err)
		return fmt.Errorf("write: %w", err)
	}
	d.image.current = true
	if changed {
		fileWrites.Inc()
	}
	m.commitKeys(d.image.desired, d.image.unwrittenKeys())
	clear(d.image.unwritten)
	lastWrite.SetToCurrentTime()
	if changed {
		d.Logger.Debug("services.yaml written", "services", d.image.enc.Services(), "bytes", d.image.enc.Len())
	}
	return nil
}

// trackedChanges is a tracked ChangeSource: the status page counts its
// publishes as good reads too.
type trackedChanges struct {
	*tracked
	cs ChangeSource
}

func (t trackedChanges) WatchChanges(ctx context.Context, publish func(services.Delta)) error {
	return t.cs.WatchChanges(ctx, func(d services.Delta) {
		t.good()
		publish(d)
	})
}

func (t trackedChanges) ReadAgain() { t.cs.ReadAgain() }

// asSource is t for the daemon: a ChangeSource stays one.
func (t *tracked) asSource() Source {
	if cs, ok := t.Source.(ChangeSource); ok {
		return trackedChanges{tracked: t, cs: cs}
	}
	return t
}
