package marathon

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

type eventKind int

const (
	evIgnore         eventKind = iota
	evAttached                 // a stream (re)attached: events may have been missed
	evFull                     // the state is doubtful: read everything (reason)
	evStatus                   // status_update_event
	evHealth                   // health_status_changed_event
	evApps                     // read these apps again (apps)
	evInstance                 // instance_changed_event
	evInstanceHealth           // instance_health_changed_event
)

// event is a Marathon event reduced to what the state needs, every field
// validated: nothing else of the payload is kept.
type event struct {
	kind eventKind
	typ  string // Marathon's event type

	appID, taskID, instanceID string
	status                    string // taskStatus, or an instance's condition
	host                      string
	ports                     []int
	version                   string
	alive                     bool
	known                     bool // alive is known (instance_health_changed_event may say null)

	apps    []string  // evApps
	reason  string    // evFull
	replica string    // evAttached
	at      time.Time // evAttached
}

// Bounds on what an event may carry; beyond them it is not trusted.
const (
	maxIDLen    = 512
	maxPorts    = 1000
	maxEventApp = 1000 // apps one event names; more is cheaper read in full
)

// taskStates are the Mesos task states (taskStatus). Only TASK_RUNNING
// serves; the others remove the task from the state (a task staging or
// unreachable serves nothing either, and comes back with a TASK_RUNNING).
var taskStates = map[string]bool{
	"TASK_STAGING": true, "TASK_STARTING": true, "TASK_RUNNING": true, "TASK_KILLING": true,
	"TASK_FINISHED": true, "TASK_FAILED": true, "TASK_KILLED": true, "TASK_LOST": true,
	"TASK_ERROR": true, "TASK_DROPPED": true, "TASK_GONE": true, "TASK_GONE_BY_OPERATOR": true,
	"TASK_UNREACHABLE": true, "TASK_UNKNOWN": true,
}

var errInvalid = errors.New("invalid field")

// parseEvent reduces one event. A payload that does not parse, or whose
// fields are not what Marathon sends, gives evFull: the event is ignored
// and the state read again, so nothing unvalidated reaches the services.
func parseEvent(typ string, data []byte, truncated bool) event {
	full := func(reason string) event { return event{kind: evFull, typ: typ, reason: reason} }
	handled := isSubscribed(typ) || typ == "instance_changed_event" || typ == "instance_health_changed_event"
	switch {
	case ignored[typ]:
		return event{kind: evIgnore, typ: typ}
	case !handled:
		return full("unknown-type")
	case truncated:
		return full("unparseable")
	}
	ev, err := decodeEvent(typ, data)
	if err != nil {
		return full("unparseable")
	}
	return ev
}

func decodeEvent(typ string, data []byte) (event, error) {
	ev := event{typ: typ}
	var err error
	switch typ {
	case "status_update_event":
		var p struct {
			AppID      *string `json:"appId"`
			TaskID     *string `json:"taskId"`
			TaskStatus *string `json:"taskStatus"`
			Host       *string `json:"host"`
			Ports      []int   `json:"ports"`
			Version    *string `json:"version"`
		}
		if err = json.Unmarshal(data, &p); err != nil {
			return ev, err
		}
		ev.kind = evStatus
		if ev.appID, err = appID(p.AppID); err != nil {
			return ev, err
		}
		if ev.taskID, err = ident(p.TaskID, true); err != nil {
			return ev, err
		}
		if p.TaskStatus == nil || !taskStates[*p.TaskStatus] {
			return ev, errInvalid
		}
		ev.status = *p.TaskStatus
		if ev.status == "TASK_RUNNING" {
			if ev.host, err = hostName(p.Host); err != nil {
				return ev, err
			}
			if len(p.Ports) > maxPorts {
				return ev, errInvalid
			}
			ev.ports = p.Ports
		}
		if ev.version, err = ident(p.Version, false); err != nil {
			return ev, err
		}
	case "health_status_changed_event":
		var p struct {
			AppID      *string `json:"appId"`
			TaskID     *string `json:"taskId"`
			InstanceID *string `json:"instanceId"`
			Version    *string `json:"version"`
			Alive      *bool   `json:"alive"`
		}
		if err = json.Unmarshal(data, &p); err != nil {
			return ev, err
		}
		ev.kind = evHealth
		if ev.appID, err = appID(p.AppID); err != nil {
			return ev, err
		}
		if ev.taskID, err = ident(p.TaskID, false); err != nil {
			return ev, err
		}
		if ev.instanceID, err = ident(p.InstanceID, false); err != nil {
			return ev, err
		}
		if ev.taskID == "" && ev.instanceID == "" || p.Alive == nil {
			return ev, errInvalid
		}
		ev.alive, ev.known = *p.Alive, true
		if ev.version, err = ident(p.Version, false); err != nil {
			return ev, err
		}
	case "api_post_event":
		var p struct {
			AppDefinition *struct {
				ID *string `json:"id"`
			} `json:"appDefinition"`
		}
		if err = json.Unmarshal(data, &p); err != nil || p.AppDefinition == nil {
			return ev, errInvalid
		}
		id, err := appID(p.AppDefinition.ID)
		if err != nil {
			return ev, err
		}
		ev.kind, ev.apps = evApps, []string{id}
	case "app_terminated_event":
		var p struct {
			AppID *string `json:"appId"`
		}
		if err = json.Unmarshal(data, &p); err != nil {
			return ev, err
		}
		id, err := appID(p.AppID)
		if err != nil {
			return ev, err
		}
		ev.kind, ev.apps = evApps, []string{id}
	case "group_change_success":
		// The payload names the group, not which of its apps changed
		// (the deployments it starts name them, but a group change that
		// only scales or relabels may reach them late): read everything.
		return event{kind: evFull, typ: typ, reason: "group-change"}, nil
	case "deployment_step_success", "deployment_success", "deployment_failed":
		// The apps a deployment touches are named by its plan's steps
		// (and the current step); original and target (whole groups) are
		// skipped by the decoder.
		type actions struct {
			Actions []struct {
				App *string `json:"app"`
				Pod *string `json:"pod"`
			} `json:"actions"`
		}
		var p struct {
			Plan *struct {
				Steps []actions `json:"steps"`
			} `json:"plan"`
			CurrentStep *actions `json:"currentStep"`
		}
		if err = json.Unmarshal(data, &p); err != nil {
			return ev, err
		}
		var steps []actions
		if p.Plan != nil {
			steps = p.Plan.Steps
		}
		if p.CurrentStep != nil {
			steps = append(steps, *p.CurrentStep)
		}
		pods := 0
		for _, st := range steps {
			for _, a := range st.Actions {
				if a.App == nil {
					if a.Pod != nil {
						pods++
					}
					continue
				}
				id, err := appID(a.App)
				if err != nil {
					return ev, err
				}
				ev.apps = append(ev.apps, id)
			}
		}
		slices.Sort(ev.apps)
		ev.apps = slices.Compact(ev.apps)
		switch {
		case len(ev.apps) == 0 && pods > 0:
			return event{kind: evIgnore, typ: typ}, nil // pods are not served
		case len(ev.apps) == 0:
			return event{kind: evFull, typ: typ, reason: "unnamed-apps"}, nil
		case len(ev.apps) > maxEventApp:
			return event{kind: evFull, typ: typ, reason: "many-apps"}, nil
		}
		ev.kind = evApps
	case "instance_changed_event", "instance_health_changed_event":
		var p struct {
			RunSpecID  *string `json:"runSpecId"`
			InstanceID *string `json:"instanceId"`
			Condition  *string `json:"condition"`
			Healthy    *bool   `json:"healthy"`
		}
		if err = json.Unmarshal(data, &p); err != nil {
			return ev, err
		}
		if ev.appID, err = appID(p.RunSpecID); err != nil {
			return ev, err
		}
		if ev.instanceID, err = ident(p.InstanceID, true); err != nil {
			return ev, err
		}
		ev.kind = evInstanceHealth
		if typ == "instance_changed_event" {
			ev.kind = evInstance
			if ev.status, err = ident(p.Condition, true); err != nil {
				return ev, err
			}
		} else if p.Healthy != nil {
			ev.alive, ev.known = *p.Healthy, true
		}
	}
	return ev, nil
}

// appID validates an app id: absolute, printable, bounded.
func appID(p *string) (string, error) {
	if p == nil || !strings.HasPrefix(*p, "/") || len(*p) < 2 {
		return "", errInvalid
	}
	return ident(p, true)
}

// ident validates an id-like string (task, instance, version): printable
// ASCII without spaces or quotes, bounded. required refuses a missing or
// empty one.
func ident(p *string, required bool) (string, error) {
	if p == nil || *p == "" {
		if required {
			return "", errInvalid
		}
		return "", nil
	}
	s := *p
	if len(s) > maxIDLen || !utf8.ValidString(s) {
		return "", errInvalid
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return "", errInvalid
		}
	}
	return s, nil
}

// hostName validates a task host as Marathon reports it: a name or an
// address, printable, bounded. (Only a valid lowercase name reaches the
// file as a host; the address comes from DNS or the literal.)
func hostName(p *string) (string, error) {
	if p == nil || *p == "" || len(*p) > 253 {
		return "", errInvalid
	}
	return ident(p, true)
}
