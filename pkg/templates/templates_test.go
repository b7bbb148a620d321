package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if tp, err := Load("", "x.tmpl"); tp != nil || err != nil {
		t.Fatalf("no dir: %v %v", tp, err)
	}
	if tp, err := Load(dir, "x.tmpl"); tp != nil || err != nil {
		t.Fatalf("missing file: %v %v", tp, err)
	}
	os.WriteFile(filepath.Join(dir, "x.tmpl"), []byte("port {{.Port}}\n"), 0o644)
	tp, err := Load(dir, "x.tmpl")
	if err != nil || tp == nil {
		t.Fatalf("override: %v", err)
	}
	var b strings.Builder
	if err := tp.Execute(&b, map[string]int{"Port": 80}); err != nil || b.String() != "port 80\n" {
		t.Fatalf("execute: %q %v", b.String(), err)
	}
	if err := tp.Execute(&b, map[string]int{}); err == nil {
		t.Error("a missing key must fail the render")
	}
	os.WriteFile(filepath.Join(dir, "bad.tmpl"), []byte("{{.Port"), 0o644)
	if _, err := Load(dir, "bad.tmpl"); err == nil || !strings.Contains(err.Error(), "bad.tmpl") {
		t.Errorf("a broken override must name its file: %v", err)
	}
	os.Mkdir(filepath.Join(dir, "d.tmpl"), 0o755)
	if _, err := Load(dir, "d.tmpl"); err == nil {
		t.Error("a directory in place of the template must be an error")
	}
}

func TestMustEmbedded(t *testing.T) {
	fsys := fstest.MapFS{"templates/a.tmpl": {Data: []byte("a {{.}}")}}
	if MustEmbedded(fsys, "a.tmpl") == nil {
		t.Fatal("nil template")
	}
	defer func() {
		if recover() == nil {
			t.Error("a missing embedded template must panic")
		}
	}()
	MustEmbedded(fsys, "b.tmpl")
}
