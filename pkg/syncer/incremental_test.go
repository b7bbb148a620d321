package syncer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// changeSource is a fake source publishing changes, as Marathon does.
type changeSource struct {
	name   string
	deltas chan services.Delta
}

func newChangeSource(name string) *changeSource {
	return &changeSource{name: name, deltas: make(chan services.Delta)}
}

func (c *changeSource) Name() string                                      { return c.name }
func (c *changeSource) Fetch(context.Context) ([]services.Service, error) { return nil, nil }
func (c *changeSource) Watch(context.Context, func([]services.Service)) error {
	panic("the daemon must follow a ChangeSource through WatchChanges")
}

func (c *changeSource) ReadAgain() {}

func (c *changeSource) WatchChanges(ctx context.Context, publish func(services.Delta)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-c.deltas:
			publish(d)
		}
	}
}

func (h *harness) pushDelta(src *changeSource, d services.Delta) {
	h.t.Helper()
	src.deltas <- d
	select {
	case <-h.updated:
	case <-time.After(30 * time.Second):
		h.t.Fatal("the daemon did not handle the change (hang guard)")
	}
}

// reference is the file a full merge of these states writes.
func reference(t *testing.T, states ...[]services.Service) []byte {
	t.Helper()
	var buf bytes.Buffer
	var srcs []Source
	for i, st := range states {
		f := newFake(fmt.Sprint("s", i))
		f.fetch = fetchOf(slices.Clone(st), nil)
		srcs = append(srcs, f)
	}
	d := &Daemon{Sources: srcs, Sink: printer{&buf}, Logger: discardLogger()}
	if err := d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestChangesAppliedKeyByKey(t *testing.T) {
	mar, reg := newChangeSource("marathon"), newFake("registrator")
	h := newHarness(t, mar, reg)
	h.start()
	web := svc("web", 10001, services.SourceMarathon, "10.0.0.1:31001")
	api := svc("api", 10002, services.SourceMarathon, "10.0.0.2:31002")
	h.pushDelta(mar, services.Delta{Full: true, Services: []services.Service{web, api}})
	regDB := svc("db", 10002, services.SourceRegistrator, "10.0.0.9:5432")
	h.push(reg, regDB)
	if got := names(h.decoded()); got != "web:10001/tcp:marathon api:10002/tcp:marathon" {
		t.Fatalf("file %s", got)
	}
	// A server added: one service changes.
	web2 := svc("web", 10001, services.SourceMarathon, "10.0.0.1:31001", "10.0.0.3:31003")
	h.pushDelta(mar, services.Delta{Services: []services.Service{web2}})
	if !bytes.Equal(h.file(), reference(t, []services.Service{web2, api}, []services.Service{regDB})) {
		t.Fatalf("after a change:\n%s", h.file())
	}
	if h.logs.count("msg=Modified service=web port=10001/tcp") != 1 {
		t.Errorf("change not logged once:\n%s", h.logs)
	}
	// Marathon's api goes: registrator's db wins the port now.
	h.pushDelta(mar, services.Delta{Removed: []services.Key{api.Key()}})
	if got := names(h.decoded()); got != "web:10001/tcp:marathon db:10002/tcp:registrator" {
		t.Fatalf("after the removal: %s", got)
	}
	if h.logs.count("msg=Modified service=db port=10002/tcp") != 1 {
		t.Errorf("takeover not logged:\n%s", h.logs)
	}
	// An invalid service is dropped and logged, the others stay.
	bad := svc("BAD NAME", 10003, services.SourceMarathon, "10.0.0.4:31004")
	h.pushDelta(mar, services.Delta{Services: []services.Service{bad}})
	if got := names(h.decoded()); got != "web:10001/tcp:marathon db:10002/tcp:registrator" {
		t.Fatalf("after an invalid service: %s", got)
	}
	if h.logs.count("invalid service dropped") != 1 {
		t.Errorf("invalid service not logged once:\n%s", h.logs)
	}
	// A change that changes nothing writes nothing.
	ino := h.inode()
	h.pushDelta(mar, services.Delta{Services: []services.Service{web2}})
	h.pushDelta(mar, services.Delta{})
	if h.inode() != ino {
		t.Error("an unchanged service replaced the file")
	}
	// A full state from the other source goes through the full merge.
	h.push(reg)
	if !bytes.Equal(h.file(), reference(t, []services.Service{web2}, nil)) {
		t.Fatalf("after registrator emptied:\n%s", h.file())
	}
}

// randomSvc draws a valid service on one of a few ports.
func randomSvc(r *rand.Rand, src services.Source) services.Service {
	port := 10001 + r.IntN(6)
	s := services.Service{Name: fmt.Sprint("svc", r.IntN(3)), Port: port, Protocol: []services.Protocol{services.TCP, services.UDP}[r.IntN(2)], Mode: services.ModeTCP, Source: src}
	for range r.IntN(3) {
		p := 31000 + r.IntN(4)
		if r.IntN(8) == 0 {
			p = port // net=host: dropped unless --expose-host
		}
		s.Servers = append(s.Servers, services.Server{IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(4))}), Port: p, Weight: services.DefaultWeight})
	}
	if r.IntN(10) == 0 {
		s.Name = "Invalid Name"
	}
	return s
}

// TestRandomChangesMatchFullMerge: after any sequence of changes from a
// changing source and whole states from another, the file is byte for
// byte what a full merge of the two states writes.
func TestRandomChangesMatchFullMerge(t *testing.T) {
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 3))
		mar, reg := newChangeSource("marathon"), newFake("registrator")
		h := newHarness(t, mar, reg)
		h.start()
		marState := map[services.Key]services.Service{}
		var regState []services.Service
		h.pushDelta(mar, services.Delta{Full: true})
		h.push(reg)
		for step := range 40 {
			switch r.IntN(5) {
			case 0:
				regState = nil
				seen := map[services.Key]bool{}
				for range r.IntN(4) {
					s := randomSvc(r, services.SourceRegistrator)
					if !seen[s.Key()] {
						seen[s.Key()] = true
						regState = append(regState, s)
					}
				}
				h.push(reg, cloneAll(regState)...)
			default:
				var d services.Delta
				seen := map[services.Key]bool{}
				for range 1 + r.IntN(3) {
					s := randomSvc(r, services.SourceMarathon)
					if seen[s.Key()] {
						continue
					}
					seen[s.Key()] = true
					if r.IntN(4) == 0 {
						d.Removed = append(d.Removed, s.Key())
						delete(marState, s.Key())
					} else {
						d.Services = append(d.Services, s.Clone())
						marState[s.Key()] = s
					}
				}
				h.pushDelta(mar, d)
			}
			var ms []services.Service
			for _, s := range marState {
				ms = append(ms, s.Clone())
			}
			if want := reference(t, ms, cloneAll(regState)); !bytes.Equal(h.file(), want) {
				t.Fatalf("seed %d step %d: file\n%s\nfull merge\n%s", seed, step, h.file(), want)
			}
		}
		if err := h.shutdown(); err != nil {
			t.Fatal(err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
