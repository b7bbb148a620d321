package fault

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// Every hostile value carries the marker "evil"; none may reach an output.
var hostile = []string{
	"web\nevil", "web evil", "web;evil", "web{evil", "web}evil", `web"evil`, "web'evil", "web#evil",
	"web\x00evil", "web\xffevil", "web\tevil", strings.Repeat("a", 1100) + "evil", "WEB-EVIL\r",
}

func noMarker(t *testing.T, what string, out []byte) {
	t.Helper()
	if i := bytes.Index(bytes.ToLower(out), []byte("evil")); i >= 0 {
		lo, hi := max(0, i-200), min(len(out), i+100)
		t.Fatalf("a hostile value reached %s:\n...%s...", what, out[lo:hi])
	}
}

func runOut(t *testing.T, bin string, args ...string) ([]byte, string) {
	t.Helper()
	return runOutErr(t, false, bin, args...)
}

// runOutErr runs bin to its end; with mayFail, a non-zero exit is returned
// in the logs rather than failing the test.
func runOutErr(t *testing.T, mayFail bool, bin string, args ...string) ([]byte, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=text"}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil && !mayFail {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s %v hung", filepath.Base(bin), args)
	}
	return stdout.Bytes(), stderr.String()
}

// Hostile app ids, labels, health-check paths and task hosts from Marathon
// are refused at the source: the file holds only the good app.
func TestAbuseMarathon(t *testing.T) {
	m := marathontest.New(t)
	apps := []*marathontest.App{webApp(10001, "10.0.0.1")}
	for i, h := range hostile {
		port := 11000 + i
		apps = append(apps,
			marathontest.BridgeApp("/product/"+h, port).WithTask("10.0.1.1", 31000),
			marathontest.BridgeApp(fmt.Sprintf("/product/lbl%d", i), port+100).
				WithLabel("com.meltwater.proxymatic.port.0.mode", "http").
				WithLabel("com.meltwater.proxymatic.port.0.servicePort", h).
				WithLabel("com.meltwater.proxymatic.port.0.weight", h).
				WithLabel("com.meltwater.proxymatic.port.0.timeout.client", h).
				WithLabel("com.meltwater.proxymatic.port.0."+h, "1").
				WithHealthCheck(marathontest.HealthCheck{Path: "/" + h}).
				WithTask(h, 31000))
	}
	m.SetApps(apps...)
	out, logs := runOut(t, binSync, "--dry-run", "--marathon", m.URL, "--refresh-interval", "5")
	noMarker(t, "services.yaml from Marathon", out)
	if !bytes.Contains(out, []byte("name: web.product")) || !bytes.Contains(out, []byte("ip: 10.0.0.1")) {
		t.Fatalf("the good app is missing:\n%s", out)
	}
	if !strings.Contains(logs, "level=WARN") {
		t.Fatalf("nothing said about the hostile apps:\n%s", logs)
	}
}

// Hostile registrator keys and values in etcd are refused at the source.
func TestAbuseEtcdKeys(t *testing.T) {
	e := etcdtest.Start(t)
	e.Put(t, "/services/web@10001/node1:web:80", "10.0.0.1:31001")
	for i, h := range hostile {
		if strings.ContainsAny(h, "/") {
			continue // a slash only moves the key to another level; tested below
		}
		e.Put(t, fmt.Sprintf("/services/%s@%d/node1:c:80", h, 12000+i), "10.0.1.1:31000")
		e.Put(t, fmt.Sprintf("/services/ok%d/node1:c:%d", i, 12100+i), "10.0.1.1:31000"+h)
		e.Put(t, fmt.Sprintf("/services/ok%d/%s:c:%d", i, h, 12200+i), "10.0.1.2:31000")
	}
	e.Put(t, "/services/web/evil/node1:c:80", "10.0.1.1:31000")
	out, _ := runOut(t, binSync, "--dry-run", "--registrator", "etcd3://"+e.Endpoint+"/services", "--refresh-interval", "5")
	noMarker(t, "services.yaml from etcd", out)
	if !bytes.Contains(out, []byte("ip: 10.0.0.1")) {
		t.Fatalf("the good key is missing:\n%s", out)
	}
}

// A hand-written services.yaml full of hostile values, fed to the agent:
// nothing hostile reaches haproxy.cfg, nginx.conf or a pen config, and the
// good service is still rendered.
func TestAbuseServicesFile(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	testbin.Require(t, "pen")
	var b strings.Builder
	b.WriteString("version: 1\nservices:\n- name: web\n  port: 10001\n  mode: http\n  servers:\n  - ip: 10.0.0.1\n    port: 31001\n")
	q := func(s string) string {
		return fmt.Sprintf("%q", strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\\0"), "\\xff"))
	}
	for i, h := range hostile {
		p := 11000 + i*10
		fmt.Fprintf(&b, "- name: %s\n  port: %d\n  servers:\n  - ip: 10.0.1.1\n    port: 31000\n", q(h), p)
		fmt.Fprintf(&b, "- name: ok%d\n  port: %d\n  mode: http\n  healthCheck:\n    path: %s\n  servers:\n  - ip: 10.0.1.1\n    port: 31000\n", i, p+1, q("/"+h))
		fmt.Fprintf(&b, "- name: ok%da\n  port: %d\n  servers:\n  - host: %s\n    ip: 10.0.1.1\n    port: 31000\n", i, p+2, q(h))
		fmt.Fprintf(&b, "- name: ok%db\n  port: %d\n  mode: %s\n  protocol: %s\n  timeouts:\n    client: %s\n  servers:\n  - ip: %s\n    port: 31000\n", i, p+3, q(h), q(h), q(h), q("10.0.1.1"+h))
	}
	in := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range [][]string{{"--haproxy", "--vhost-domain", "test.example"}, {"--vhost-domain", "test.example"}} {
		outDir := filepath.Join(t.TempDir(), "out")
		runDir := filepath.Join(t.TempDir(), "run")
		args := append([]string{"--dry-run", "--services", in, "--output-dir", outDir, "--run-dir", runDir}, mode...)
		// Exit 1 by design: --dry-run is the CI path and a rejected
		// service fails it; the good service is rendered all the same.
		_, logs := runOutErr(t, true, binReload, args...)
		if !strings.Contains(logs, "rejected; nothing from them was rendered") {
			t.Fatalf("%v: rejections not reported:\n%s", mode, logs)
		}
		var rendered int
		filepath.WalkDir(outDir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data := readFile(t, path)
			noMarker(t, path, data)
			if bytes.Contains(data, []byte("10.0.0.1:31001")) || bytes.Contains(data, []byte("10.0.0.1 31001")) || bytes.Contains(data, []byte("10.0.0.1:31001;")) {
				rendered++
			}
			return nil
		})
		if rendered == 0 {
			t.Fatalf("%v: the good service was rendered nowhere in %s", mode, outDir)
		}
	}
	// Bytes that are not UTF-8 make the whole document unreadable YAML: refused.
	bad := filepath.Join(t.TempDir(), "services.yaml")
	os.WriteFile(bad, []byte("version: 1\nservices:\n- name: web\xffevil\n  port: 1\n"), 0o644)
	cmd := exec.Command(binReload, "--dry-run", "--services", bad, "--output-dir", filepath.Join(t.TempDir(), "o"), "--run-dir", filepath.Join(t.TempDir(), "r"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a non-UTF-8 services.yaml was accepted:\n%s", out)
	}
}
