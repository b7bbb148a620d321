package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// decodeAppsV1 is the encoding/json decoder the scanner replaced, kept as
// the reference its results are held to.
func decodeAppsV1(r io.Reader) ([]app, error) {
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
			apps = append(apps, app{})
			if err := dec.Decode(&apps[len(apps)-1]); err != nil {
				return nil, err
			}
		}
		if err := expectDelimV1(dec, ']'); err != nil {
			return nil, err
		}
	}
	if err := expectDelimV1(dec, '}'); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("no apps")
	}
	return apps, nil
}

func expectDelimV1(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// sameAsV1 fails unless the scanner agrees with encoding/json on data: the
// same apps, or both an error; the scanner may refuse a used field given
// twice, which encoding/json merges.
func sameAsV1(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeAppsV1(bytes.NewReader(data))
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
	} {
		got, err := decodeApps(r)
		withIDs(got)
		switch {
		case err != nil && wantErr == nil && !errors.Is(err, errDuplicate):
			t.Fatalf("%s: scanner refused what encoding/json took: %v\n%q", name, err, data)
		case err == nil && wantErr != nil:
			t.Fatalf("%s: scanner took what encoding/json refused (%v)\n%q", name, wantErr, data)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("%s: scanner and encoding/json differ on %q\nscanner: %#v\nv1:      %#v", name, data, got, want)
		}
	}
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
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		sameAsV1(t, []byte(c))
	}
	sameAsV1(t, marathontest.AppsJSON(marathontest.Generate(20, 3)))
	// A token longer than the scanner's buffer.
	long := strings.Repeat("é\\n", 40000)
	sameAsV1(t, []byte(`{"apps":[{"id":"`+long+`","labels":{"`+long+`":"`+long+`"}}]}`))
	// Whitespace longer than the buffer between a key and its colon.
	sameAsV1(t, []byte(`{"apps":[{"id"`+strings.Repeat(" ", 100000)+`:"/a"}]}`))
}

func TestDecodeRefusesDuplicateFields(t *testing.T) {
	for _, in := range []string{
		`{"apps":[{"id":"/a","id":"/b"}]}`,
		`{"apps":[{"id":"/a","ID":"/b"}]}`,
		`{"apps":[{"tasks":[{"host":"a","host":"b"}]}]}`,
		`{"apps":[{"container":{"docker":{"portMappings":[],"portMappings":[]}}}]}`,
	} {
		if _, err := decodeApps(strings.NewReader(in)); !errors.Is(err, errDuplicate) {
			t.Errorf("%s: got %v, want errDuplicate", in, err)
		}
	}
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
// input; the cases above are its seeds.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Add(marathontest.AppsJSON(marathontest.Generate(3, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsV1(t, data)
	})
}

// withIDs moves the ids the scanner keeps as bytes into ID, where
// encoding/json puts them, so the two decodes compare field by field.
func withIDs(apps []app) {
	for i := range apps {
		for j := range apps[i].Tasks {
			t := &apps[i].Tasks[j]
			if t.idb != nil {
				t.ID, t.idb = string(t.idb), nil
			}
		}
	}
}
