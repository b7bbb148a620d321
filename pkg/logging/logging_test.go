package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "json", false)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("shown", "k", "v")
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["msg"] != "shown" || m["k"] != "v" {
		t.Fatalf("json line %q: %v", b.String(), err)
	}
	b.Reset()
	l, _ = New(&b, "", true)
	l.Debug("debug on")
	if !strings.Contains(b.String(), "level=DEBUG") {
		t.Errorf("verbose text: %q", b.String())
	}
	if _, err := New(&b, "xml", false); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Errorf("bad format: %v", err)
	}
}

func TestRingKeepsRecentWarningsAndErrors(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "", false)
	if err != nil {
		t.Fatal(err)
	}
	ring := RingOf(l)
	if ring == nil {
		t.Fatal("New's logger has no ring")
	}
	l.Info("not kept")
	src := l.With("source", "registrator", "url", "etcd://h:1/p")
	src.Warn("skipping key", "key", `/services/<x>/a b`, "n", 3)
	l.WithGroup("g").Error("boom", "source", "grouped", "err", "it = broken")
	if RingOf(src) != ring {
		t.Error("a logger derived with With has another ring")
	}
	recs, total := ring.Records()
	if total != 2 || len(recs) != 2 {
		t.Fatalf("total %d, records %+v", total, recs)
	}
	if recs[0].Message != "boom" || recs[0].Level != slog.LevelError || recs[0].Source != "" ||
		recs[0].Attrs != `g.source=grouped g.err="it = broken"` {
		t.Errorf("newest record %+v", recs[0])
	}
	if recs[1].Message != "skipping key" || recs[1].Source != "registrator" ||
		recs[1].Attrs != `url=etcd://h:1/p key="/services/<x>/a b" n=3` {
		t.Errorf("older record %+v", recs[1])
	}
	if last, ok := ring.Last("registrator"); !ok || last.Message != "skipping key" {
		t.Errorf("Last(registrator) = %+v, %v", last, ok)
	}
	if _, ok := ring.Last("marathon"); ok {
		t.Error("Last(marathon) found a record")
	}
	// The records still reach the output.
	if !strings.Contains(b.String(), "msg=\"skipping key\"") || !strings.Contains(b.String(), "msg=boom") {
		t.Errorf("output:\n%s", b.String())
	}
}

func TestRingIsBounded(t *testing.T) {
	ring := NewRing(3)
	l := slog.New(NewRingHandler(slog.DiscardHandler, ring))
	for i := range 10 {
		l.Warn("w", "i", i, "big", strings.Repeat("x", 5000))
	}
	recs, total := ring.Records()
	if total != 10 || len(recs) != 3 {
		t.Fatalf("total %d, %d records", total, len(recs))
	}
	for i, want := range []string{"i=9", "i=8", "i=7"} {
		if !strings.HasPrefix(recs[i].Attrs, want+" ") || len(recs[i].Attrs) > maxAttrs+len("…") {
			t.Errorf("record %d: %d bytes, starts %q", i, len(recs[i].Attrs), recs[i].Attrs[:10])
		}
	}
	if RingOf(slog.New(slog.DiscardHandler)) != nil {
		t.Error("RingOf a logger without a ring")
	}
}

func TestRingCountsRepeats(t *testing.T) {
	ring := NewRing(2)
	l := slog.New(NewRingHandler(slog.DiscardHandler, ring))
	l.Warn("retrying", "port", 1)
	l.Error("other")
	l.Warn("retrying", "port", 1)
	l.Warn("retrying", "port", 2) // not the same record
	l.Warn("retrying", "port", 1)
	recs, total := ring.Records()
	if total != 5 || len(recs) != 2 {
		t.Fatalf("total %d, records %+v", total, recs)
	}
	if recs[0].Attrs != "port=1" || recs[0].Count != 3 || recs[1].Attrs != "port=2" || recs[1].Count != 1 {
		t.Errorf("records %+v: want port=1 three times, newest, then port=2 (\"other\" pushed out)", recs)
	}
}
