package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// hangGuard only stops a broken test from hanging; it asserts no speed.
const hangGuard = 30 * time.Second

// fileWatch waits for services.yaml to be replaced, woken by inotify so
// that the time measured is the daemon's and not a polling interval.
type fileWatch struct {
	w    *fsnotify.Watcher
	path string
}

func watchFile(tb testing.TB, path string) *fileWatch {
	tb.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Close() })
	if err := w.Add(filepath.Dir(path)); err != nil {
		tb.Fatal(err)
	}
	return &fileWatch{w: w, path: path}
}

// waitFor returns the file's contents once ok accepts them.
func (fw *fileWatch) waitFor(tb testing.TB, ok func([]byte) bool) []byte {
	tb.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		if data, err := os.ReadFile(fw.path); err == nil && ok(data) {
			return data
		}
		select {
		case <-fw.w.Events:
		case err := <-fw.w.Errors:
			tb.Fatal(err)
		case <-guard.C:
			data, _ := os.ReadFile(fw.path)
			tb.Fatalf("%s never reached the expected state; it holds:\n%s", fw.path, data)
		}
	}
}

func contains(s string) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, []byte(s)) }
}

// runMain starts Main and returns a function that stops it and returns
// its error.
func runMain(tb testing.TB, cfg *config.Sync, logs io.Writer) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Main(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), io.Discard) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	tb.Cleanup(func() { _ = stop() })
	return stop
}

func waitSubscribed(tb testing.TB, m *marathontest.Server) {
	tb.Helper()
	deadline := time.Now().Add(hangGuard)
	for m.Subscribers() == 0 {
		if time.Now().After(deadline) {
			tb.Fatal("the daemon never opened Marathon's event stream")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMarathonEventReachesFile runs the real daemon against the Marathon
// stand-in with a 60 s poll: the change can only reach the file through
// the event stream, and a task's event is applied without reading
// /v2/apps again.
func TestMarathonEventReachesFile(t *testing.T) {
	m := marathontest.New(t)
	web := marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001)
	m.SetApps(web)
	out := filepath.Join(t.TempDir(), "services.yaml")
	fw := watchFile(t, out)
	var logs logBuffer
	stop := runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: 60 * time.Second, GroupSize: 1, Output: out}, &logs)

	fw.waitFor(t, contains("10.0.0.1"))
	waitSubscribed(t, m)
	polls := m.Requests("/v2/apps")

	start := time.Now()
	m.StartTask("/product/web", false, "10.0.0.2", 31002)
	data := fw.waitFor(t, contains("10.0.0.2"))
	t.Logf("Marathon event to renamed services.yaml: %s", time.Since(start))

	if n := m.Requests("/v2/apps") - polls; n != 0 {
		t.Errorf("%d reads of /v2/apps for one task's events, want 0", n)
	}
	if !strings.Contains(string(data), "10.0.0.1") {
		t.Errorf("first server lost:\n%s", data)
	}
	// Marathon goes down: the file keeps the last good state.
	m.Fail(http.StatusServiceUnavailable)
	before := data
	m.PushEvent("status_update_event") // about an app the daemon does not know: read everything
	for deadline := time.Now().Add(hangGuard); m.Requests("/v2/apps") == polls; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the event did not cause a read")
		}
	}
	stopStart := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Main = %v, want a clean stop", err)
	}
	t.Logf("stop with an open event stream took %s", time.Since(stopStart))
	if !strings.Contains(logs.String(), "msg=Modified service=web.product port=10001/tcp mode=tcp source=marathon servers=2") {
		t.Errorf("change not logged:\n%s", logs.String())
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(after, before) {
		t.Errorf("file changed while Marathon failed:\n%s", after)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func getStatus(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestMainStatusEndpoint(t *testing.T) {
	m := marathontest.New(t)
	m.Fail(http.StatusServiceUnavailable) // down at start-up
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	out := filepath.Join(t.TempDir(), "services.yaml")
	addr := freePort(t)
	stop := runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: 60 * time.Second, GroupSize: 1, Output: out, StatusEndpoint: addr}, io.Discard)

	// Wait for the endpoint to answer, and for Marathon to have refused once.
	deadline := time.Now().Add(hangGuard)
	for m.Requests("/v2/apps") == 0 || !answers(addr) {
		if time.Now().After(deadline) {
			t.Fatal("status endpoint never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := getStatus(t, addr); code != 503 || body != "INITIALIZING" {
		t.Errorf("Marathon down at start: %d %s, want 503 INITIALIZING", code, body)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("services.yaml written before any good read (%v)", err)
	}

	m.Fail(0) // the source retries on its own backoff
	fw := watchFile(t, out)
	fw.waitFor(t, contains("10.0.0.1"))
	// OK is set right after the write that the watcher saw.
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(time.Millisecond) {
		code, body := getStatus(t, addr)
		if code == 200 && body == "OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d %s after the first write, want 200 OK", code, body)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"proxymatic_sync_file_writes_total", "proxymatic_sync_services ", "proxymatic_sync_merge_collisions"} {
		if !strings.Contains(string(metrics), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if answers(addr) {
		t.Error("status endpoint still answers after Main returned")
	}
}

func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestMainBusyStatusPortIsStartupError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := marathontest.New(t)
	out := filepath.Join(t.TempDir(), "services.yaml")
	err = Main(context.Background(), &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Minute, GroupSize: 1, Output: out, StatusEndpoint: ln.Addr().String()}, slog.New(slog.DiscardHandler), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Main = %v, want a start-up error for the busy port", err)
	}
	if m.Requests("/v2/apps") != 0 {
		t.Error("Marathon was read although start-up failed")
	}
}

func TestMainWarnsAboutCallback(t *testing.T) {
	m := marathontest.New(t)
	var logs logBuffer
	var stdout bytes.Buffer
	err := Main(context.Background(), &config.Sync{Marathon: []string{m.URL}, MarathonCallback: "http://me:5090/", RefreshInterval: time.Minute, GroupSize: 1, DryRun: true},
		slog.New(slog.NewTextHandler(&logs, nil)), &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if n := logs.count("--marathon-callback (MARATHON_CALLBACK_URL) is deprecated and ignored"); n != 1 {
		t.Errorf("callback warning logged %d times, want once:\n%s", n, logs.String())
	}
}

// BenchmarkEventToFile measures a Marathon event to the renamed
// services.yaml, through the real daemon, source and file system.
func BenchmarkEventToFile(b *testing.B) {
	m := marathontest.New(b)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	out := filepath.Join(b.TempDir(), "services.yaml")
	fw := watchFile(b, out)
	runMain(b, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: 60 * time.Second, GroupSize: 1, Output: out}, io.Discard)
	fw.waitFor(b, contains("10.0.0.1"))
	waitSubscribed(b, m)
	prev := m.App("/product/web").Tasks[0].ID
	for i := 0; b.Loop(); i++ {
		host := fmt.Sprintf("10.0.%d.%d", 1+i/250%250, 1+i%250)
		t := m.StartTask("/product/web", false, host, 31001)
		fw.waitFor(b, contains(host+"\n"))
		m.KillTask("/product/web", prev)
		prev = t.ID
	}
}

// TestMainOnceMergesMarathonAndEtcd reads a Marathon stand-in and a real
// etcd once: Marathon wins the port both claim.
func TestMainOnceMergesMarathonAndEtcd(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	e := etcdtest.Start(t)
	e.Put(t, "/services/web-reg@10001/host1:web:8080", "10.0.0.9:31500")
	e.Put(t, "/services/db/host2:db:5432", "10.0.0.3:31432")
	out := filepath.Join(t.TempDir(), "services.yaml")
	cfg := &config.Sync{Marathon: []string{m.URL}, Registrator: "etcd3://" + e.Endpoint + "/services",
		RefreshInterval: time.Minute, GroupSize: 1, Output: out, Once: true}
	var logs logBuffer
	if err := Main(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), io.Discard); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := services.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(f), "db:5432/tcp:registrator web.product:10001/tcp:marathon"; got != want {
		t.Errorf("services = %q, want %q:\n%s", got, want, data)
	}
	if !strings.Contains(logs.String(), "ignored=web-reg ignored_source=registrator") {
		t.Errorf("collision not logged:\n%s", logs.String())
	}

	// etcd down: --once fails and leaves the file as it was.
	e.Stop()
	m.SetApps()
	if err := Main(context.Background(), cfg, slog.New(slog.DiscardHandler), io.Discard); err == nil || !strings.Contains(err.Error(), "source registrator") {
		t.Fatalf("Main --once with etcd down = %v, want the registrator error", err)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(after, data) {
		t.Errorf("file changed although a source failed:\n%s", after)
	}
}

// getStatusJSON asks the status endpoint for JSON.
func getStatusJSON(t *testing.T, addr string) (int, statusDoc) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/status", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/status JSON: %v", err)
	}
	return resp.StatusCode, doc
}

// waitStatusJSON polls /status (JSON) until ok accepts it.
func waitStatusJSON(t *testing.T, addr string, ok func(int, statusDoc) bool) (int, statusDoc) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		code, doc := getStatusJSON(t, addr)
		if ok(code, doc) {
			return code, doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status never reached the expected state; last %d %+v", code, doc)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// etcdDown starts etcd with a registrator entry (web-reg on 10002 at
// 10.0.0.9) and stops it: it is unreachable when the daemon starts.
func etcdDown(t *testing.T) *etcdtest.Etcd {
	e := etcdtest.Start(t)
	e.Put(t, "/services/web-reg@10002/host1:web:8080", "10.0.0.9:31500")
	e.Stop()
	return e
}

// TestMainEtcdDownAtStartNoPreviousFile: Marathon answers, etcd does not,
// and there is no previous file. After --initial-wait Marathon's services
// are published; registrator's are added when etcd comes back.
func TestMainEtcdDownAtStartNoPreviousFile(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	e := etcdDown(t)
	out := filepath.Join(t.TempDir(), "services.yaml")
	fw := watchFile(t, out)
	addr := freePort(t)
	var logs logBuffer
	runMain(t, &config.Sync{Marathon: []string{m.URL}, Registrator: "etcd3://" + e.Endpoint + "/services",
		RefreshInterval: time.Minute, GroupSize: 1, Output: out, StatusEndpoint: addr, InitialWait: 300 * time.Millisecond}, &logs)

	data := fw.waitFor(t, contains("10.0.0.1"))
	if bytes.Contains(data, []byte("web-reg")) {
		t.Fatalf("registrator's service written while etcd is down:\n%s", data)
	}
	// OK is set right after the write that the watcher saw.
	code, doc := waitStatusJSON(t, addr, func(code int, _ statusDoc) bool { return code == 200 })
	if doc.Status != "OK" || doc.sourcesLine() != "marathon=read registrator=not yet read" {
		t.Errorf("/status = %d %s %q, want 200 OK naming registrator not yet read", code, doc.Status, doc.sourcesLine())
	}
	if code, body := getStatus(t, addr); code != 200 || body != "OK" {
		t.Errorf("plain /status = %d %q, want 200 OK", code, body)
	}

	e.Restart()
	data = fw.waitFor(t, contains("10.0.0.9"))
	if !bytes.Contains(data, []byte("10.0.0.1")) {
		t.Errorf("marathon's service lost when registrator was added:\n%s", data)
	}
	waitStatusJSON(t, addr, func(_ int, doc statusDoc) bool { return doc.sourcesLine() == "marathon=read registrator=read" })
	if !strings.Contains(logs.String(), "source read for the first time; its services are added\" source=registrator") {
		t.Errorf("the late source is not logged:\n%s", logs.String())
	}
}

// TestMainEtcdDownAtStartWithPreviousFile: registrator's services in the
// previous file are its last good state; Marathon's current state is
// published at once (no initial wait), and etcd's state replaces the
// previous one when it answers.
func TestMainEtcdDownAtStartWithPreviousFile(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001).WithTask("10.0.0.2", 31001))
	e := etcdDown(t)
	out := filepath.Join(t.TempDir(), "services.yaml")
	prev := services.File{Services: []services.Service{
		svc("web.product", 10001, services.SourceMarathon, "10.0.0.1:31001"),
		svc("web-reg", 10002, services.SourceRegistrator, "10.0.0.8:31500"),
		svc("old-marathon-app", 10003, services.SourceMarathon, "10.0.0.1:31003"),
	}}
	prev.Normalize()
	if err := os.WriteFile(out, prev.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	fw := watchFile(t, out)
	addr := freePort(t)
	runMain(t, &config.Sync{Marathon: []string{m.URL}, Registrator: "etcd3://" + e.Endpoint + "/services",
		RefreshInterval: time.Minute, GroupSize: 1, Output: out, StatusEndpoint: addr, InitialWait: time.Hour}, io.Discard)

	data := fw.waitFor(t, contains("10.0.0.2"))
	f, _, err := services.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(f), "web.product:10001/tcp:marathon web-reg:10002/tcp:registrator"; got != want {
		t.Errorf("services = %q, want %q (marathon current, registrator from the previous file)", got, want)
	}
	if !bytes.Contains(data, []byte("10.0.0.8")) {
		t.Errorf("registrator's previous server lost:\n%s", data)
	}
	code, doc := waitStatusJSON(t, addr, func(code int, _ statusDoc) bool { return code == 200 })
	if doc.sourcesLine() != "marathon=read registrator=not yet read(previous file)" {
		t.Errorf("/status = %d %q", code, doc.sourcesLine())
	}

	e.Restart()
	data = fw.waitFor(t, contains("10.0.0.9"))
	if bytes.Contains(data, []byte("10.0.0.8")) || !bytes.Contains(data, []byte("10.0.0.2")) {
		t.Errorf("after etcd answered:\n%s", data)
	}
}

// TestMainOnceNetHostAndEmptyServices reads a Marathon stand-in and a real
// etcd once: a net=host server drops its whole service in both sources
// (kept with --expose-host), and Marathon's empty service does not hide
// registrator's on the same port.
func TestMainOnceNetHostAndEmptyServices(t *testing.T) {
	m := marathontest.New(t)
	empty := marathontest.BridgeApp("/product/web", 10001).WithHealthCheck(marathontest.HealthCheck{})
	empty.AddTask("10.0.0.1", 31001).Unhealthy("HTTP 503")
	m.SetApps(
		empty,
		marathontest.HostApp("/infra/vault", 8200).WithTask("10.0.0.2", 8200).WithTask("10.0.0.3", 31200),
		marathontest.BridgeApp("/product/api", 10010).WithTask("10.0.0.4", 31010),
	)
	e := etcdtest.Start(t)
	e.Put(t, "/services/web-reg@10001/host1:web:8080", "10.0.0.9:31500")
	e.Put(t, "/services/consul/host2:consul:8500", "10.0.0.10:8500")
	for _, expose := range []bool{false, true} {
		var stdout bytes.Buffer
		cfg := &config.Sync{Marathon: []string{m.URL}, Registrator: "etcd3://" + e.Endpoint + "/services",
			RefreshInterval: time.Minute, GroupSize: 1, DryRun: true, ExposeHost: expose}
		var logs logBuffer
		if err := Main(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), &stdout); err != nil {
			t.Fatal(err)
		}
		f, _, err := services.Decode(stdout.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want := "vault.infra:8200/tcp:marathon consul:8500/tcp:registrator web-reg:10001/tcp:registrator api.product:10010/tcp:marathon"
		if !expose {
			want = "web-reg:10001/tcp:registrator api.product:10010/tcp:marathon"
			for _, line := range []string{"source=marathon service=vault.infra port=8200/tcp server=10.0.0.2:8200", "source=registrator service=consul port=8500/tcp server=10.0.0.10:8500"} {
				if !strings.Contains(logs.String(), line) {
					t.Errorf("net=host drop not logged (%s):\n%s", line, logs.String())
				}
			}
		}
		if got := names(f); got != want {
			t.Errorf("expose-host=%v: services = %q, want %q", expose, got, want)
		}
	}
}
