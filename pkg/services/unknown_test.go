package services

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnknownFieldsOneLinePerName(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nextra: 1\nservices:\n")
	const n = 3000
	for i := range n {
		fmt.Fprintf(&b, "- name: s%d\n  port: %d\n  color: blue\n  servers:\n  - ip: 10.0.0.1\n    port: 80\n    zone: a\n", i, i+1)
	}
	d, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.File.Services) != n {
		t.Fatalf("%d services, want %d", len(d.File.Services), n)
	}
	want := []string{
		`line 2: unknown field "extra" ignored`,
		`line 6: unknown field "color" ignored (3000 times in the file)`,
		`line 10: unknown field "servers[].zone" ignored (3000 times in the file)`,
	}
	if strings.Join(d.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(d.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnknownFieldsBoundedNames(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nservices:\n- name: a\n  port: 1\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  k%d: v\n", i)
	}
	d, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Warnings) != maxUnknownNames+1 {
		t.Fatalf("%d warning lines for 5,000 distinct unknown keys, want %d", len(d.Warnings), maxUnknownNames+1)
	}
	if last := d.Warnings[len(d.Warnings)-1]; !strings.HasPrefix(last, "4980 more unknown fields") {
		t.Errorf("last warning %q", last)
	}
}

// A file that is not a services file: nothing of what it holds is echoed.
func TestNotAServicesFileIsNotEchoed(t *testing.T) {
	for name, doc := range map[string]string{
		"no version":         "password: hunter2-secret\napi_key: hunter2-secret\n",
		"version a secret":   "version: hunter2-secret\n",
		"duplicate key":      "hunter2-secret: 1\nhunter2-secret: 2\n",
		"a list":             "- hunter2-secret\n",
		"a scalar":           "root:hunter2-secret:0:0::/root:/bin/sh\n",
		"version and secret": "version: 2\nhunter2-secret: x\n",
	} {
		d, err := Parse([]byte(doc))
		if err == nil {
			t.Errorf("%s: parsed (%+v)", name, d)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error echoes the file: %v", name, err)
		}
	}
	// A real services file's version is still named.
	if _, err := Parse([]byte("version: 2\n")); err == nil || !strings.Contains(err.Error(), "version 2 is not supported") {
		t.Errorf("version 2: %v", err)
	}
}
