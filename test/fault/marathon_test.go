package fault

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

func webApp(port int, ips ...string) *marathontest.App {
	a := marathontest.BridgeApp("/product/web", port)
	for i, ip := range ips {
		a.WithTask(ip, 31000+i)
	}
	return a
}

// waitTried waits until the stand-in has answered n more /v2/apps requests
// than it had at the call: proof that the daemon really met the fault.
func waitTried(t testing.TB, m *marathontest.Server, n int, within time.Duration) {
	t.Helper()
	base := m.Requests("/v2/apps")
	eventually(t, within, fmt.Sprintf("%d more /v2/apps requests", n), func() bool { return m.Requests("/v2/apps") >= base+n })
}

// Every replica refuses connections: the file keeps its bytes, and the
// daemon picks the new state up by itself once a replica is back.
func TestMarathonAllReplicasDown(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	r1, r2 := newFlaky(t, m.URL), newFlaky(t, m.URL)
	s := startSync(t, "", "--marathon", r1.URL+","+r2.URL)
	good := s.waitFile(t, 10*time.Second, "10.0.0.1")
	eventually(t, 5*time.Second, "status OK", func() bool { return s.statusCode() == http.StatusOK })

	r1.Down()
	r2.Down()
	m.SetApps(webApp(10001, "10.0.0.2"))
	before := metric(t, s.status, "proxymatic_marathon_request_failures_total")
	eventually(t, 10*time.Second, "failed requests counted", func() bool {
		return metric(t, s.status, "proxymatic_marathon_request_failures_total") >= before+4
	})
	if !fileEquals(s.out, good) {
		t.Fatalf("file changed while every replica was down:\n%s", readFile(t, s.out))
	}
	s.alive(t)

	r2.Up()
	s.waitFile(t, 15*time.Second, "10.0.0.2")
	if strings.Contains(string(readFile(t, s.out)), "10.0.0.1") {
		t.Fatal("old server still in the file")
	}
}

// The first replica (the one tried first) answers 5xx while the second
// answers: the daemon fails over and follows the healthy one.
func TestMarathonLeader5xxFollowerAnswers(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			m1, m2 := marathontest.New(t), marathontest.New(t)
			m1.Fail(code)
			m1.SetApps(webApp(10001, "10.9.9.9")) // never served: m1 fails
			m2.SetApps(webApp(10001, "10.0.0.1"))
			s := startSync(t, "", "--marathon", m1.URL+","+m2.URL)
			s.waitFile(t, 10*time.Second, "10.0.0.1")
			m2.SetApps(webApp(10001, "10.0.0.1", "10.0.0.3"))
			m2.PushEvent("status_update_event")
			b := s.waitFile(t, 10*time.Second, "10.0.0.3")
			if bytes.Contains(b, []byte("10.9.9.9")) {
				t.Fatal("the failing replica's state was published")
			}
		})
	}
}

// The event stream goes silent without closing: the safety-net poll still
// brings changes in, and the daemon neither hangs nor exits.
func TestMarathonEventStreamStalls(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	s := startSync(t, "", "--marathon", m.URL)
	s.waitFile(t, 10*time.Second, "10.0.0.1")
	eventually(t, 5*time.Second, "event stream open", func() bool { return m.Subscribers() > 0 })
	m.StallEvents(true)
	m.SetApps(webApp(10001, "10.0.0.2"))
	m.PushEvent("status_update_event") // swallowed by the stall
	s.waitFile(t, 10*time.Second, "10.0.0.2")
	if c := s.statusCode(); c != http.StatusOK {
		t.Fatalf("status %d while the stream is stalled", c)
	}
	m.StallEvents(false)
	m.SetApps(webApp(10001, "10.0.0.3"))
	m.PushEvent("status_update_event")
	s.waitFile(t, 10*time.Second, "10.0.0.3")
}

// An answer cut off mid-JSON publishes nothing: byte-equal file; the next
// whole answer is published.
func TestMarathonBodyCutMidJSON(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	s := startSync(t, "", "--marathon", m.URL)
	good := s.waitFile(t, 10*time.Second, "10.0.0.1")

	next := marathontest.AppsJSON([]*marathontest.App{webApp(10001, "10.0.0.2"), webApp(10002, "10.0.0.5")})
	m.SetAppsJSON(next)
	// Cut after the first app: a prefix that is a plausible, smaller state.
	m.CutBody(bytes.Index(next, []byte("10.0.0.5")))
	before := metric(t, s.status, "proxymatic_marathon_request_failures_total")
	m.PushEvent("status_update_event")
	waitTried(t, m, 3, 15*time.Second)
	if got := metric(t, s.status, "proxymatic_marathon_request_failures_total"); got <= before {
		t.Fatalf("cut bodies not counted as failures (%v -> %v)", before, got)
	}
	if !fileEquals(s.out, good) {
		t.Fatalf("a truncated answer changed the file:\n%s", readFile(t, s.out))
	}
	m.CutBody(0)
	s.waitFile(t, 15*time.Second, "10.0.0.2", "10.0.0.5")
}

// A 30 MB answer: a valid one is published whole; 30 MB of junk is not.
func TestMarathon30MBAnswer(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	s := startSync(t, "", "--marathon", m.URL)
	good := s.waitFile(t, 10*time.Second, "10.0.0.1")

	// 30 MB of a valid shape whose first app is fine and then a string that
	// never ends.
	junk := append([]byte(`{"apps":[`), bytes.TrimSuffix(bytes.TrimPrefix(marathontest.AppsJSON([]*marathontest.App{webApp(10001, "10.0.0.9")}), []byte(`{"apps":[`)), []byte("]}"))...)
	junk = append(junk, []byte(`,{"id":"/x","labels":{"a":"`)...)
	junk = append(junk, bytes.Repeat([]byte("A"), 30<<20)...)
	m.SetAppsJSON(junk)
	m.PushEvent("status_update_event")
	waitTried(t, m, 2, 30*time.Second)
	if !fileEquals(s.out, good) {
		t.Fatal("30 MB of junk changed the file")
	}

	apps := marathontest.Generate(7000, 4)
	// IP literals: the test must not depend on DNS for its 200 host names.
	for i, a := range apps {
		for j, tk := range a.Tasks {
			tk.Host = fmt.Sprintf("10.1.%d.%d", (i*4+j)/250%250, (i*4+j)%250+1)
		}
	}
	body := marathontest.AppsJSON(apps)
	if len(body) < 30<<20 {
		t.Fatalf("generated body is only %d bytes", len(body))
	}
	t.Logf("valid answer: %d apps, %.1f MB", len(apps), float64(len(body))/(1<<20))
	m.SetAppsJSON(body)
	m.PushEvent("status_update_event")
	eventually(t, 60*time.Second, "the 30 MB state published", func() bool {
		s.alive(t)
		st, err := os.Stat(s.out)
		return err == nil && st.Size() > int64(len(good))*100
	})
	s.alive(t)
}
