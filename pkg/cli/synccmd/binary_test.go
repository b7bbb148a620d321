package synccmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// These tests run the real proxymatic-sync binary, as a user or CI job
// would, against the Marathon stand-in and a real etcd.

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilds()
	os.Exit(code)
}

// runBinary runs bin to completion and returns its exit code and outputs.
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return code, out.String(), errOut.String()
}

// brokenSources is a Marathon app and etcd keys, some served and some not.
func brokenSources(t *testing.T) (*marathontest.Server, *etcdtest.Etcd) {
	t.Helper()
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	e := etcdtest.Start(t)
	e.Put(t, "/services/db/h1:db_1:5432", "10.0.0.5:31432")
	e.Put(t, "/services/cache/h1:cache_1:6379", "not-an-address")
	e.Put(t, "/services/Bad_Name!/h1:x_1:7000", "10.0.0.6:31700")
	return m, e
}

func TestExplainTableOnStderrStdoutUnchanged(t *testing.T) {
	bin := testbin.Build(t, "proxymatic-sync")
	m, e := brokenSources(t)
	args := []string{"--once", "--dry-run", "-m", m.URL, "-r", "etcd3://" + e.Endpoint + "/services"}

	code, plain, _ := runBinary(t, bin, args...)
	if code != 0 {
		t.Fatalf("without --explain: exit %d", code)
	}
	code, stdout, stderr := runBinary(t, bin, append(args, "--explain")...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if stdout != plain {
		t.Errorf("--explain changed stdout:\n%s\nwithout it:\n%s", stdout, plain)
	}
	decodeOutput(t, stdout)

	// The table: a header and one line per key left out, in key order.
	var table []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "SOURCE ") || strings.HasPrefix(l, "registrator ") || strings.HasPrefix(l, "marathon ") {
			table = append(table, l)
		}
	}
	if len(table) != 3 {
		t.Fatalf("want a header and 2 entries on stderr, got:\n%s", stderr)
	}
	if f := strings.Fields(table[0]); strings.Join(f, " ") != "SOURCE APP/KEY TASK SERVICE PORT PROXY REASON DETAIL" {
		t.Errorf("header %q", table[0])
	}
	want := [][]string{
		{"registrator", "/services/Bad_Name!/h1:x_1:7000", "h1:x_1:7000", "-", "-", "-", "invalid-name"},
		{"registrator", "/services/cache/h1:cache_1:6379", "h1:cache_1:6379", "cache", "6379/tcp", "-", "malformed-key"},
	}
	for i, w := range want {
		f := strings.Fields(table[i+1])
		if len(f) < len(w) || strings.Join(f[:len(w)], " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want it to start %q", i+1, table[i+1], w)
		}
	}
	if !strings.Contains(table[2], `value "not-an-address" is not ip:port`) {
		t.Errorf("the detail is not on the line: %q", table[2])
	}

	// Nothing left out: one line saying so.
	e.Delete(t, "/services/cache/h1:cache_1:6379")
	e.Delete(t, "/services/Bad_Name!/h1:x_1:7000")
	code, _, stderr = runBinary(t, bin, append(args, "--explain")...)
	if code != 0 || !strings.Contains(stderr, "explain: nothing left out") {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}

	// --explain belongs to the one-shot runs.
	code, _, stderr = runBinary(t, bin, "-m", m.URL, "--explain")
	if code != 2 || !strings.Contains(stderr, "--explain goes with --once or --dry-run") {
		t.Errorf("--explain without --once: exit %d, %q", code, stderr)
	}
}

// getJSON fetches url into v and returns the status code (0 when the
// endpoint does not answer yet).
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, b)
		}
	}
	return resp.StatusCode
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestStatusExplainAndMetricsOfTheDaemon(t *testing.T) {
	bin := testbin.Build(t, "proxymatic-sync", "-X github.com/meltwater/proxymatic/pkg/version.version=v9.8.7-test",
		"-X github.com/meltwater/proxymatic/pkg/version.commit=feedc0de")
	m, e := brokenSources(t)
	// registrator's service on Marathon's port: the daemon's own reason.
	e.Put(t, "/services/clash/h1:clash_1:10001", "10.0.0.8:31801")
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	testbin.StartProcess(t, bin, []string{"-m", m.URL, "-r", "etcd3://" + e.Endpoint + "/services",
		"-o", filepath.Join(t.TempDir(), "services.yaml"), "--status-endpoint", addr})
	base := "http://" + addr
	var doc statuspage.ExplainDoc
	testbin.WaitFor(t, "three reasons on /status/explain", func() bool {
		doc = statuspage.ExplainDoc{}
		return getJSON(t, base+"/status/explain", &doc) == 200 && len(doc.Entries) == 3
	})
	if doc.Omitted != 0 {
		t.Errorf("omitted %d", doc.Omitted)
	}
	var clash statuspage.ExplainDoc
	if getJSON(t, base+"/status/explain?port=10001", &clash) != 200 || len(clash.Entries) != 1 ||
		clash.Entries[0].Source != "sync" || clash.Entries[0].Reason != explain.PortTaken || clash.Entries[0].Service != "clash" {
		t.Errorf("?port=10001: %+v, want the daemon's port-taken for registrator's clash", clash)
	}
	var byPort statuspage.ExplainDoc
	if getJSON(t, base+"/status/explain?port=6379", &byPort) != 200 || len(byPort.Entries) != 1 ||
		byPort.Entries[0].Reason != explain.MalformedKey || byPort.Entries[0].App != "/services/cache/h1:cache_1:6379" {
		t.Errorf("?port=6379: %+v", byPort)
	}
	var byApp statuspage.ExplainDoc
	if getJSON(t, base+"/status/explain?app=/services/Bad_Name!/h1:x_1:7000", &byApp) != 200 || len(byApp.Entries) != 1 ||
		byApp.Entries[0].Reason != explain.InvalidName {
		t.Errorf("?app=: %+v", byApp)
	}
	for _, q := range []string{"?port=abc", "?port=0", "?app="} {
		if code := getJSON(t, base+"/status/explain"+q, nil); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}

	// A key fixed in etcd loses its reason on the next compile.
	e.Put(t, "/services/cache/h1:cache_1:6379", "10.0.0.7:31379")
	testbin.WaitFor(t, "the fixed key's reason to go", func() bool {
		doc = statuspage.ExplainDoc{}
		return getJSON(t, base+"/status/explain?port=6379", &doc) == 200 && len(doc.Entries) == 0
	})

	metrics := getText(t, base+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`proxymatic_build_info{commit="feedc0de",goversion="%s",version="v9.8.7-test"} 1`, runtime.Version()),
		`proxymatic_explain_entries{reason="invalid-name",source="registrator"} 1`,
		"proxymatic_explain_omitted 0",
		"proxymatic_marathon_event_stream_up 1",
		"proxymatic_registrator_watch_up 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, `reason="malformed-key"`) {
		t.Error("/metrics still counts the fixed key")
	}
}

// Marathon's own reasons are recorded by the marathon package; this is
// the operator-facing contract they must meet through the binary.
func TestMarathonReasonsThroughTheBinary(t *testing.T) {
	bin := testbin.Build(t, "proxymatic-sync")
	m := marathontest.New(t)
	m.SetApps(
		marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001),
		marathontest.BridgeApp("/product/api", 10002).WithLabel("com.meltwater.proxymatic.port.0.weight", "heavy").
			WithTask("10.0.0.3", 31003),
		// net=host: its server listens on the service port, so the sync
		// drops the whole service and records it by port alone.
		marathontest.BridgeApp("/product/nethost", 10003).WithTask("10.0.0.4", 10003),
	)
	code, _, stderr := runBinary(t, bin, "--once", "--dry-run", "--explain", "-m", m.URL)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var line string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "marathon ") && strings.Contains(l, "/product/api") {
			line = l
		}
	}
	if !strings.Contains(line, "invalid-label") || !strings.Contains(line, "com.meltwater.proxymatic.port.0.weight") || !strings.Contains(line, "heavy") {
		t.Errorf("no invalid-label line naming the label and its value for /product/api:\n%s", stderr)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	testbin.StartProcess(t, bin, []string{"-m", m.URL, "-o", filepath.Join(t.TempDir(), "services.yaml"), "--status-endpoint", addr})
	var doc statuspage.ExplainDoc
	testbin.WaitFor(t, "the app's reason on /status/explain", func() bool {
		doc = statuspage.ExplainDoc{}
		return getJSON(t, "http://"+addr+"/status/explain?app=/product/api", &doc) == 200 && len(doc.Entries) > 0
	})
	if e := doc.Entries[0]; e.Source != "marathon" || e.Reason != explain.InvalidLabel || e.App != "/product/api" ||
		!strings.Contains(e.Detail, "weight") {
		t.Errorf("entry %+v", e)
	}
	var web statuspage.ExplainDoc
	if getJSON(t, "http://"+addr+"/status/explain?app=/product/web", &web) != 200 || len(web.Entries) != 0 {
		t.Errorf("the served app has reasons: %+v", web.Entries)
	}
	// ?app= finds the port dropped whole though the drop names no app.
	var nh statuspage.ExplainDoc
	if getJSON(t, "http://"+addr+"/status/explain?app=/product/nethost", &nh) != 200 || len(nh.Entries) != 1 ||
		nh.Entries[0].Reason != explain.NetHost || nh.Entries[0].Port != 10003 {
		t.Errorf("?app=/product/nethost: %+v, want its net=host drop", nh.Entries)
	}
}

func TestVersionFlag(t *testing.T) {
	bin := testbin.Build(t, "proxymatic-sync", "-X github.com/meltwater/proxymatic/pkg/version.version=v9.8.7-test",
		"-X github.com/meltwater/proxymatic/pkg/version.commit=feedc0de")
	// No source given: --version needs no configuration.
	code, stdout, stderr := runBinary(t, bin, "--version")
	want := fmt.Sprintf("proxymatic-sync v9.8.7-test (commit feedc0de, %s)\n", runtime.Version())
	if code != 0 || stdout != want {
		t.Errorf("--version: exit %d, %q (stderr %q), want %q", code, stdout, stderr, want)
	}
	// Without link-time flags: "dev", and the commit Go stamped (or "unknown").
	plain := testbin.Build(t, "proxymatic-sync")
	_, stdout, _ = runBinary(t, plain, "--version")
	if !strings.HasPrefix(stdout, "proxymatic-sync dev (commit ") || !strings.HasSuffix(stdout, ", "+runtime.Version()+")\n") {
		t.Errorf("--version of a plain build: %q", stdout)
	}
}
