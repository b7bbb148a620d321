package marathon

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// fileFixture serves a varied cluster from the Marathon stand-in and saves
// its /v2/apps?embed=apps.tasks answer as a CI job would (curl > apps.json).
func fileFixture(t *testing.T) (m *marathontest.Server, path string) {
	t.Helper()
	m = marathontest.New(t)
	web := marathontest.BridgeApp("/product/web", 10001, 10002).
		WithLabel(LabelPrefix+"0.mode", "http").
		WithLabel(LabelPrefix+"1.weight", "250").
		WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	web.AddTask("agent-1", 31001, 31002)
	web.AddTask("Agent-3.Example.COM", 31003, 31004)
	web.AddTask("10.0.0.9", 31005, 31006).Unhealthy("HTTP 500")
	canary := marathontest.BridgeApp("/product/web-canary", 11001).
		WithLabel(LabelPrefix+"0.servicePort", "10001").
		WithTask("10.0.0.7", 31007)
	dns := marathontest.HostApp("/infra/dns", 53).WithProtocol(0, "tcp,udp").WithTask("10.0.0.2", 31053)
	nethost := marathontest.HostApp("/infra/vault", 8200).WithTask("10.0.0.3", 8200)
	legacy := marathontest.LegacyApp("/old/app", 12000).WithTask("10.0.0.4", 31200)
	staging := marathontest.ContainerApp("/product/api", 10010)
	staging.AddTask("10.0.0.5", 31010).WithState("TASK_STAGING")
	staging.AddTask("10.0.0.6", 31011)
	m.SetApps(web, canary, dns, nethost, legacy, staging)

	resp, err := http.Get(m.URL + appsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "saved answer", "apps.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return m, path
}

func fetchEncoded(t *testing.T, url string) []byte {
	t.Helper()
	src, err := New(Options{URLs: []string{url}, Resolver: testDNS})
	if err != nil {
		t.Fatalf("New(%s): %v", url, err)
	}
	svcs, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch(%s): %v", url, err)
	}
	f := services.File{Services: svcs}
	f.Normalize()
	return f.Encode()
}

// TestFileAnswerCompilesLikeTheLiveOne: a saved answer gives the same
// services.yaml, byte for byte, as the live answer it was saved from.
func TestFileAnswerCompilesLikeTheLiveOne(t *testing.T) {
	m, path := fileFixture(t)
	live := fetchEncoded(t, m.URL)
	for _, url := range []string{
		"file://" + strings.ReplaceAll(path, " ", "%20"),
		"file://localhost" + strings.ReplaceAll(path, " ", "%20"),
		"FILE://" + strings.ReplaceAll(path, " ", "%20"),
	} {
		fromFile := fetchEncoded(t, url)
		if !bytes.Equal(fromFile, live) {
			t.Errorf("%s compiled to:\n%s\nthe live answer to:\n%s", url, fromFile, live)
		}
	}
	// The fixture is not trivial: every kind of app gave a service, the
	// unhealthy and staging tasks were left out, the canary merged.
	for _, want := range []string{"web.product", "port: 10002", "api.product", "dns.infra", "protocol: udp", "vault.infra", "app.old", "10.0.0.7", "10.1.0.3"} {
		if !bytes.Contains(live, []byte(want)) {
			t.Errorf("fixture output lacks %q:\n%s", want, live)
		}
	}
	for _, gone := range []string{"10.0.0.9", "10.0.0.5"} {
		if bytes.Contains(live, []byte(gone)) {
			t.Errorf("fixture output serves %s, which should be left out:\n%s", gone, live)
		}
	}
	if n := m.Requests("/v2/apps"); n != 2 {
		t.Errorf("the stand-in saw %d requests, want 2 (the save and the live fetch): the file source went to the network", n)
	}
}

func TestFileAnswerRelativePath(t *testing.T) {
	m, path := fileFixture(t)
	t.Chdir(filepath.Dir(path))
	if got, want := fetchEncoded(t, "file:apps.json"), fetchEncoded(t, m.URL); !bytes.Equal(got, want) {
		t.Errorf("file:apps.json compiled to:\n%s\nwant:\n%s", got, want)
	}
}

func TestFileAnswerErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		urls []string
		want string
	}{
		{"missing file", []string{"file://" + dir + "/nope.json"}, "nope.json: no such file or directory"},
		{"a directory", []string{"file://" + dir}, "is not a regular file"},
		{"host instead of a path", []string{"file://apps.json"}, `host "apps.json": want file:///path/to/apps.json`},
		{"mixed with a replica", []string{"http://marathon:8080", "file://" + dir + "/apps.json"}, "cannot be combined with other replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{URLs: tc.urls})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}

	// A saved answer cut mid-JSON fails the fetch, as the live one does.
	_, path := fileFixture(t)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := New(Options{URLs: []string{"file://" + path}, Resolver: testDNS})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "file://"+path) {
		t.Fatalf("Fetch of a cut answer = %v, want an error naming the file", err)
	}
}
