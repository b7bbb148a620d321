package marathon

import (
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

func TestParseEvent(t *testing.T) {
	for _, c := range []struct {
		typ, data string
		kind      eventKind
		reason    string
	}{
		{"status_update_event", `{"appId":"/a","taskId":"a.1","taskStatus":"TASK_RUNNING","host":"h","ports":[31000],"version":"2024-03-01T10:00:00.000Z"}`, evStatus, ""},
		{"status_update_event", `{"appId":"/a","taskId":"a.1","taskStatus":"TASK_KILLED"}`, evStatus, ""},
		{"status_update_event", `{"appId":"/a","taskId":"a.1","taskStatus":"TASK_RUNNING","ports":[1]}`, evFull, "unparseable"},              // no host
		{"status_update_event", `{"appId":"a","taskId":"a.1","taskStatus":"TASK_KILLED"}`, evFull, "unparseable"},                            // relative id
		{"status_update_event", `{"appId":"/a","taskId":"a 1","taskStatus":"TASK_KILLED"}`, evFull, "unparseable"},                           // space
		{"status_update_event", `{"appId":"/a","taskId":"a.1","taskStatus":"TASK_RUNNING","host":"h","ports":[1.5]}`, evFull, "unparseable"}, // not an int
		{"health_status_changed_event", `{"appId":"/a","instanceId":"a.marathon-1","alive":false}`, evHealth, ""},
		{"health_status_changed_event", `{"appId":"/a","taskId":"a.1","alive":"yes"}`, evFull, "unparseable"},
		{"health_status_changed_event", `{"appId":"/a","alive":true}`, evFull, "unparseable"}, // which task?
		{"api_post_event", `{"appDefinition":{"id":"/a"}}`, evApps, ""},
		{"api_post_event", `{"appDefinition":null}`, evFull, "unparseable"},
		{"app_terminated_event", `{"appId":"/a"}`, evApps, ""},
		{"deployment_success", `{"id":"d","plan":{"steps":[{"actions":[{"action":"StartApplication","app":"/a"},{"action":"StartPod","pod":"/p"}]}]}}`, evApps, ""},
		{"deployment_success", `{"id":"d","plan":{"steps":[{"actions":[{"action":"StartPod","pod":"/p"}]}]}}`, evIgnore, ""},
		{"deployment_success", `{"id":"d"}`, evFull, "unnamed-apps"},
		{"deployment_step_success", `{"plan":{"original":{"apps":[{"id":"/x"}]},"steps":[]},"currentStep":{"actions":[{"app":"/b"}]}}`, evApps, ""},
		{"framework_message_event", `{}`, evIgnore, ""},
		{"group_change_success", `{"groupId":"/shop","version":"2026-11-30T10:00:00.000Z"}`, evFull, "group-change"},
		{"group_change_failed", `{"groupId":"/shop","reason":"x"}`, evIgnore, ""},
		{"brand_new_event", `{}`, evFull, "unknown-type"},
		{"instance_changed_event", `{"runSpecId":"/a","instanceId":"a.marathon-1","condition":"Running"}`, evInstance, ""},
	} {
		ev := parseEvent(c.typ, []byte(c.data), false)
		if ev.kind != c.kind || ev.reason != c.reason {
			t.Errorf("%s %s: kind %d reason %q, want %d %q", c.typ, c.data, ev.kind, ev.reason, c.kind, c.reason)
		}
	}
	if ev := parseEvent("status_update_event", []byte(`{"appId":"/a"`), true); ev.kind != evFull {
		t.Errorf("truncated data: kind %d", ev.kind)
	}
}

// FuzzEventsReachNothingUnvalidated: whatever an event says, applied to a
// state, the services compiled validate and carry nothing of the payload
// that is not a valid name, address or number.
func FuzzEventsReachNothingUnvalidated(f *testing.F) {
	for _, seed := range []struct{ typ, data string }{
		{"status_update_event", `{"appId":"/prod/web","taskId":"prod_web.x","taskStatus":"TASK_RUNNING","host":"10.0.0.9","ports":[31009],"version":"2024-03-01T09:59:00.000Z"}`},
		{"status_update_event", `{"appId":"/prod/web","taskId":"prod_web.x","taskStatus":"TASK_RUNNING","host":"EVIL;HOST","ports":[0,65536,-1]}`},
		{"health_status_changed_event", `{"appId":"/prod/web","instanceId":"prod_web.marathon-00000000-0000-11e6-0000-000000000000","alive":false}`},
		{"health_status_changed_event", `{"appId":"/prod/web","taskId":"t","alive":true,"version":"\u0000"}`},
		{"api_post_event", `{"appDefinition":{"id":"/prod/web\nx"}}`},
		{"deployment_success", `{"plan":{"steps":[{"actions":[{"app":"/../x"}]}]}}`},
	} {
		f.Add(seed.typ, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		a := marathontest.BridgeApp("/prod/web", 10001).WithHealthCheck(marathontest.HealthCheck{})
		a.AddTask("10.0.0.1", 31001)
		l := liveOf(testCompiler(false, 1), decodeAll(t, []*marathontest.App{a}))
		ev := parseEvent(typ, data, false)
		var p plan
		l.apply(&ev, &p, newHealthCache(10))
		for _, id := range []string{ev.appID, ev.taskID, ev.instanceID, ev.host, ev.version} {
			if strings.ContainsAny(id, " \t\r\n\"\\\x00") {
				t.Fatalf("an unvalidated id got through: %q", id)
			}
		}
		l.resolved(l.newHosts(), stateAddrs)
		l.settle()
		f := services.File{Services: l.services()}
		if err := f.Validate(); err != nil {
			t.Fatalf("compiled services do not validate: %v", err)
		}
	})
}
