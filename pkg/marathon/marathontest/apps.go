package marathontest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// App is a Marathon app as the fake serves it. Build one with BridgeApp,
// HostApp, ContainerApp or LegacyApp and the With/Add methods; fields left
// zero are rendered with the defaults real Marathon returns.
type App struct {
	ID     string
	Labels map[string]string

	// Network is the docker network: "BRIDGE", "HOST", "USER" (default
	// BRIDGE when PortMappings is set, HOST otherwise).
	Network string
	// PortMappings are rendered at container.docker.portMappings, or at
	// container.portMappings when Marathon15 is set.
	PortMappings []PortMapping
	// Marathon15 renders the Marathon 1.5+ shape: container.portMappings and
	// a networks array instead of docker.network.
	Marathon15 bool
	// PortDefinitions are the host-networking service ports.
	PortDefinitions []PortDefinition
	// LegacyPorts renders only a top-level "ports" array, as Marathon
	// before 0.16 did (no portDefinitions).
	LegacyPorts  []int
	HealthChecks []HealthCheck
	Tasks        []*Task
	// Version is the app's version (default a fixed timestamp);
	// LastConfigChangeAt and LastScalingAt its versionInfo (default
	// Version): Marathon gives a scaled app a new version but keeps its
	// last configuration change.
	Version            string
	LastConfigChangeAt string
	LastScalingAt      string
}

// taskSeq numbers task ids across every app of the process.
var taskSeq atomic.Uint64

// PortMapping is one container port mapping.
type PortMapping struct {
	ContainerPort int
	HostPort      int
	ServicePort   int
	Protocol      string // "tcp" (default), "udp", "tcp,udp"
	Name          string
}

// PortDefinition is one host-networking port.
type PortDefinition struct {
	Port     int
	Protocol string
	Name     string
}

// HealthCheck is an app health check; zero fields take Marathon's defaults.
type HealthCheck struct {
	Protocol  string // HTTP (default), HTTPS, TCP, COMMAND, MESOS_HTTP, ...
	Path      string // default "/" for HTTP-style checks
	PortIndex int
	// Marathon's defaults when zero: 60, 20 and 3. A negative value is
	// rendered as 0 (maxConsecutiveFailures 0 means "never kill").
	IntervalSeconds, TimeoutSeconds, MaxConsecutiveFailures int
}

// Task is one task of an app.
type Task struct {
	ID    string
	Host  string
	State string // default TASK_RUNNING; see NoState
	// NoState omits the state field, as Marathon before 0.8 did.
	NoState bool
	Ports   []int
	// Health holds one result per health check; nil renders no
	// healthCheckResults entry (a task whose checks have not run yet).
	Health []HealthResult
	IP     string // container IP for ipAddresses (default 172.17.0.2)
	// Version is the app version the task was started with (default the
	// app's version).
	Version string
}

// HealthResult is one health check result of a task.
type HealthResult struct {
	Alive bool
	Cause string // lastFailureCause when not alive
}

// BridgeApp is a docker app in BRIDGE mode with one port mapping per
// service port (container port 8080, 8081, ...).
func BridgeApp(id string, servicePorts ...int) *App {
	a := &App{ID: id, Network: "BRIDGE"}
	for i, sp := range servicePorts {
		a.PortMappings = append(a.PortMappings, PortMapping{ContainerPort: 8080 + i, ServicePort: sp})
	}
	return a
}

// ContainerApp is a Marathon 1.5+ app with container.portMappings.
func ContainerApp(id string, servicePorts ...int) *App {
	a := BridgeApp(id, servicePorts...)
	a.Marathon15 = true
	a.Network = "container/bridge"
	return a
}

// HostApp is an app with host networking and portDefinitions.
func HostApp(id string, ports ...int) *App {
	a := &App{ID: id, Network: "HOST"}
	for _, p := range ports {
		a.PortDefinitions = append(a.PortDefinitions, PortDefinition{Port: p})
	}
	return a
}

// LegacyApp has only the top-level ports array of old Marathon.
func LegacyApp(id string, ports ...int) *App {
	return &App{ID: id, Network: "HOST", LegacyPorts: ports}
}

// WithLabel sets a label.
func (a *App) WithLabel(k, v string) *App {
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.Labels[k] = v
	return a
}

// WithProtocol sets the protocol of port index i.
func (a *App) WithProtocol(i int, proto string) *App {
	if i < len(a.PortMappings) {
		a.PortMappings[i].Protocol = proto
	}
	if i < len(a.PortDefinitions) {
		a.PortDefinitions[i].Protocol = proto
	}
	return a
}

// WithHealthCheck adds a health check.
func (a *App) WithHealthCheck(hc HealthCheck) *App {
	a.HealthChecks = append(a.HealthChecks, hc)
	return a
}

// AddTask adds a running task on host with the given host ports and, when
// the app has health checks, a passing result for each.
func (a *App) AddTask(host string, hostPorts ...int) *Task {
	// Marathon's task ids hold a UUID: never the same twice, even for an
	// app deleted and created again.
	n := taskSeq.Add(1)
	t := &Task{
		ID:    fmt.Sprintf("%s.%08x-0000-11e6-0000-%012d", strings.ReplaceAll(strings.Trim(a.ID, "/"), "/", "_"), n, n),
		Host:  host,
		Ports: hostPorts,
	}
	for range a.HealthChecks {
		t.Health = append(t.Health, HealthResult{Alive: true})
	}
	a.Tasks = append(a.Tasks, t)
	return t
}

// WithTask is AddTask for chaining.
func (a *App) WithTask(host string, hostPorts ...int) *App {
	a.AddTask(host, hostPorts...)
	return a
}

// Unhealthy makes every health check result of the task fail.
func (t *Task) Unhealthy(cause string) *Task {
	if len(t.Health) == 0 {
		t.Health = []HealthResult{{}}
	}
	for i := range t.Health {
		t.Health[i] = HealthResult{Alive: false, Cause: cause}
	}
	return t
}

// WithState sets the Mesos task state (TASK_STAGING, TASK_KILLING, ...).
func (t *Task) WithState(s string) *Task { t.State = s; return t }

const (
	ts      = "2024-03-01T10:00:00.000Z"
	version = "2024-03-01T09:59:00.000Z"
)

func (a *App) render() map[string]any {
	ver := a.Version
	if ver == "" {
		ver = version
	}
	labels := a.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	healthy := 0
	tasks := make([]any, 0, len(a.Tasks))
	for _, t := range a.Tasks {
		tasks = append(tasks, t.render(a, ver))
		ok := len(t.Health) > 0
		for _, h := range t.Health {
			ok = ok && h.Alive
		}
		if ok {
			healthy++
		}
	}
	m := map[string]any{
		"id": a.ID, "cmd": nil, "args": nil, "user": nil, "env": map[string]any{},
		"instances": len(a.Tasks), "cpus": 0.1, "mem": 128, "disk": 0, "gpus": 0,
		"executor": "", "constraints": []any{}, "uris": []any{}, "fetch": []any{},
		"storeUrls": []any{}, "backoffSeconds": 1, "backoffFactor": 1.15,
		"maxLaunchDelaySeconds": 3600, "readinessChecks": []any{}, "dependencies": []any{},
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
		"labels":          labels, "ipAddress": nil, "version": ver, "residency": nil, "secrets": map[string]any{},
		"taskKillGracePeriodSeconds": nil, "requirePorts": false, "killSelection": "YOUNGEST_FIRST",
		"unreachableStrategy": map[string]any{"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600},
		"versionInfo":         map[string]any{"lastScalingAt": orDefault(a.LastScalingAt, ver), "lastConfigChangeAt": orDefault(a.LastConfigChangeAt, ver)},
		"tasksStaged":         0, "tasksRunning": len(a.Tasks), "tasksHealthy": healthy,
		"tasksUnhealthy": len(a.Tasks) - healthy, "deployments": []any{},
	}
	hcs := make([]any, 0, len(a.HealthChecks))
	for _, hc := range a.HealthChecks {
		hcs = append(hcs, hc.render())
	}
	m["healthChecks"] = hcs

	// ports and portDefinitions as Marathon derives them.
	var ports []int
	portDefs := []any{}
	switch {
	case len(a.PortMappings) > 0:
		for _, pm := range a.PortMappings {
			ports = append(ports, pm.ServicePort)
		}
	case len(a.PortDefinitions) > 0:
		for _, pd := range a.PortDefinitions {
			ports = append(ports, pd.Port)
			portDefs = append(portDefs, map[string]any{"port": pd.Port, "protocol": orDefault(pd.Protocol, "tcp"), "name": nilIfEmpty(pd.Name), "labels": map[string]any{}})
		}
	default:
		ports = a.LegacyPorts
	}
	if ports == nil {
		ports = []int{}
	}
	m["ports"] = ports
	if a.LegacyPorts == nil || len(a.PortMappings)+len(a.PortDefinitions) > 0 {
		m["portDefinitions"] = portDefs
	}

	network := a.Network
	if network == "" {
		network = "HOST"
		if len(a.PortMappings) > 0 {
			network = "BRIDGE"
		}
	}
	docker := map[string]any{
		"image": "registry.example.com" + a.ID + ":1.0.0", "privileged": false,
		"parameters": []any{}, "forcePullImage": false,
	}
	var pms []any
	for _, pm := range a.PortMappings {
		pms = append(pms, map[string]any{
			"containerPort": pm.ContainerPort, "hostPort": pm.HostPort, "servicePort": pm.ServicePort,
			"protocol": orDefault(pm.Protocol, "tcp"), "name": nilIfEmpty(pm.Name), "labels": map[string]any{},
		})
	}
	cont := map[string]any{"type": "DOCKER", "volumes": []any{}, "docker": docker}
	if a.Marathon15 {
		mode := "container/bridge"
		if strings.EqualFold(network, "HOST") {
			mode = "host"
		} else if strings.EqualFold(network, "USER") || network == "container" {
			mode = "container"
		}
		m["networks"] = []any{map[string]any{"mode": mode}}
		if pms != nil {
			cont["portMappings"] = pms
		}
	} else {
		docker["network"] = strings.ToUpper(network)
		if pms != nil {
			docker["portMappings"] = pms
		} else {
			docker["portMappings"] = nil
		}
	}
	m["container"] = cont
	m["tasks"] = tasks
	return m
}

func (hc HealthCheck) render() map[string]any {
	proto := orDefault(hc.Protocol, "HTTP")
	setting := func(v, def int) int {
		if v == 0 {
			return def
		}
		return max(v, 0)
	}
	m := map[string]any{
		"gracePeriodSeconds": 300, "intervalSeconds": setting(hc.IntervalSeconds, 60),
		"timeoutSeconds": setting(hc.TimeoutSeconds, 20), "maxConsecutiveFailures": setting(hc.MaxConsecutiveFailures, 3),
		"protocol": proto, "portIndex": hc.PortIndex, "delaySeconds": 15,
	}
	switch strings.ToUpper(proto) {
	case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS":
		m["path"] = orDefault(hc.Path, "/")
		m["ignoreHttp1xx"] = false
	case "COMMAND":
		m["command"] = map[string]any{"value": "true"}
		delete(m, "portIndex")
	}
	return m
}

func (t *Task) render(a *App, ver string) map[string]any {
	ports := t.Ports
	if ports == nil {
		ports = []int{}
	}
	ip := orDefault(t.IP, "172.17.0.2")
	m := map[string]any{
		"id": t.ID, "slaveId": "20240301-100000-16842879-5050-1-S" + strconv.Itoa(len(t.Host)%7),
		"host": t.Host, "startedAt": ts, "stagedAt": ts, "ports": ports, "version": orDefault(t.Version, ver),
		"appId": a.ID, "servicePorts": appServicePorts(a),
		"ipAddresses":  []any{map[string]any{"ipAddress": ip, "protocol": "IPv4"}},
		"localVolumes": []any{},
	}
	if !t.NoState {
		m["state"] = orDefault(t.State, "TASK_RUNNING")
	}
	if len(t.Health) > 0 {
		rs := make([]any, 0, len(t.Health))
		for _, h := range t.Health {
			r := map[string]any{
				"alive": h.Alive, "consecutiveFailures": 0, "firstSuccess": ts,
				"lastFailure": nil, "lastSuccess": ts, "lastFailureCause": nil, "taskId": t.ID,
				"instanceId": InstanceID(t.ID),
			}
			if !h.Alive {
				r["consecutiveFailures"] = 3
				r["lastFailure"] = ts
				r["lastFailureCause"] = h.Cause
			}
			rs = append(rs, r)
		}
		m["healthCheckResults"] = rs
	}
	return m
}

// InstanceID is the Marathon 1.4+ instance id of a task id of the form
// "app.UUID" (the form AddTask gives): "app.marathon-UUID".
func InstanceID(taskID string) string {
	if i := strings.LastIndexByte(taskID, '.'); i >= 0 {
		return taskID[:i] + ".marathon-" + taskID[i+1:]
	}
	return taskID
}

func appServicePorts(a *App) []int {
	out := []int{}
	for _, pm := range a.PortMappings {
		out = append(out, pm.ServicePort)
	}
	for _, pd := range a.PortDefinitions {
		out = append(out, pd.Port)
	}
	return append(out, a.LegacyPorts...)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// AppsJSON renders apps exactly as the fake serves GET /v2/apps?embed=apps.tasks.
func AppsJSON(apps []*App) []byte {
	list := make([]any, len(apps))
	for i, a := range apps {
		list[i] = a.render()
	}
	b, err := json.Marshal(map[string]any{"apps": list})
	if err != nil {
		panic(err) // only plain values are rendered
	}
	return b
}

// Generate builds n bridge apps of k running, healthy tasks each, spread
// over 200 agents (agent-001.example.com ...), service ports from 10000:
// the shape of a large cluster, for benchmarks.
func Generate(n, k int) []*App {
	apps := make([]*App, n)
	for i := range n {
		a := BridgeApp(fmt.Sprintf("/product%d/system%d/service%d", i%50, i%7, i), 10000+i%50000)
		a.WithLabel("com.meltwater.proxymatic.port.0.weight", "100")
		a.WithHealthCheck(HealthCheck{Path: "/health"})
		for j := range k {
			a.AddTask(fmt.Sprintf("agent-%03d.example.com", (i*k+j)%200), 31000+(i*k+j)%1000)
		}
		apps[i] = a
	}
	return apps
}
