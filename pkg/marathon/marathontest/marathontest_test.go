package marathontest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

func TestAppAndVersionEndpoints(t *testing.T) {
	m := New(t)
	a := BridgeApp("/prod/web", 10001)
	a.AddTask("10.0.0.1", 31001)
	m.SetApps(a)
	old := version // the default
	m.UpdateApp("/prod/web", func(a *App) { a.WithLabel("x", "y") })
	var one struct {
		App map[string]any `json:"app"`
	}
	if code := getJSON(t, m.URL+"/v2/apps/prod/web?embed=app.tasks", &one); code != 200 || one.App["id"] != "/prod/web" || len(one.App["tasks"].([]any)) != 1 {
		t.Fatalf("one app: %d %v", code, one.App)
	}
	task := one.App["tasks"].([]any)[0].(map[string]any)
	if task["version"] != old || one.App["version"] == old {
		t.Errorf("task version %v, app version %v: the task keeps the version it started with", task["version"], one.App["version"])
	}
	var versions struct {
		Versions []string `json:"versions"`
	}
	getJSON(t, m.URL+"/v2/apps/prod/web/versions", &versions)
	if len(versions.Versions) != 2 || versions.Versions[1] != old {
		t.Errorf("versions %v", versions.Versions)
	}
	var def map[string]any
	getJSON(t, m.URL+"/v2/apps/prod/web/versions/"+old, &def)
	if def["version"] != old || def["tasks"] != nil || len(def["labels"].(map[string]any)) != 0 {
		t.Errorf("version %s definition %v", old, def)
	}
	var missing map[string]string
	if code := getJSON(t, m.URL+"/v2/apps/prod/nope?embed=app.tasks", &missing); code != 404 || !strings.Contains(missing["message"], "does not exist") {
		t.Errorf("missing app: %d %v", code, missing)
	}
}

func TestLiveEventsHaveMarathonsFields(t *testing.T) {
	m := New(t)
	m.SetApps(BridgeApp("/prod/web", 10001).WithHealthCheck(HealthCheck{}))
	resp, err := http.Get(m.URL + "/v2/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tk := m.StartTask("/prod/web", true, "10.0.0.1", 31001)
	m.KillTask("/prod/web", tk.ID)
	want := []struct {
		typ    string
		fields []string
	}{
		{"event_stream_attached", []string{"remoteAddress"}},
		{"status_update_event", []string{"slaveId", "taskId", "taskStatus", "message", "appId", "host", "ipAddresses", "ports", "version", "timestamp"}},
		{"status_update_event", []string{"taskStatus"}},
		{"health_status_changed_event", []string{"appId", "instanceId", "version", "alive", "timestamp"}},
		{"status_update_event", []string{"taskStatus"}},
		{"status_update_event", []string{"taskStatus"}},
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var statuses []string
	for i := 0; i < len(want) && sc.Scan(); {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev["eventType"] != want[i].typ {
			t.Fatalf("event %d is %v, want %s", i, ev["eventType"], want[i].typ)
		}
		for _, f := range want[i].fields {
			if _, ok := ev[f]; !ok {
				t.Errorf("%s lacks %q: %s", want[i].typ, f, data)
			}
		}
		if s, ok := ev["taskStatus"].(string); ok {
			statuses = append(statuses, s)
		}
		i++
	}
	if strings.Join(statuses, " ") != "TASK_STAGING TASK_RUNNING TASK_KILLING TASK_KILLED" {
		t.Errorf("statuses %v", statuses)
	}
}
