package marathon

import "slices"

// stateRunning is the state of every task the state adds from an event.
var stateRunning = func() *string { s := "TASK_RUNNING"; return &s }()

// plan is what a batch of events leaves to do: apps to read again, or a
// full read (with its reason).
type plan struct {
	fetch map[string]bool
	full  string
}

func (p *plan) needFull(reason string) {
	if p.full == "" {
		p.full = reason
	}
}

func (p *plan) needApp(id string) {
	if p.fetch == nil {
		p.fetch = map[string]bool{}
	}
	p.fetch[id] = true
}

// apply changes the state by one event. Whatever it cannot apply with
// certainty it leaves to p: the app read again, or everything.
func (l *live) apply(ev *event, p *plan, health *healthCache) {
	switch ev.kind {
	case evAttached:
		p.needFull("reconnect")
	case evFull:
		p.needFull(ev.reason)
	case evApps:
		for _, id := range ev.apps {
			if _, ok := appPath(id); !ok {
				p.needFull("unparseable")
				return
			}
			p.needApp(id)
		}
		eventsApplied.WithLabelValues(ev.typ).Inc()
	case evStatus:
		if ev.status != "TASK_RUNNING" && l.deleted(ev.appID) {
			eventsApplied.WithLabelValues(ev.typ).Inc()
			return // a straggler of an app just deleted
		}
		la := l.known(ev.appID, p)
		if la == nil {
			return
		}
		if ev.status == "TASK_RUNNING" {
			t := la.tasks[ev.taskID]
			if t != nil && t.Host == ev.host && t.State != nil && *t.State == "TASK_RUNNING" &&
				slices.Equal(t.Ports, ev.ports) && t.Version == ev.version {
				eventsApplied.WithLabelValues(ev.typ).Inc()
				return // a duplicate: nothing changes
			}
			if t == nil {
				if l.grown >= l.growthLimit {
					p.needFull("overflow")
					return
				}
				l.grown++
				t = &task{ID: ev.taskID}
				la.tasks[ev.taskID] = t
				health.adopt(ev.taskID)
			}
			t.Host, t.State, t.Ports, t.Version = ev.host, stateRunning, ev.ports, ev.version
		} else {
			if _, ok := la.tasks[ev.taskID]; !ok {
				eventsApplied.WithLabelValues(ev.typ).Inc()
				return // a task that never ran, or already gone: nothing served changes
			}
			delete(la.tasks, ev.taskID)
		}
		l.dirty[ev.appID] = true
		eventsApplied.WithLabelValues(ev.typ).Inc()
	case evHealth:
		if l.deleted(ev.appID) {
			eventsApplied.WithLabelValues(ev.typ).Inc()
			return
		}
		la := l.known(ev.appID, p)
		if la == nil {
			return
		}
		t := la.task(ev.taskID, ev.instanceID)
		if t == nil {
			// Before its status update: kept until the task shows up.
			if n := len(l.checksOf(la, nil)); n != 1 {
				p.needApp(ev.appID)
				return
			}
			if ev.taskID != "" {
				health.note(ev.taskID, ev.alive)
			} else {
				health.note(pendingKey(ev.instanceID), ev.alive)
			}
			eventsApplied.WithLabelValues(ev.typ).Inc()
			return
		}
		// The event does not say which check changed: with one check it
		// is the task's health, with several the app is read again.
		checks := l.checksOf(la, t)
		if checks == nil || len(checks) != 1 {
			p.needApp(ev.appID)
			return
		}
		health.note(t.ID, ev.alive)
		if len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive == ev.alive {
			eventsApplied.WithLabelValues(ev.typ).Inc()
			return // a duplicate: nothing changes
		}
		t.HealthCheckResults = []hcResult{{Alive: ev.alive}}
		l.dirty[ev.appID] = true
		eventsApplied.WithLabelValues(ev.typ).Inc()
	case evInstance:
		// Not subscribed (see subscribed); from a Marathon that sends it
		// anyway it only confirms the state, or has the app read again.
		la := l.apps[ev.appID]
		if la == nil {
			return // a pod, or an app whose status updates will tell
		}
		t := la.task("", ev.instanceID)
		running := ev.status == "Running"
		if (t != nil) != running {
			p.needApp(ev.appID)
		}
	case evInstanceHealth:
		la := l.apps[ev.appID]
		if la == nil || !ev.known {
			return
		}
		t := la.task("", ev.instanceID)
		if t == nil {
			return
		}
		if v, ok := health.known(t.ID); !ok || v != ev.alive {
			p.needApp(ev.appID)
		}
	}
}

// known returns the app an event is about, or nil after deciding what the
// event leaves to do: nothing when the app is being read again anyway (the
// read is newer than the event), a full read when the state does not know
// the app (it was missed).
func (l *live) known(id string, p *plan) *liveApp {
	if p.fetch[id] {
		return nil
	}
	la := l.apps[id]
	if la == nil || la.def.ID == "" {
		p.needFull("unknown-app")
		return nil
	}
	return la
}

// task finds a task by id, or by the instance it belongs to.
func (la *liveApp) task(taskID, instanceID string) *task {
	if taskID != "" {
		if t := la.tasks[taskID]; t != nil {
			return t
		}
	}
	if instanceID != "" {
		for _, t := range la.tasks {
			if instanceOf(t.ID) == instanceID {
				return t
			}
		}
	}
	return nil
}

// checksOf gives the health checks a task runs: its version's (nil when
// that definition is not known), or the app's current ones for t nil.
func (l *live) checksOf(la *liveApp, t *task) []healthCheck {
	if t == nil || runsCurrent(&la.def, t) || l.c.versions == nil {
		return nonNil(la.def.HealthChecks)
	}
	def, known := l.c.versions(la.def.ID, t.Version)
	switch {
	case !known:
		return nil
	case def == nil:
		return nonNil(la.def.HealthChecks)
	}
	return nonNil(def.HealthChecks)
}

func nonNil(hc []healthCheck) []healthCheck {
	if hc == nil {
		return []healthCheck{}
	}
	return hc
}

// installApp puts the answer of one app's read in the state. It reports
// false, and changes nothing, when the app would grow the state past its
// bound (see maxEventGrowth): the caller reads everything instead.
func (l *live) installApp(id string, a *app, gone bool) bool {
	if gone {
		l.deleteApp(id)
		l.gone.put(id, struct{}{})
		return true
	}
	growth := 1 + len(a.Tasks)
	if old := l.apps[id]; old != nil && old.def.ID != "" {
		growth = max(0, len(a.Tasks)-len(old.tasks))
	}
	if growth > 0 && l.grown+growth > l.growthLimit {
		return false
	}
	l.grown += growth
	l.gone.remove(id)
	l.setApp(a)
	return true
}

// deleted reports an app Marathon said was gone and that has not come
// back: its tasks' last status updates and health events change nothing.
func (l *live) deleted(id string) bool {
	if _, ok := l.apps[id]; ok {
		return false
	}
	_, ok := l.gone.get(id)
	return ok
}

// appsIn lists the apps a queue of events names; ok is false when one of
// them names none (a full read, a reconnect), so that every app may have
// changed.
func appsIn(evs []event) (ids map[string]bool, ok bool) {
	ids = map[string]bool{}
	for i := range evs {
		ev := &evs[i]
		switch {
		case ev.kind == evIgnore:
		case ev.appID != "":
			ids[ev.appID] = true
		case len(ev.apps) > 0:
			for _, a := range ev.apps {
				ids[a] = true
			}
		default:
			return nil, false
		}
	}
	return ids, true
}
