package registrator

import (
	"errors"
	"strings"

	"github.com/meltwater/proxymatic/pkg/explain"
)

// explainer keeps, for Options.Explain, why each key is not served: keys
// that do not parse (for as long as they stay) and keys left out of a
// compile, such as a host name that does not resolve (recomputed on every
// compile). Each compile
// replaces the book's entries under "registrator <etcd key>" with these,
// and removes those of keys that are served again or gone. A nil explainer
// records nothing.
type explainer struct {
	book   *explain.Book
	bad    map[string]explain.Entry
	lost   map[string]explain.Entry
	booked map[string]bool // book keys set by the last record
}

func newExplainer(book *explain.Book) *explainer {
	if book == nil {
		return nil
	}
	return &explainer{book: book, bad: map[string]explain.Entry{}, lost: map[string]explain.Entry{}, booked: map[string]bool{}}
}

// rejected notes a key ParseKey refused; r is what it parsed before.
func (x *explainer) rejected(key, rel string, r Registration, err error) {
	if x == nil {
		return
	}
	e := entry(key, rel, r)
	e.Reason = explain.MalformedKey
	var ke *KeyError
	if errors.As(err, &ke) {
		e.Reason = ke.Reason
	}
	e.Detail = err.Error()
	x.bad[key] = e
}

// parsed forgets a key that parses now, or is gone.
func (x *explainer) parsed(key string) {
	if x != nil {
		delete(x.bad, key)
	}
}

// compiling starts a compile: the port collisions are found again.
func (x *explainer) compiling() {
	if x != nil {
		clear(x.lost)
	}
}

// leftOut notes a key that parsed but whose server is left out of this
// compile (a host name that does not resolve).
func (x *explainer) leftOut(prefix, key string, r Registration, reason explain.Reason, detail string) {
	if x == nil {
		return
	}
	rel, _ := relKey(prefix, key)
	e := entry(key, rel, r)
	e.Reason = reason
	e.Detail = detail
	x.lost[key] = e
}

// record writes the compile's reasons into the book.
func (x *explainer) record() {
	if x == nil {
		return
	}
	now := make(map[string]bool, len(x.bad)+len(x.lost))
	for key, e := range x.bad {
		x.book.Set(bookKey(key), []explain.Entry{e})
		now[key] = true
	}
	for key, e := range x.lost {
		if !now[key] {
			x.book.Set(bookKey(key), []explain.Entry{e})
			now[key] = true
		}
	}
	for key := range x.booked {
		if !now[key] {
			x.book.Set(bookKey(key), nil)
		}
	}
	x.booked = now
}

func bookKey(etcdKey string) string { return "registrator " + etcdKey }

// entry fills what is known of a key: the key as App, the container part
// as Task, and the service and port when they parsed.
func entry(key, rel string, r Registration) explain.Entry {
	e := explain.Entry{Source: "registrator", App: key, Service: r.Name, Port: r.Port}
	if _, id, ok := strings.Cut(rel, "/"); ok {
		e.Task = clip(id)
	}
	if r.Port != 0 {
		e.Protocol = string(r.Protocol)
	}
	return e
}
