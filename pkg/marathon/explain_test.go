package marathon

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// reasons lists the book's entries as "app reason detail" lines.
func reasons(b *explain.Book) string {
	es, _ := b.Entries(explain.Filter{})
	var out []string
	for _, e := range es {
		line := e.App + " " + string(e.Reason)
		if e.Task != "" {
			line += " task"
		}
		if e.Port != 0 {
			line += " " + strconv.Itoa(e.Port)
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func explainedApps() []*marathontest.App {
	bad := marathontest.BridgeApp("/prod/web", 10001).WithLabel(LabelPrefix+"0.weight", "heavy").
		WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	bad.AddTask("10.0.0.1", 31001).Unhealthy("HTTP 500")
	bad.AddTask("10.0.0.2", 31002).Health = nil
	bad.AddTask("10.0.0.3", 31003).WithState("TASK_KILLING")
	bad.AddTask("10.0.0.4", 10001) // net=host: the syncer's reason, not Marathon's
	canary := marathontest.BridgeApp("/prod/canary", 10099).WithLabel(LabelPrefix+"0.servicePort", "10001")
	canary.AddTask("nowhere.invalid", 31005)
	return []*marathontest.App{bad, canary, marathontest.BridgeApp("/Bad Name", 10002)}
}

const wantReasons = `/Bad Name invalid-name
/prod/canary port-taken 10001
/prod/canary unresolvable-host 10001
/prod/web health-failing task
/prod/web invalid-label
/prod/web killing task
/prod/web no-health-result task`

func TestFetchExplains(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(explainedApps()...)
	book := explain.NewBook(0, 0)
	s, _ := newSource(t, Options{URLs: []string{m.URL}, Explain: book})
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := reasons(book); got != wantReasons {
		t.Errorf("reasons\n%s\nwant\n%s", got, wantReasons)
	}
	// A full compile replaces Marathon's part: a fixed app loses its key.
	m.SetApps(marathontest.BridgeApp("/prod/web", 10001).WithTask("10.0.0.1", 31001))
	book.Set("registrator /other", []explain.Entry{{Source: "registrator", App: "/other", Reason: explain.MalformedKey}})
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := reasons(book); got != "/other malformed-key" {
		t.Errorf("after a clean compile, reasons\n%s", got)
	}
}

func TestWatchExplains(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(explainedApps()...)
	book := explain.NewBook(0, 0)
	startFollowing(t, m, Options{Explain: book})
	if got := reasons(book); got != wantReasons {
		t.Errorf("reasons\n%s\nwant\n%s", got, wantReasons)
	}
	// The canary goes: its key goes with it.
	m.DeleteApp("/prod/canary")
	waitFor(t, "canary reasons removed", func() bool { return !strings.Contains(reasons(book), "/prod/canary") })
	// The failing task passes.
	tk := m.App("/prod/web").Tasks[0]
	m.SetHealth("/prod/web", tk.ID, true)
	waitFor(t, "health reason removed", func() bool { return !strings.Contains(reasons(book), "health-failing") })
}

// A malformed app or task (decode.go, "Malformed apps") is explained under
// its app, by Fetch and by the watching state alike, and the watching
// state serves what Fetch serves: the skipped app nothing, the app with a
// skipped task its other tasks. The watching state logs it once, when it
// reads the app, not on each recompile.
func TestMalformedAppsExplainedAndFollowed(t *testing.T) {
	const want = `/prod/float invalid-label
/prod/halftasks malformed-field`
	m := marathontest.New(t)
	m.SetAppsJSON(malformedBody())
	book := explain.NewBook(0, 0)
	s, _ := newSource(t, Options{URLs: []string{m.URL}, Explain: book})
	fetched, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := reasons(book)
	// The app without a usable id is explained under that id ("").
	if !strings.Contains(got, want) || !strings.Contains(got, " malformed-field") || strings.Count(got, "malformed-field") != 2 {
		t.Errorf("Fetch reasons\n%s\nwant %s and the skipped app's", got, want)
	}

	book2 := explain.NewBook(0, 0)
	_, f, logs := startFollowing(t, m, Options{Explain: book2})
	f.wait(t, summary(fetched)...)
	if got2 := reasons(book2); got2 != got {
		t.Errorf("watching reasons\n%s\nFetch reasons\n%s", got2, got)
	}
	// An event recompiles /prod/halftasks: still explained, not logged again.
	before := strings.Count(logs.String(), "malformed tasks skipped")
	m.PushRawEvent("status_update_event", fmt.Sprintf(`{"eventType":"status_update_event","appId":"/prod/halftasks","taskId":%q,"taskStatus":"TASK_RUNNING","host":"10.0.0.9","ports":[31009],"ipAddresses":[],"version":"2024-03-01T09:59:00.000Z","timestamp":"2024-03-01T10:00:00.000Z"}`, "prod_halftasks.extra"))
	waitFor(t, "the event applied", func() bool {
		return strings.Contains(strings.Join(summary(f.services()), "\n"), "10.0.0.9")
	})
	if got3 := reasons(book2); !strings.Contains(got3, "/prod/halftasks malformed-field") {
		t.Errorf("after an event, reasons\n%s", got3)
	}
	if n := strings.Count(logs.String(), "malformed tasks skipped"); n != before {
		t.Errorf("the malformed app was logged again on an event (%d lines, was %d)", n, before)
	}
}
