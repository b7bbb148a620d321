package logging

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultRingSize is how many warnings and errors New keeps for the status
// page.
const DefaultRingSize = 50

// Bounds of one kept record: a message or attribute list from a huge input
// (a 1 MB etcd value) must not make the ring large.
const (
	maxMessage = 300
	maxAttrs   = 1000
)

// Record is one warning or error as the status page shows it.
type Record struct {
	Time    time.Time
	Level   slog.Level
	Message string
	// Source is the record's top-level "source" attribute ("marathon",
	// "registrator"), so that a page can say which source failed last.
	Source string
	// Attrs are the record's other attributes as key=value text.
	Attrs string
	// Count is how many times this same record (level, message, source
	// and attributes) was logged while it stayed in the ring; Time is
	// the last.
	Count int
}

func (r Record) same(o Record) bool {
	return r.Level == o.Level && r.Message == o.Message && r.Source == o.Source && r.Attrs == o.Attrs
}

// Ring keeps the most recent warnings and errors a logger wrote: the
// operator's "what went wrong lately" without access to the logs. A
// record logged again while the ring holds it (a retry failing every few
// seconds) is kept once, counted and moved to the front, so repeats do not
// push everything else out. It is safe for concurrent use.
type Ring struct {
	mu    sync.Mutex
	max   int
	recs  []Record // oldest first
	total uint64
}

// NewRing returns a ring keeping the last n distinct records (n < 1 keeps one).
func NewRing(n int) *Ring { return &Ring{max: max(n, 1)} }

func (r *Ring) add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	rec.Count = 1
	// At most max records to compare: a scan is cheaper than a map here.
	if i := slices.IndexFunc(r.recs, rec.same); i >= 0 {
		rec.Count += r.recs[i].Count
		r.recs = slices.Delete(r.recs, i, i+1)
	}
	if len(r.recs) == r.max {
		r.recs = slices.Delete(r.recs, 0, 1)
	}
	r.recs = append(r.recs, rec)
}

// Records returns the kept records, newest first, and how many warnings
// and errors were logged in all (repeats and older ones included).
func (r *Ring) Records() (newestFirst []Record, total uint64) {
	if r == nil {
		return nil, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.recs)
	slices.Reverse(out)
	return out, r.total
}

// Last returns the newest record whose Source is source.
func (r *Ring) Last(source string) (Record, bool) {
	recs, _ := r.Records()
	i := slices.IndexFunc(recs, func(rec Record) bool { return rec.Source == source })
	if i < 0 {
		return Record{}, false
	}
	return recs[i], true
}

// RingOf returns the ring behind a logger New built (or one derived from
// it with With), nil for any other logger.
func RingOf(l *slog.Logger) *Ring {
	if l == nil {
		return nil
	}
	if h, ok := l.Handler().(*ringHandler); ok {
		return h.ring
	}
	return nil
}

// NewRingHandler passes every record to next and keeps the warnings and
// errors in ring.
func NewRingHandler(next slog.Handler, ring *Ring) slog.Handler {
	return &ringHandler{next: next, ring: ring}
}

// ringHandler tees warnings and errors into a Ring. The attributes added
// with WithAttrs are rendered once, when they are added.
type ringHandler struct {
	next   slog.Handler
	ring   *Ring
	source string // a "source" attribute added with WithAttrs
	attrs  string // the other attributes added with WithAttrs
	group  string // "a.b." prefix of WithGroup
}

// Enabled is true for every warning and error: the ring keeps them even
// where the output would not show them.
func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		source := h.source
		var b strings.Builder
		b.WriteString(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			if h.group == "" && a.Key == "source" {
				source = a.Value.Resolve().String()
				return true
			}
			appendAttr(&b, h.group, a)
			return b.Len() < maxAttrs
		})
		h.ring.add(Record{Time: rec.Time, Level: rec.Level, Message: clip(rec.Message, maxMessage),
			Source: source, Attrs: clip(b.String(), maxAttrs)})
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *ringHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		if h.group == "" && a.Key == "source" {
			c.source = a.Value.Resolve().String()
			continue
		}
		appendAttr(&b, h.group, a)
	}
	c.attrs = clip(b.String(), maxAttrs)
	return &c
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

// appendAttr writes " key=value" (groups flattened to a.b=value), quoting
// values that would not read as one word.
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	if a.Equal(slog.Attr{}) {
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	s := v.String()
	if s == "" || strings.ContainsAny(s, " \t\n\r\"=") || !strconv.CanBackquote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the page never shows half a character.
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
