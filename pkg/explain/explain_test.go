package explain

import "testing"

func TestSetReplacesOnlyItsKey(t *testing.T) {
	b := NewBook(0, 0)
	b.Set("marathon:/a", []Entry{{Source: "marathon", App: "/a", Reason: NotRunning}})
	b.Set("marathon:/b", []Entry{{Source: "marathon", App: "/b", Port: 10001, Reason: InvalidLabel}})
	b.Set("marathon:/a", []Entry{{Source: "marathon", App: "/a", Reason: HealthFailing}})
	got, _ := b.Entries(Filter{})
	if len(got) != 2 || got[0].Reason != HealthFailing || got[1].Reason != InvalidLabel {
		t.Fatalf("entries %+v", got)
	}
	if got, _ := b.Entries(Filter{Port: 10001}); len(got) != 1 || got[0].App != "/b" {
		t.Fatalf("port filter: %+v", got)
	}
	if got, _ := b.Entries(Filter{App: "/a"}); len(got) != 1 || got[0].App != "/a" {
		t.Fatalf("app filter: %+v", got)
	}
	b.Set("marathon:/a", nil)
	if b.Len() != 1 {
		t.Fatalf("Len after removing /a: %d", b.Len())
	}
}

func TestBounded(t *testing.T) {
	b := NewBook(5, 3)
	many := make([]Entry, 10)
	b.Set("k1", many)
	b.Set("k2", many)
	b.Set("k3", many)
	got, omitted := b.Entries(Filter{})
	if len(got) != 5 || b.Len() != 5 {
		t.Fatalf("held %d (Len %d), want 5", len(got), b.Len())
	}
	if omitted != 25 {
		t.Fatalf("omitted %d, want 25", omitted)
	}
	b.Replace(map[string][]Entry{"only": make([]Entry, 2)})
	if got, omitted := b.Entries(Filter{}); len(got) != 2 || omitted != 0 {
		t.Fatalf("after Replace: %d entries, %d omitted", len(got), omitted)
	}
}
