package render_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
)

// breakTemplates writes templates that each proxy refuses for the service
// "bad" only (an unknown keyword or directive in its own block).
func breakTemplates(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []struct{ src, name, marker, add string }{
		{"../haproxy/templates/haproxy.cfg.tmpl", "haproxy.cfg.tmpl", "listen {{.Name}}\n", `{{if eq (printf "%.4s" .Name) "bad-"}}    bogus-keyword on` + "\n{{end}}"},
		{"../nginx/templates/nginx.conf.tmpl", "nginx.conf.tmpl", "server_name {{.Host}};\n", `{{if eq (printf "%.4s" .Host) "bad."}}        bogus_directive on;` + "\n{{end}}"},
		{"../pen/templates/pen.cfg.tmpl", "pen.cfg.tmpl", "\n", `{{if eq .Name "bad"}}bogus` + "\n{{end}}"},
	} {
		b, err := os.ReadFile(p.src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(p.marker)) {
			t.Fatalf("%s has no %q", p.src, p.marker)
		}
		out := strings.Replace(string(b), p.marker, p.marker+p.add, 1)
		if err := os.WriteFile(filepath.Join(dir, p.name), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodAndBad = "version: 1\nservices:\n" +
	"- name: web\n  port: 9000\n  servers:\n  - ip: 10.0.0.1\n    port: 80\n" +
	"- name: bad\n  port: 9001\n  servers:\n  - ip: 10.0.0.2\n    port: 80\n" +
	"- name: bad\n  port: 9002\n  protocol: udp\n  servers:\n  - ip: 10.0.0.3\n    port: 53\n"

// The dry run fails when a proxy refuses a service, and names the service
// each proxy's message points at, so CI says what to fix.
func TestDryRunNamesRefusedServices(t *testing.T) {
	requireProxies(t)
	src := filepath.Join(t.TempDir(), "services.yaml")
	os.WriteFile(src, []byte(goodAndBad), 0o644)
	o := opts()
	o.TemplateDir = breakTemplates(t)
	var out bytes.Buffer
	err := render.DryRun(context.Background(), o, src, t.TempDir(), true, &out)
	var ce *render.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("DryRun = %v, want the proxies' refusals", err)
	}
	for _, want := range []string{
		`refused:  haproxy refused service "bad" (9001/tcp): parsing [`,
		`refused:  nginx refused service "bad" (9001/tcp): unknown directive "bogus_directive"`,
		`refused:  pen refused service "bad" (9002/udp): pen: rendered config for 9002/udp is not valid`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{"haproxy rejects", "nginx rejects", "pen parser rejects"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// Without renders one proxy's file again without the given services and
// leaves the other proxies' files alone; a pen service that fails to render
// is refused on its own.
func TestFilesWithout(t *testing.T) {
	d, err := services.Parse([]byte(goodAndBad))
	if err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.TemplateDir = breakTemplates(t)
	tpl, err := render.LoadTemplates(o.TemplateDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Render(o, tpl, render.NewPlan(o, d.File.Services), pen.NewSlots(o.PenServers))
	if err != nil {
		t.Fatal(err)
	}
	if len(files.PenRefused) != 1 || files.PenRefused[0].Service.String() != "9002/udp" || files.PenRefused[0].Name != "bad" || len(files.Pen) != 0 {
		t.Fatalf("pen refused %+v, files %d", files.PenRefused, len(files.Pen))
	}
	bad := map[services.Key]bool{{Port: 9001, Protocol: services.TCP}: true}
	for _, proxy := range []string{"haproxy", "nginx"} {
		w, err := files.Without(proxy, bad)
		if err != nil {
			t.Fatal(err)
		}
		ha, ng := string(w.HAProxy), string(w.Nginx)
		if proxy == "haproxy" {
			if strings.Contains(ha, "bad-9001") || !strings.Contains(ha, "web-9000") || ng != string(files.Nginx) || len(w.HAProxyServices) != 1 {
				t.Errorf("haproxy without bad:\n%s", ha)
			}
		} else {
			if strings.Contains(ng, "bad.apps") || !strings.Contains(ng, "web.apps") || ha != string(files.HAProxy) || len(w.NginxVHosts) != 1 {
				t.Errorf("nginx without bad:\n%s", ng)
			}
		}
	}
	if len(files.HAProxyServices) != 2 || len(files.NginxVHosts) != 2 {
		t.Error("Without changed the files it was given")
	}
	if _, err := files.Without("pen", bad); err == nil {
		t.Error("Without pen: no error")
	}
}
