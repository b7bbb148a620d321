package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "json", false)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("shown", "k", "v")
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["msg"] != "shown" || m["k"] != "v" {
		t.Fatalf("json line %q: %v", b.String(), err)
	}
	b.Reset()
	l, _ = New(&b, "", true)
	l.Debug("debug on")
	if !strings.Contains(b.String(), "level=DEBUG") {
		t.Errorf("verbose text: %q", b.String())
	}
	if _, err := New(&b, "xml", false); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Errorf("bad format: %v", err)
	}
}
