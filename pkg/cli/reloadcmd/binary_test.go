package reloadcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// These tests run the real proxymatic-reload binary with the real pen.

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilds()
	os.Exit(code)
}

const ldflags = "-X github.com/meltwater/proxymatic/pkg/version.version=v9.8.7-test -X github.com/meltwater/proxymatic/pkg/version.commit=feedc0de"

func TestVersionFlag(t *testing.T) {
	bin := testbin.Build(t, "proxymatic-reload", ldflags)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--version", "--run-dir", "") // an invalid run dir: --version checks nothing
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("--version: %v", err)
	}
	if want := fmt.Sprintf("proxymatic-reload v9.8.7-test (commit feedc0de, %s)\n", runtime.Version()); out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}

func getBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusExplainAndMetrics(t *testing.T) {
	testbin.Require(t, "pen")
	bin := testbin.Build(t, "proxymatic-reload", ldflags)
	run, err := os.MkdirTemp("", "pm-reloadcmd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(run, 0o755) // pen drops to nobody when the test runs as root
	t.Cleanup(func() { os.RemoveAll(run) })

	busy := testbin.FreePort(t, "tcp")
	holder, err := net.Listen("tcp", fmt.Sprintf(":%d", busy))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	udp := testbin.FreePort(t, "udp")
	file := filepath.Join(run, "services.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`version: 1
services:
- name: taken
  port: %d
  servers:
  - {ip: 127.0.0.1, port: 31000}
- name: dns
  port: %d
  protocol: udp
  servers:
  - {ip: 127.0.0.1, port: 31001}
  - {ip: 127.0.0.1, port: 31002}
- name: Bad
  port: 10003
`, busy, udp)), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t, "tcp"))
	testbin.StartProcess(t, bin, []string{"--services", file, "--run-dir", run, "--pen-servers", "1",
		"--status-endpoint", addr, "--shutdown-delay", "100ms"})
	base := "http://" + addr

	var doc statuspage.ExplainDoc
	testbin.WaitFor(t, "three reasons on /status/explain", func() bool {
		code, body := getBody(base + "/status/explain")
		doc = statuspage.ExplainDoc{}
		return code == 200 && json.Unmarshal([]byte(body), &doc) == nil && len(doc.Entries) == 3
	})
	got := map[explain.Reason]explain.Entry{}
	for _, e := range doc.Entries {
		if e.Source != "reload" {
			t.Errorf("entry from %q", e.Source)
		}
		got[e.Reason] = e
	}
	if e := got[explain.PortInUse]; e.Service != "taken" || e.Port != busy || e.Protocol != "tcp" || e.Proxy != "pen" {
		t.Errorf("port-in-use %+v", e)
	}
	if e := got[explain.PenSlotsFull]; e.Service != "dns" || e.Port != udp || e.Protocol != "udp" || !strings.Contains(e.Detail, "1 server left out: more servers than --pen-servers") {
		t.Errorf("pen-slots-full %+v", e)
	}
	if e := got[explain.NotInFile]; e.Service != "Bad" || e.Port != 10003 || e.Proxy != "pen" || !strings.Contains(e.Detail, "(line 13)") {
		t.Errorf("dropped-from-file %+v", e)
	}
	code, body := getBody(fmt.Sprintf("%s/status/explain?port=%d", base, busy))
	if code != 200 || strings.Count(body, `"reason"`) != 1 || !strings.Contains(body, `"port-in-use"`) {
		t.Errorf("?port=%d: %d %s", busy, code, body)
	}
	for _, q := range []string{"?port=x", "?port=70000", "?port=1&port=2"} {
		if code, _ := getBody(base + "/status/explain" + q); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}

	// The port freed, the service comes up and its reason goes.
	holder.Close()
	testbin.WaitFor(t, "the port-in-use reason to go", func() bool {
		code, body := getBody(fmt.Sprintf("%s/status/explain?port=%d", base, busy))
		return code == 200 && strings.Contains(body, `"entries": []`)
	})

	_, metrics := getBody(base + "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`proxymatic_build_info{commit="feedc0de",goversion="%s",version="v9.8.7-test"} 1`, runtime.Version()),
		`proxymatic_explain_entries{reason="pen-slots-full",source="reload"} 1`,
		`proxymatic_explain_entries{reason="dropped-from-file",source="reload"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
