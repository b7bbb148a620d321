package explain

import (
	"slices"
	"testing"
)

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

// TestFilterFollowsServicesAndPorts: the reasons for one app are recorded
// where they are found, some with an app and no port (a failing task),
// some with a port and no app (the empty service sync publishes). Asking
// by port or by app must give both halves, or ?port= answers "every
// server filtered out" without saying why.
func TestFilterFollowsServicesAndPorts(t *testing.T) {
	b := NewBook(0, 0)
	b.Set("marathon /failing", []Entry{
		{Source: "marathon", App: "/failing", Task: "f.1", Service: "failing", Reason: HealthFailing},
		{Source: "marathon", App: "/failing", Task: "f.2", Service: "failing", Reason: NoHealthResult},
	})
	b.Set("marathon /unresolvable", []Entry{
		{Source: "marathon", App: "/unresolvable", Port: 10008, Reason: UnresolvableHost},
	})
	b.Set("marathon /other", []Entry{
		{Source: "marathon", App: "/other", Task: "o.1", Service: "other", Reason: NotRunning},
	})
	b.Set("sync 10004/tcp", []Entry{{Source: "sync", Service: "failing", Port: 10004, Reason: EmptyService}})
	b.Set("sync 10008/tcp", []Entry{{Source: "sync", Service: "unresolvable", Port: 10008, Reason: EmptyService}})
	b.Set("sync 10009/tcp", []Entry{{Source: "sync", Service: "other", Port: 10009, Reason: EmptyService}})
	// A net=host drop: recorded by the sync for the port alone; the app
	// had nothing else to say. Only the service name relates them.
	b.Set("sync 10011/tcp", []Entry{{Source: "sync", Service: "web.nethost", Port: 10011, Reason: NetHost}})

	reasons := func(f Filter) []Reason {
		got, _ := b.Entries(f)
		var rs []Reason
		for _, e := range got {
			rs = append(rs, e.Reason)
		}
		return rs
	}
	for _, c := range []struct {
		f    Filter
		want []Reason
	}{
		{Filter{Port: 10004}, []Reason{HealthFailing, NoHealthResult, EmptyService}},
		{Filter{App: "/failing"}, []Reason{HealthFailing, NoHealthResult, EmptyService}},
		{Filter{App: "/failing", Port: 10004}, []Reason{HealthFailing, NoHealthResult, EmptyService}},
		{Filter{App: "/unresolvable"}, []Reason{UnresolvableHost, EmptyService}},
		{Filter{Port: 10008}, []Reason{UnresolvableHost, EmptyService}},
		{Filter{App: "/failing", Port: 10009}, nil},
		{Filter{Port: 10010}, nil},
		{Filter{App: "/nethost/web", Service: "web.nethost"}, []Reason{NetHost}},
		{Filter{App: "/nethost/web"}, nil},
		{Filter{App: "/nethost/web", Service: "web.nethost", Port: 10009}, nil},
	} {
		if got := reasons(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%+v: reasons %v, want %v", c.f, got, c.want)
		}
	}
}
