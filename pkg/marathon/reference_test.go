package marathon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"testing/iotest"

	"github.com/meltwater/proxymatic/pkg/services"
)

// decodeAppsRef is the reference for the scanner's lenient rules: the same
// rules (README.md, "Malformed apps"), written again over encoding/json.
// encoding/json checks the syntax, unescapes every string and decodes every
// kept value (strings, ints with its overflow and fraction rules, bools);
// this code only walks the members in order and decides, per the rules,
// what a value of the wrong type, a used field given twice or a value
// longer than maxValue takes out. The scanner must give the same apps, the
// same malformed values (path and scope) and so the same services.
func decodeAppsRef(r io.Reader) ([]app, error) {
	dec := json.NewDecoder(r)
	if err := expectDelimV1(dec, '{'); err != nil {
		return nil, err
	}
	var apps []app
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key, _ := tok.(string); key != "apps" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if found {
			return nil, errors.New(`"apps" given twice`)
		}
		found = true
		if err := expectDelimV1(dec, '['); err != nil {
			return nil, err
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			apps = append(apps, refApp(raw))
		}
		if err := expectDelimV1(dec, ']'); err != nil {
			return nil, err
		}
	}
	if err := expectDelimV1(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the top-level value: %v", err)
	}
	if !found {
		return nil, errors.New("no apps")
	}
	return apps, nil
}

type refMember struct {
	key string
	raw json.RawMessage
}

// refMembers lists an object's members in order (raw is a valid object).
func refMembers(raw json.RawMessage) []refMember {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token()
	var out []refMember
	for dec.More() {
		tok, _ := dec.Token()
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		out = append(out, refMember{tok.(string), v})
	}
	return out
}

// refElems lists an array's elements (raw is a valid array).
func refElems(raw json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return out
}

// refField is encoding/json's field match: exact, else case-insensitive.
func refField(key string, names []string) int {
	if i := slices.Index(names, key); i >= 0 {
		return i
	}
	for i, n := range names {
		if bytes.EqualFold([]byte(key), []byte(n)) {
			return i
		}
	}
	return -1
}

// ref collects the malformed values of one app.
type ref struct{ bad []malformed }

func (r *ref) add(path string, sc scope) { r.bad = append(r.bad, malformed{path: path, scope: sc}) }

func join(path, name string) string {
	switch {
	case path == "":
		return name
	case name[0] == '[':
		return path + name
	}
	return path + "." + name
}

// object calls f for each used member of an object (by field index, the
// first time it is given); a duplicate, or a value that is not an object
// or null, is recorded at path with scope sc.
func (r *ref) object(raw json.RawMessage, path string, sc scope, names []string, f func(i int, raw json.RawMessage, path string)) {
	switch raw[0] {
	case 'n':
		return
	case '{':
	default:
		r.add(path, sc)
		return
	}
	seen := map[int]bool{}
	for _, m := range refMembers(raw) {
		i := refField(m.key, names)
		if i < 0 || len(strconv.Quote(m.key)) > maxValue { // (the scanner bounds the escaped length)
			continue
		}
		if seen[i] {
			r.add(join(path, names[i]), sc)
			continue
		}
		seen[i] = true
		f(i, m.raw, join(path, names[i]))
	}
}

// array returns the elements of an array (nil for null); anything else is
// recorded. Elements keep their place whatever they hold.
func (r *ref) array(raw json.RawMessage, path string, sc scope) ([]json.RawMessage, bool) {
	switch raw[0] {
	case 'n':
		return nil, false
	case '[':
		return refElems(raw), true
	}
	r.add(path, sc)
	return nil, false
}

func (r *ref) str(raw json.RawMessage, path string, sc scope, dst *string) bool {
	switch {
	case raw[0] == 'n':
		return false
	case raw[0] != '"' || len(raw)-2 > maxValue:
		r.add(path, sc)
		return false
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		panic(err)
	}
	return true
}

func (r *ref) int(raw json.RawMessage, path string, sc scope, dst *int) bool {
	if raw[0] == 'n' {
		return false
	}
	var v int
	if len(raw) > maxValue || json.Unmarshal(raw, &v) != nil {
		r.add(path, sc)
		return false
	}
	*dst = v
	return true
}

func (r *ref) bool(raw json.RawMessage, path string, sc scope, dst *bool) {
	if raw[0] != 'n' && json.Unmarshal(raw, dst) != nil {
		r.add(path, sc)
	}
}

func refApp(raw json.RawMessage) app {
	var a app
	r := &ref{}
	// The app itself, and anything in its id, port declarations and
	// health checks, or a duplicate of one of its fields, skip the app.
	r.object(raw, "", scopeApp, appFields, func(i int, v json.RawMessage, path string) {
		switch appFields[i] {
		case "id":
			r.str(v, path, scopeApp, &a.ID)
		case "labels":
			if v[0] == 'n' {
				return
			}
			if v[0] != '{' {
				r.add(path, scopeApp)
				return
			}
			a.Labels = map[string]string{}
			for _, m := range refMembers(v) {
				p := join(path, strconv.Quote(clip(m.key)))
				switch c := m.raw[0]; {
				case len(strconv.Quote(m.key)) > maxValue:
					r.add(path, scopeField)
				case c == '"':
					var s string
					if r.str(m.raw, p, scopeField, &s) {
						a.Labels[m.key] = s
					}
				case c == '-' || c >= '0' && c <= '9':
					if len(m.raw) > maxValue {
						r.add(p, scopeField)
						continue
					}
					a.Labels[m.key] = pyNumber(m.raw)
				default:
					r.add(p, scopeField)
				}
			}
		case "ports":
			if elems, ok := r.array(v, path, scopeApp); ok {
				a.Ports = make([]int, len(elems))
				for j, e := range elems {
					r.int(e, join(path, fmt.Sprintf("[%d]", j)), scopeApp, &a.Ports[j])
				}
			}
		case "portDefinitions":
			if elems, ok := r.array(v, path, scopeApp); ok {
				a.PortDefinitions = make([]portDef, len(elems))
				for j, e := range elems {
					pd := &a.PortDefinitions[j]
					r.object(e, join(path, fmt.Sprintf("[%d]", j)), scopeApp, portDefFields, func(i int, v json.RawMessage, path string) {
						if i == 0 {
							r.int(v, path, scopeApp, &pd.Port)
						} else {
							r.str(v, path, scopeApp, &pd.Protocol)
						}
					})
				}
			}
		case "container":
			if v[0] == 'n' {
				return
			}
			a.Container = &container{}
			r.object(v, path, scopeApp, containerFields, func(i int, v json.RawMessage, path string) {
				if i == 1 {
					a.Container.PortMappings = r.portMappings(v, path)
					return
				}
				if v[0] == 'n' {
					return
				}
				a.Container.Docker = &docker{}
				r.object(v, path, scopeApp, portMappingsName, func(_ int, v json.RawMessage, path string) {
					a.Container.Docker.PortMappings = r.portMappings(v, path)
				})
			})
		case "healthChecks":
			if elems, ok := r.array(v, path, scopeApp); ok {
				a.HealthChecks = make([]healthCheck, len(elems))
				for j, e := range elems {
					hc := &a.HealthChecks[j]
					r.object(e, join(path, fmt.Sprintf("[%d]", j)), scopeApp, healthCheckFields, func(i int, v json.RawMessage, path string) {
						switch i {
						case 0:
							r.str(v, path, scopeApp, &hc.Protocol)
						case 1:
							r.str(v, path, scopeApp, &hc.Path)
						case 2:
							var n int
							if r.int(v, path, scopeApp, &n) {
								hc.PortIndex = &n
							}
						case 3:
							r.int(v, path, scopeApp, &hc.IntervalSeconds)
						case 4:
							r.int(v, path, scopeApp, &hc.TimeoutSeconds)
						case 5:
							r.int(v, path, scopeApp, &hc.MaxConsecutiveFailures)
						}
					})
				}
			}
		case "tasks":
			// Tasks that are not an array skip the app; anything wrong in a
			// task skips that task.
			if elems, ok := r.array(v, path, scopeApp); ok {
				a.Tasks = make([]task, len(elems))
				for j, e := range elems {
					a.Tasks[j] = r.task(e, join(path, fmt.Sprintf("[%d]", j)))
				}
			}
		case "version":
			r.str(v, path, scopeField, &a.Version)
		case "versionInfo":
			r.object(v, path, scopeField, versionInfoFields, func(_ int, v json.RawMessage, path string) {
				r.str(v, path, scopeField, &a.VersionInfo.LastConfigChangeAt)
			})
		}
	})
	for _, m := range r.bad {
		a.skip = a.skip || m.scope == scopeApp
	}
	a.malformed = r.bad
	if len(r.bad) > maxMalformed { // described up to maxMalformed, the rest counted
		a.malformed, a.dropped = r.bad[:maxMalformed], len(r.bad)-maxMalformed
	}
	return a
}

func (r *ref) portMappings(v json.RawMessage, path string) []portMapping {
	elems, ok := r.array(v, path, scopeApp)
	if !ok {
		return nil
	}
	out := make([]portMapping, len(elems))
	for j, e := range elems {
		pm := &out[j]
		r.object(e, join(path, fmt.Sprintf("[%d]", j)), scopeApp, portMappingFields, func(i int, v json.RawMessage, path string) {
			if i == 0 {
				r.int(v, path, scopeApp, &pm.ServicePort)
			} else {
				r.str(v, path, scopeApp, &pm.Protocol)
			}
		})
	}
	return out
}

func (r *ref) task(raw json.RawMessage, path string) task {
	var t task
	n := len(r.bad)
	r.object(raw, path, scopeTask, taskFields, func(i int, v json.RawMessage, path string) {
		switch taskFields[i] {
		case "id":
			r.str(v, path, scopeTask, &t.ID)
		case "host":
			r.str(v, path, scopeTask, &t.Host)
		case "state":
			var s string
			if r.str(v, path, scopeTask, &s) {
				t.State = &s
			}
		case "ports":
			if elems, ok := r.array(v, path, scopeTask); ok {
				t.Ports = make([]int, len(elems))
				for j, e := range elems {
					r.int(e, join(path, fmt.Sprintf("[%d]", j)), scopeTask, &t.Ports[j])
				}
			}
		case "version":
			r.str(v, path, scopeTask, &t.Version)
		case "healthCheckResults":
			if elems, ok := r.array(v, path, scopeTask); ok {
				t.HealthCheckResults = make([]hcResult, len(elems))
				for j, e := range elems {
					res := &t.HealthCheckResults[j]
					r.object(e, join(path, fmt.Sprintf("[%d]", j)), scopeTask, hcResultFields, func(i int, v json.RawMessage, path string) {
						if i == 0 {
							r.bool(v, path, scopeTask, &res.Alive)
						} else {
							r.str(v, path, scopeTask, &res.LastFailureCause)
						}
					})
				}
			}
		}
	})
	t.skip = len(r.bad) > n
	return t
}

// sameAsRef fails unless the scanner agrees with decodeAppsRef on data: both
// an error, or the same apps with the same malformed values (path and
// scope), and the same services compiled from them, through compile and
// through the stream, hosts included.
func sameAsRef(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeAppsRef(bytes.NewReader(data))
	got, err := decodeApps(iotest.HalfReader(bytes.NewReader(data)))
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("scanner error %v, reference error %v\n%q", err, wantErr, data)
	}
	if err != nil {
		return
	}
	normalize(got)
	for i := range got {
		for j := range got[i].malformed {
			got[i].malformed[j].msg = ""
		}
		got[i].malformed = slices.Clip(got[i].malformed)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scanner and reference differ on %q\nscanner:   %#v\nreference: %#v", data, got, want)
	}
	addrs := fakeAddrs(taskHosts(want))
	c := compiler{groupSize: 2, log: slog.New(slog.DiscardHandler), addrs: addrs}
	wantSvcs := c.compile(want)
	sc := compiler{groupSize: 2, log: slog.New(slog.DiscardHandler)}
	cm, err := sc.stream(context.Background(), bytes.NewReader(data), 1)
	if err != nil {
		t.Fatalf("stream refused what decodeApps took: %v", err)
	}
	if !slices.Equal(cm.hosts, taskHosts(want)) {
		t.Fatalf("stream hosts %q, reference %q", cm.hosts, taskHosts(want))
	}
	sc.addrs = addrs
	if gotSvcs := sc.merge(cm); !reflect.DeepEqual(gotSvcs, wantSvcs) {
		t.Fatalf("services differ on %q\nscanner:   %v\nreference: %v", data, gotSvcs, wantSvcs)
	}
	if err := (&services.File{Services: wantSvcs}).Validate(); err != nil {
		t.Fatalf("compiled services do not validate: %v", err)
	}
}
