package marathontest

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// The live methods change the state and send, in order, the events real
// Marathon sends for that change, with its payloads (field names as in
// Marathon's event bus documentation). Versions advance one second per
// change from 2024-03-01T10:00:00.000Z.

const versionFormat = "2006-01-02T15:04:05.000Z"

func (s *Server) nextVersionLocked() string {
	v := s.clock.Format(versionFormat)
	s.clock = s.clock.Add(time.Second)
	return v
}

// AddApp creates an app as POST /v2/apps does: api_post_event, then each
// of its tasks starting (status updates, health events for the tasks that
// have results), then the deployment's step and success events.
func (s *Server) AddApp(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID[a.ID] != nil {
		panic("marathontest: AddApp of an existing app " + a.ID)
	}
	if a.Version == "" {
		a.Version = s.nextVersionLocked()
	}
	for _, t := range a.Tasks {
		if t.Version == "" {
			t.Version = a.Version
		}
	}
	s.raw = false
	s.apps = append(s.apps, a)
	s.byID[a.ID] = a
	s.renderLocked(a)
	s.apiPostLocked(a, "/v2/apps")
	for _, t := range a.Tasks {
		s.taskStartedLocked(a, t)
	}
	s.deploymentLocked(a, "StartApplication")
}

// UpdateApp changes an app's configuration (change edits it) as PUT
// /v2/apps/{id} does: a new version, api_post_event and the deployment
// events. The tasks keep the version they run: replace them with
// StartTask and KillTask, as a rolling deploy would.
func (s *Server) UpdateApp(id string, change func(*App)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(id)
	s.pinTaskVersions(a)
	change(a)
	a.Version = s.nextVersionLocked()
	a.LastConfigChangeAt, a.LastScalingAt = a.Version, a.Version
	s.renderLocked(a)
	s.apiPostLocked(a, "/v2/apps"+id)
	s.deploymentLocked(a, "RestartApplication")
}

// ScaleApp gives an app the new version a scale gives (its configuration,
// lastConfigChangeAt, stays) with its events; start or kill the tasks with
// StartTask and KillTask.
func (s *Server) ScaleApp(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(id)
	s.pinTaskVersions(a)
	if a.LastConfigChangeAt == "" {
		a.LastConfigChangeAt = orDefault(a.Version, version)
	}
	a.Version = s.nextVersionLocked()
	a.LastScalingAt = a.Version
	s.renderLocked(a)
	s.apiPostLocked(a, "/v2/apps"+id)
	s.deploymentLocked(a, "ScaleApplication")
}

// pinTaskVersions gives every task the version it runs explicitly, before
// the app's version moves on.
func (s *Server) pinTaskVersions(a *App) {
	for _, t := range a.Tasks {
		if t.Version == "" {
			t.Version = orDefault(a.Version, version)
		}
	}
}

// StartTask starts a task of the app's current version: status updates
// TASK_STAGING then TASK_RUNNING. healthy gives it a passing result for
// each health check, with its health events after the status update (or
// before it, see HealthBeforeStatus); otherwise it has no result yet.
func (s *Server) StartTask(appID string, healthy bool, host string, hostPorts ...int) *Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(appID)
	t := a.AddTask(host, hostPorts...)
	t.Version = orDefault(a.Version, version)
	t.Health = nil
	if healthy {
		for range a.HealthChecks {
			t.Health = append(t.Health, HealthResult{Alive: true})
		}
	}
	s.renderLocked(a)
	s.taskStartedLocked(a, t)
	return t
}

// KillTask kills a task: TASK_KILLING, then TASK_KILLED, and it is gone.
func (s *Server) KillTask(appID, taskID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(appID)
	i := slices.IndexFunc(a.Tasks, func(t *Task) bool { return t.ID == taskID })
	if i < 0 {
		panic("marathontest: KillTask of an unknown task " + taskID)
	}
	t := a.Tasks[i]
	s.statusLocked(a, t, "TASK_KILLING")
	a.Tasks = slices.Delete(a.Tasks, i, i+1)
	s.renderLocked(a)
	s.statusLocked(a, t, "TASK_KILLED")
}

// SetHealth sets every health check result of a task, with one
// health_status_changed_event per result that changed (each check reports
// on its own). An app without health checks has nothing to set.
func (s *Server) SetHealth(appID, taskID string, alive bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(appID)
	i := slices.IndexFunc(a.Tasks, func(t *Task) bool { return t.ID == taskID })
	if i < 0 {
		panic("marathontest: SetHealth of an unknown task " + taskID)
	}
	t := a.Tasks[i]
	n := max(len(t.Health), len(a.HealthChecks))
	changed := 0
	for j := range n {
		if j >= len(t.Health) {
			t.Health = append(t.Health, HealthResult{Alive: !alive})
		}
		if t.Health[j].Alive != alive {
			changed++
		}
		t.Health[j] = HealthResult{Alive: alive}
		if !alive {
			t.Health[j].Cause = "HTTP 503"
		}
	}
	s.renderLocked(a)
	for range changed {
		s.healthLocked(a, t, alive)
	}
}

// DeleteApp destroys an app as DELETE /v2/apps/{id} does: its tasks
// killed, app_terminated_event, the deployment's events. Its versions go
// with it.
func (s *Server) DeleteApp(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustApp(id)
	s.apps = slices.DeleteFunc(s.apps, func(x *App) bool { return x == a })
	delete(s.byID, id)
	delete(s.parts, id)
	s.body = nil
	for _, t := range a.Tasks {
		s.statusLocked(a, t, "TASK_KILLED")
	}
	delete(s.defs, id)
	delete(s.history, id)
	s.emitLocked("app_terminated_event", map[string]any{"appId": id})
	s.deploymentLocked(a, "StopApplication")
}

// Failover is a leader election: the new leader lists every task without
// health check results until its checks have run (give them back with
// SetHealth), and every event stream drops.
func (s *Server) Failover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		for _, t := range a.Tasks {
			t.Health = nil
		}
		s.renderLocked(a)
	}
	s.dropLocked()
}

// App returns the app with that id (nil if none); change it only through
// the live methods.
func (s *Server) App(id string) *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// AppIDs lists the apps, in the order /v2/apps lists them.
func (s *Server) AppIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.apps))
	for i, a := range s.apps {
		out[i] = a.ID
	}
	return out
}

// DuplicateEvents sends every event twice (Marathon may).
func (s *Server) DuplicateEvents(on bool) { s.mu.Lock(); s.dup = on; s.mu.Unlock() }

// HealthBeforeStatus sends a starting task's health events before its
// status updates (Marathon does not order the two).
func (s *Server) HealthBeforeStatus(on bool) { s.mu.Lock(); s.healthFst = on; s.mu.Unlock() }

// HealthEventsByTaskID names the task in health events by taskId, as
// Marathon before 1.4 did, instead of instanceId.
func (s *Server) HealthEventsByTaskID(on bool) { s.mu.Lock(); s.healthByID = on; s.mu.Unlock() }

// DropStreamAfter drops every open event stream once n more events have
// been sent (0 clears); the events after that reach only streams opened
// later.
func (s *Server) DropStreamAfter(n int) { s.mu.Lock(); s.dropAfter = n; s.mu.Unlock() }

func (s *Server) mustApp(id string) *App {
	a := s.byID[id]
	if a == nil {
		panic("marathontest: no app " + id)
	}
	return a
}

func (s *Server) taskStartedLocked(a *App, t *Task) {
	if s.healthFst {
		s.taskHealthLocked(a, t)
	}
	s.statusLocked(a, t, "TASK_STAGING")
	s.statusLocked(a, t, "TASK_RUNNING")
	if !s.healthFst {
		s.taskHealthLocked(a, t)
	}
}

func (s *Server) taskHealthLocked(a *App, t *Task) {
	for _, h := range t.Health {
		s.healthLocked(a, t, h.Alive)
	}
}

func (s *Server) statusLocked(a *App, t *Task, status string) {
	ports := t.Ports
	if ports == nil {
		ports = []int{}
	}
	s.emitLocked("status_update_event", map[string]any{
		"slaveId": "20240301-100000-16842879-5050-1-S0", "taskId": t.ID, "taskStatus": status,
		"message": "", "appId": a.ID, "host": t.Host,
		"ipAddresses": []any{map[string]any{"ipAddress": orDefault(t.IP, "172.17.0.2"), "protocol": "IPv4"}},
		"ports":       ports, "version": orDefault(t.Version, orDefault(a.Version, version)),
	})
}

func (s *Server) healthLocked(a *App, t *Task, alive bool) {
	m := map[string]any{"appId": a.ID, "version": orDefault(t.Version, orDefault(a.Version, version)), "alive": alive}
	if s.healthByID {
		m["taskId"] = t.ID
	} else {
		m["instanceId"] = InstanceID(t.ID)
	}
	s.emitLocked("health_status_changed_event", m)
}

func (s *Server) apiPostLocked(a *App, uri string) {
	var def map[string]any
	_ = json.Unmarshal(s.defs[a.ID][orDefault(a.Version, version)], &def)
	s.emitLocked("api_post_event", map[string]any{"clientIp": "10.0.0.100", "uri": uri, "appDefinition": def})
}

// deploymentLocked sends a one-step deployment's deployment_step_success
// and deployment_success, the plan naming the app (and, as Marathon's
// plans do, carrying the original and target groups).
func (s *Server) deploymentLocked(a *App, action string) {
	var def map[string]any
	_ = json.Unmarshal(s.defs[a.ID][orDefault(a.Version, version)], &def)
	id := fmt.Sprintf("%08x-9ff8-4a6f-a0cd-f57f59a34b43", s.clock.Unix()&0xffffffff)
	group := func(apps []any) map[string]any {
		return map[string]any{"id": "/", "apps": apps, "groups": []any{}, "pods": []any{}, "dependencies": []any{}, "version": a.Version}
	}
	actions := []any{map[string]any{"action": action, "app": a.ID, "readinessCheckResults": []any{}}}
	plan := map[string]any{
		"id": id, "original": group([]any{}), "target": group([]any{def}),
		"steps": []any{map[string]any{"actions": actions}}, "version": a.Version,
	}
	s.emitLocked("deployment_step_success", map[string]any{"plan": plan, "currentStep": map[string]any{"actions": actions}})
	s.emitLocked("deployment_success", map[string]any{"id": id, "plan": plan})
}

func (s *Server) emitLocked(typ string, m map[string]any) {
	m["eventType"] = typ
	m["timestamp"] = time.Now().UTC().Format(versionFormat)
	data, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	s.pushLocked(typ, string(data))
}
