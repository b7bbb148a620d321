package marathon

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// decodeAppsV1 is the encoding/json decoder the scanner replaced, kept as
// the reference its results are held to. Like json.Unmarshal it refuses
// data after the top-level object. A value of the wrong type does not stop
// it (encoding/json consumes the value and goes on); the first such error
// is returned at the end, after any syntax error.
func decodeAppsV1(r io.Reader) ([]app, error) {
	dec := json.NewDecoder(r)
	if err := expectDelimV1(dec, '{'); err != nil {
		return nil, err
	}
	var apps []app
	var typeErr error
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%v", err)
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
			apps = append(apps, app{})
			if err := dec.Decode(&apps[len(apps)-1]); err != nil {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					return nil, err
				}
				typeErr = cmp.Or(typeErr, err)
			}
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
	return apps, typeErr
}

func expectDelimV1(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		// Not an UnmarshalTypeError, even where Token made one (a number
		// too large for float64 where a delimiter belongs): only a value of
		// an app can be of the wrong type.
		return fmt.Errorf("%v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// sameAsV1 fails unless the scanner agrees with encoding/json on data: a
// body encoding/json finds broken (syntax, trailing data) the scanner
// refuses too, and the other way round; where encoding/json decodes every
// value without a type error and the scanner found nothing malformed (a
// used field given twice is, for the scanner), both give the same apps.
// The malformed values themselves are held to decodeAppsRef by sameAsRef.
func sameAsV1(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeAppsV1(bytes.NewReader(data))
	var te *json.UnmarshalTypeError
	typeErr := errors.As(wantErr, &te)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
	} {
		got, err := decodeApps(r)
		normalize(got)
		switch {
		case err != nil && (wantErr == nil || typeErr):
			t.Fatalf("%s: scanner refused what encoding/json read (%v): %v\n%q", name, wantErr, err, data)
		case err == nil && wantErr != nil && !typeErr:
			t.Fatalf("%s: scanner took what encoding/json refused (%v)\n%q", name, wantErr, data)
		case err == nil && wantErr == nil && !anyMalformed(got) && !reflect.DeepEqual(got, want):
			t.Fatalf("%s: scanner and encoding/json differ on %q\nscanner: %#v\nv1:      %#v", name, data, got, want)
		}
	}
}

func anyMalformed(apps []app) bool {
	for i := range apps {
		if len(apps[i].malformed) > 0 {
			return true
		}
	}
	return false
}

var decodeCases = []string{
	`{"apps":[]}`,
	` { "apps" : [ { "id" : "/a" } ] } `,
	`{"apps":[null,{}]}`,
	`{"x":{"y":[1,-2.5e+3,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"]},"apps":[{"id":"/a","unknown":[[{}]]}],"z":0}`,
	`{"apps":[{"ID":"/upper","PORTS":[1],"Tasks":[{"HOST":"h"}]}]}`,
	`{"apps":[{"ıd":"/dotless","tasks":[{"ſtate":"X","hoſt":"h","\u212aey":1}]}]}`,
	`{"apps":[{"\u0069d":"/escaped-key"}]}`,
	`{"apps":[{"id":"\ud83d\ude00 \ud83d x \udc00 \u0041"}]}`,
	"{\"apps\":[{\"id\":\"bad \xff\xfe utf8 \xe2\x82\"}]}",
	`{"apps":[{"id":null,"labels":null,"ports":null,"container":null,"tasks":null}]}`,
	`{"apps":[{"labels":{},"ports":[],"tasks":[]}]}`,
	`{"apps":[{"labels":{"a":"1","a":"2","b":null}}]}`,
	`{"apps":[{"ports":[null,0,-0,9223372036854775807,-9223372036854775808]}]}`,
	`{"apps":[{"ports":[9223372036854775808]}]}`,
	`{"apps":[{"ports":[1.0]}]}`,
	`{"apps":[{"ports":[1e2]}]}`,
	`{"apps":[{"ports":[01]}]}`,
	`{"apps":[{"ports":["1"]}]}`,
	`{"apps":[{"id":1}]}`,
	`{"apps":[{"labels":{"a":1}}]}`,
	`{"apps":[{"container":{"docker":{"portMappings":[{"servicePort":80,"protocol":"udp","x":{}}]},"portMappings":null}}]}`,
	`{"apps":[{"container":{"docker":null}}]}`,
	`{"apps":[{"healthChecks":[{"protocol":"HTTP","path":"/h","portIndex":null},{"portIndex":2}]}]}`,
	`{"apps":[{"tasks":[{"id":"t","host":"h","state":null,"healthCheckResults":[{"alive":true},{"alive":null,"lastFailureCause":"x"}]}]}]}`,
	`{"apps":[{"tasks":[{"state":"TASK_RUNNING","healthCheckResults":[{"alive":"yes"}]}]}]}`,
	`{"apps":[{"id":"/a"},]}`,
	`{"apps":[{"id":"/a"}],}`,
	`{"apps":[{"id":"/a",}]}`,
	`{"apps":[{"id":"/a"}{"id":"/b"}]}`,
	`{"apps":[{"x":[1,]}]}`,
	`{"apps":[{"x":{"a"}}]}`,
	`{"apps":[{"x":{1:2}}]}`,
	`{"apps":[{"x":tru}]}`,
	`{"apps":[{"x":nul}]}`,
	`{"apps":[{"x":"\x"}]}`,
	`{"apps":[{"x":"\u12g4"}]}`,
	"{\"apps\":[{\"x\":\"tab\there\"}]}",
	`{"apps":[{"x":-}]}`,
	`{"apps":[{"x":1.}]}`,
	`{"apps":[{"x":1e}]}`,
	`{"apps":[{"x":+1}]}`,
	`{"apps":[{"x":[}]}`,
	`{"apps":[] `,
	`{"apps":[]} trailing`,
	`{"apps":[{"id":"/a"}],"apps":[]}`,
	`{"apps":null}`,
	`{"apps":{}}`,
	`[]`,
	`{}`,
	``,
	// Data after the top-level object.
	`{"apps":[]} garbage`,
	"{\"apps\":[]}\x00",
	`{"apps":[]} {}`,
	`{"apps":[]}]`,
	"{\"apps\":[]} \n\t\r ",
	// Malformed values: the app, the task or the label goes, the rest stays.
	`{"apps":[{"id":"/a","id":"/b","ports":[80]},{"id":"/c","ports":[81]}]}`,
	`{"apps":[{"id":"/a","ID":"/b"}]}`,
	`{"apps":[{"id":"/a","labels":{},"Labels":{}}]}`,
	`{"apps":[{"id":"/a","ports":[80],"tasks":[{"host":"a","host":"b","ports":[1]},{"host":"c","ports":[2]}]}]}`,
	`{"apps":[{"container":{"docker":{"portMappings":[],"portMappings":[]}}}]}`,
	`{"apps":[1,{"id":"/b","ports":[80],"tasks":[{"host":"1.1.1.1","ports":[31000]}]},"x",[],true]}`,
	`{"apps":[{"id":["/a"],"ports":[80]}]}`,
	`{"apps":[{"id":"/a","labels":{"a":1,"b":1.0,"c":1e2,"d":-0,"e":-0.0,"f":true,"g":null,"h":{},"i":[1],"j":"s","k":1e400,"l":0.0001,"m":0.00001,"n":12345678901234567890,"o":1e16,"p":1.5e15,"":false}}]}`,
	`{"apps":[{"id":"/a","ports":[80],"labels":{"com.meltwater.proxymatic.port.0.weight":100,"com.meltwater.proxymatic.port.0.maxconn":10.0},"tasks":[{"host":"1.1.1.1","ports":[31000]}]}]}`,
	`{"apps":[{"id":"/a","labels":[]}]}`,
	`{"apps":[{"id":"/a","labels":"x"}]}`,
	`{"apps":[{"id":"/a","ports":[80],"tasks":[{"host":1,"ports":[31000]},{"host":"h","ports":[31001]},{"host":"h2","state":5},{"host":"h3","ports":["x",1]},{"host":"h4","healthCheckResults":[{"alive":"yes"}]},{"host":"h5","healthCheckResults":{}},7,null,{"id":{},"host":"h6"},{"host":"h7","healthCheckResults":[{"alive":true,"lastFailureCause":1}]}]}]}`,
	`{"apps":[{"id":"/a","tasks":{}}]}`,
	`{"apps":[{"id":"/a","tasks":"x"}]}`,
	`{"apps":[{"id":"/a","ports":"80"}]}`,
	`{"apps":[{"id":"/a","ports":[80,"x",82]}]}`,
	`{"apps":[{"id":"/a","ports":[80,1.5,82]}]}`,
	`{"apps":[{"id":"/a","portDefinitions":[{"port":"80"}]}]}`,
	`{"apps":[{"id":"/a","portDefinitions":[{"port":80,"protocol":6}]}]}`,
	`{"apps":[{"id":"/a","portDefinitions":{"port":80}}]}`,
	`{"apps":[{"id":"/a","container":{"docker":{"portMappings":[{"servicePort":1.5}]}}}]}`,
	`{"apps":[{"id":"/a","container":{"docker":[]}}]}`,
	`{"apps":[{"id":"/a","container":{"portMappings":{}}}]}`,
	`{"apps":[{"id":"/a","container":[]}]}`,
	`{"apps":[{"id":"/a","healthChecks":[{"portIndex":"0"}]}]}`,
	`{"apps":[{"id":"/a","healthChecks":[{"protocol":1,"path":"/"}]}]}`,
	`{"apps":[{"id":"/a","healthChecks":{}}]}`,
	`{"apps":[{"id":"/a","healthChecks":[1]}]}`,
	`{"apps":[{"id":"/a","ports":[80],"tasks":[{"host":"1.1.1.1","ports":[31000],"state":"TASK_RUNNING","state":"TASK_KILLING"}]}]}`,
	// More malformed values than are described (maxMalformed): what they
	// decide still holds, the labels' and the tasks' after the cap too.
	`{"apps":[{"id":"/a","ports":[80],"labels":{` + strings.Repeat(`"x":true,`, 40) + `"y":1},"tasks":[` + strings.Repeat(`{"host":1},`, 5) + `{"host":"1.1.1.1","ports":[31000]},{"host":"1.1.1.2","ports":[31001],"state":5}]},{"id":"/b","ports":[81],"tasks":[{"host":"1.1.1.3","ports":[31002]}]}]}`,
	`{"apps":[{"id":"/a","ports":[80],"labels":{` + strings.Repeat(`"x":true,`, 40) + `"y":1},"tasks":[{"host":"1.1.1.1","ports":[31000]}],"labels":{}},{"id":"/b","ports":[81]}]}`,
	`{"apps":[{"id":"/a","ports":[80],"labels":{` + strings.Repeat(`"x":true,`, 40) + `"y":1},"tasks":{}},{"id":"/b","ports":[81]}]}`,
	`{"apps":[{"id":"/a","labels":{` + strings.Repeat(`"x":[],`, 40) + `"y":1},"ports":[80,"x"]},{"id":"/b","ports":[81]}]}`,
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		sameAsV1(t, []byte(c))
		sameAsRef(t, []byte(c))
	}
	sameAsV1(t, marathontest.AppsJSON(marathontest.Generate(20, 3)))
	// A token longer than the scanner's buffer.
	long := strings.Repeat("é\\n", 40000)
	sameAsV1(t, []byte(`{"apps":[{"id":"`+long+`","labels":{"`+long+`":"`+long+`"}}]}`))
	// Whitespace longer than the buffer between a key and its colon.
	sameAsV1(t, []byte(`{"apps":[{"id"`+strings.Repeat(" ", 100000)+`:"/a"}]}`))
}

// A used field given twice, or a value of the wrong type, takes out what
// README.md says (the app, the task or the label) and nothing else.
func TestDecodeMalformedScopes(t *testing.T) {
	for _, c := range []struct {
		in        string
		appSkip   []bool // per app
		taskSkip  []bool // of the first app's tasks
		malformed []string
	}{
		{`{"apps":[{"id":"/a","id":"/b"},{"id":"/c"}]}`, []bool{true, false}, nil, []string{"id"}},
		{`{"apps":[{"id":"/a","ID":"/b"}]}`, []bool{true}, nil, []string{"id"}},
		{`{"apps":[{"tasks":[{"host":"a","host":"b"},{"host":"c"}]}]}`, []bool{false}, []bool{true, false}, []string{"tasks[0].host"}},
		{`{"apps":[{"container":{"docker":{"portMappings":[],"portMappings":[]}}}]}`, []bool{true}, nil, []string{"container.docker.portMappings"}},
		{`{"apps":[7,{"id":"/b"}]}`, []bool{true, false}, nil, []string{""}},
		{`{"apps":[{"id":"/a","labels":{"x":true,"y":"1","z":2}}]}`, []bool{false}, nil, []string{`labels."x"`}},
		{`{"apps":[{"id":"/a","labels":["x"]}]}`, []bool{true}, nil, []string{"labels"}},
		{`{"apps":[{"id":"/a","tasks":[{"host":"h","state":1},{"host":"i","ports":[1,"2"]},{"host":"j"}]}]}`, []bool{false}, []bool{true, true, false}, []string{"tasks[0].state", "tasks[1].ports[1]"}},
		{`{"apps":[{"id":"/a","tasks":{"host":"h"}}]}`, []bool{true}, nil, []string{"tasks"}},
		{`{"apps":[{"id":"/a","portDefinitions":[{"port":80},{"port":"81"}]}]}`, []bool{true}, nil, []string{"portDefinitions[1].port"}},
		{`{"apps":[{"id":"/a","healthChecks":[{"path":5}]}]}`, []bool{true}, nil, []string{"healthChecks[0].path"}},
	} {
		apps, err := decodeApps(strings.NewReader(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		var skips, tskips []bool
		var paths []string
		for i, a := range apps {
			skips = append(skips, a.skip)
			for _, m := range a.malformed {
				paths = append(paths, m.path)
			}
			if i == 0 {
				for _, t := range a.Tasks {
					tskips = append(tskips, t.skip)
				}
			}
		}
		if !slices.Equal(skips, c.appSkip) || (c.taskSkip != nil && !slices.Equal(tskips, c.taskSkip)) || !slices.Equal(paths, c.malformed) {
			t.Errorf("%s: app skips %v, task skips %v, malformed %q; want %v, %v, %q", c.in, skips, tskips, paths, c.appSkip, c.taskSkip, c.malformed)
		}
	}
}

// Label values that are JSON numbers read as the original's Python str()
// of json.loads' value (values checked against CPython 3).
func TestLabelNumbersAsPython(t *testing.T) {
	for in, want := range map[string]string{
		"100": "100", "-7": "-7", "0": "0", "-0": "0", "12345678901234567890123": "12345678901234567890123",
		"100.0": "100.0", "1e2": "100.0", "1E2": "100.0", "1e+2": "100.0", "-0.0": "-0.0", "0.5": "0.5",
		"0.1": "0.1", "0.0001": "0.0001", "0.00001": "1e-05", "1.23e-7": "1.23e-07", "1e16": "1e+16",
		"1.5e15": "1500000000000000.0", "12345678901234567.0": "1.2345678901234568e+16",
		"9007199254740993.0": "9007199254740992.0", "2.5e300": "2.5e+300", "5e-324": "5e-324",
		"1e400": "inf", "-1e400": "-inf", "1e-400": "0.0", "-1e-400": "-0.0", "0.30000000000000004": "0.30000000000000004",
	} {
		if got := pyNumber([]byte(in)); got != want {
			t.Errorf("pyNumber(%s) = %q, want %q", in, got, want)
		}
		apps, err := decodeApps(strings.NewReader(`{"apps":[{"labels":{"x":` + in + `}}]}`))
		if err != nil || apps[0].Labels["x"] != want || len(apps[0].malformed) != 0 {
			t.Errorf("label %s decoded as %q (%v, %v)", in, apps[0].Labels["x"], apps[0].malformed, err)
		}
	}
}

// Values over maxValue are malformed where kept (the field's rule applies)
// and cost nothing where skipped; the read buffer stays bounded either way.
func TestDecodeLongValues(t *testing.T) {
	long := strings.Repeat("a", maxValue+1)
	digits := "1" + strings.Repeat("0", maxValue)
	in := `{"apps":[` +
		`{"id":"/skipped","x":"` + long + `","y":` + digits + `,"` + long + `":1},` +
		`{"id":"/label","labels":{"a":"` + long + `","b":` + digits + `,"` + long + `":"v","ok":"1"}},` +
		`{"id":"` + long + `"},` +
		`{"id":"/task","tasks":[{"host":"` + long + `"},{"host":"h"}]}` +
		`]}`
	s := &scanner{r: iotest.HalfReader(strings.NewReader(in)), buf: make([]byte, 64<<10)}
	var apps []app
	err := s.document(func() *app { apps = append(apps, app{}); return &apps[len(apps)-1] }, func(*app) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.buf) > 4*maxValue {
		t.Errorf("read buffer grew to %d bytes", len(s.buf))
	}
	if a := apps[0]; a.skip || len(a.malformed) != 0 {
		t.Errorf("long skipped values: %+v", a.malformed)
	}
	if a := apps[1]; a.skip || len(a.malformed) != 3 || a.Labels["ok"] != "1" || len(a.Labels) != 1 {
		t.Errorf("long labels: %v %+v", a.Labels, a.malformed)
	}
	if a := apps[2]; !a.skip || a.ID != "" {
		t.Errorf("long id: skip %v, %+v", a.skip, a.malformed)
	}
	if a := apps[3]; a.skip || !a.Tasks[0].skip || a.Tasks[1].skip {
		t.Errorf("long task host: %+v", a)
	}
	sameAsRef(t, []byte(in))
}

func TestDecodeDepthLimit(t *testing.T) {
	deep := func(n int) []byte {
		return []byte(`{"apps":[{"x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}]}`)
	}
	// The app object is level 1, as encoding/json counted decoding one app.
	if _, err := decodeApps(bytes.NewReader(deep(10000))); err != nil {
		t.Errorf("depth 10000: %v", err)
	}
	if _, err := decodeApps(bytes.NewReader(deep(10001))); err == nil {
		t.Error("depth 10001: no error")
	}
	sameAsV1(t, deep(10000))
	sameAsV1(t, deep(10001))
}

func TestDecodeReadError(t *testing.T) {
	boom := errors.New("connection reset")
	body := marathontest.AppsJSON(marathontest.Generate(50, 2))
	r := io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotest.ErrReader(boom))
	if _, err := decodeApps(r); !errors.Is(err, boom) {
		t.Errorf("got %v, want the read error", err)
	}
}

// FuzzDecodeMatchesEncodingJSON holds the scanner to encoding/json on any
// input, and to decodeAppsRef's malformed rules, down to the services
// compiled from both; the cases above are its seeds.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Add(marathontest.AppsJSON(marathontest.Generate(3, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsV1(t, data)
		sameAsRef(t, data)
	})
}

// normalize moves the ids the scanner keeps as bytes into ID, where
// encoding/json puts them, and clears the app's position in the body, so
// the two decodes compare field by field.
func normalize(apps []app) {
	for i := range apps {
		apps[i].pos = 0
		for j := range apps[i].Tasks {
			t := &apps[i].Tasks[j]
			if t.idb != nil {
				t.ID, t.idb = string(t.idb), nil
			}
		}
	}
}
