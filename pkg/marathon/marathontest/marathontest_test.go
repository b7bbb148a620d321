package marathontest

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

func TestAppsShape(t *testing.T) {
	m := New(t)
	a := BridgeApp("/prod/web", 10001).WithHealthCheck(HealthCheck{Path: "/health"})
	a.AddTask("10.0.0.1", 31001)
	m.SetApps(a)
	resp, err := http.Get(m.URL + "/v2/apps?embed=apps.tasks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Apps []map[string]any `json:"apps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	app := doc.Apps[0]
	for _, k := range []string{"cmd", "instances", "cpus", "mem", "disk", "executor", "constraints", "uris", "fetch", "storeUrls", "backoffSeconds", "upgradeStrategy", "versionInfo", "labels", "healthChecks", "tasks", "portDefinitions", "ports"} {
		if _, ok := app[k]; !ok {
			t.Errorf("app lacks %q", k)
		}
	}
	task := app["tasks"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "slaveId", "host", "state", "startedAt", "stagedAt", "ports", "ipAddresses", "version", "healthCheckResults"} {
		if _, ok := task[k]; !ok {
			t.Errorf("task lacks %q", k)
		}
	}
	hr := task["healthCheckResults"].([]any)[0].(map[string]any)
	for _, k := range []string{"alive", "consecutiveFailures", "firstSuccess", "lastFailure", "lastSuccess", "lastFailureCause", "taskId"} {
		if _, ok := hr[k]; !ok {
			t.Errorf("health result lacks %q", k)
		}
	}
	pm := app["container"].(map[string]any)["docker"].(map[string]any)["portMappings"].([]any)[0].(map[string]any)
	if pm["servicePort"].(float64) != 10001 {
		t.Errorf("portMapping %v", pm)
	}
}

func TestFaults(t *testing.T) {
	m := New(t)
	m.SetApps(Generate(20, 2)...)
	m.Fail(503)
	resp, err := http.Get(m.URL + "/v2/apps")
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("Fail: %v %v", resp, err)
	}
	resp.Body.Close()
	m.Fail(0)
	m.CutBody(100)
	resp, err = http.Get(m.URL + "/v2/apps")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) != 100 {
		t.Errorf("CutBody: read %d bytes, err %v", len(b), err)
	}
	if n := m.Requests("/v2/apps"); n != 2 {
		t.Errorf("Requests = %d", n)
	}
}
