package fault

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
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

// Issue 15 part 2, through the binary as CI runs it: one malformed app in
// the answer (a label value given as a number, as the original's README
// does; an id that is an object; a task host that is an array) takes out
// only itself, with a warning naming it, and the rest is printed. A body
// that is not JSON fails the run and prints nothing.
func TestMarathonMalformedAppOnceDryRun(t *testing.T) {
	const L = "com.meltwater.proxymatic.port."
	body := string(marathontest.AppsJSON([]*marathontest.App{
		webApp(10001, "10.0.0.1"),
		marathontest.BridgeApp("/product/weighted", 10002).WithLabel(L+"0.weight", "WEIGHT").WithTask("10.0.0.2", 31002),
		marathontest.BridgeApp("/product/broken", 10003).WithTask("10.0.0.3", 31003),
		marathontest.BridgeApp("/product/half", 10004).WithTask("10.0.0.4", 31004).WithTask("10.0.0.5", 31005),
	}))
	for _, r := range [][2]string{
		{`"WEIGHT"`, `100`},
		{`"id":"/product/broken"`, `"id":{"path":"/product/broken"}`},
		{`"host":"10.0.0.5"`, `"host":["10.0.0.5"]`},
	} {
		if !strings.Contains(body, r[0]) {
			t.Fatalf("stand-in body has no %s", r[0])
		}
		body = strings.Replace(body, r[0], r[1], 1)
	}
	m := marathontest.New(t)
	m.SetAppsJSON([]byte(body))
	run := func() (int, string, string) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(binSync, "--marathon", m.URL, "--once", "--dry-run")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	code, stdout, stderr := run()
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	f, _, err := services.Decode([]byte(stdout))
	if err != nil {
		t.Fatalf("output: %v\n%s", err, stdout)
	}
	var got []string
	for _, s := range f.Services {
		line := fmt.Sprintf("%s %d:", s.Name, s.Port)
		for _, srv := range s.Servers {
			line += fmt.Sprintf(" %s/%d", srv.Address(), srv.Weight)
		}
		got = append(got, line)
	}
	want := []string{
		"web.product 10001: 10.0.0.1:31000/500",
		"weighted.product 10002: 10.0.0.2:31002/100",
		"half.product 10004: 10.0.0.4:31004/500",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("services:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{"malformed app skipped", "apps[2]", "malformed tasks skipped", "/product/half", "tasks[1].host"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}

	m.SetAppsJSON([]byte("<html><body>502 Bad Gateway</body></html>"))
	code, stdout, stderr = run()
	if code == 0 || stdout != "" {
		t.Errorf("a body that is not JSON: exit %d, stdout %q; stderr:\n%s", code, stdout, stderr)
	}
}
