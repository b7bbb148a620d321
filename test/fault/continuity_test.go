package fault

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/etcdtest"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// statusSources asks sync's /status for JSON and renders its sources as
// "name=state ...", with the status word first.
func statusSources(t testing.TB, base string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/status", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var doc struct {
		Status  string `json:"status"`
		Sources []struct {
			Name         string `json:"name"`
			State        string `json:"state"`
			PreviousFile bool   `json:"previous_file"`
		} `json:"sources"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/status JSON: %v", err)
	}
	out := []string{doc.Status}
	for _, s := range doc.Sources {
		line := s.Name + "=" + s.State
		if s.PreviousFile {
			line += "(previous file)"
		}
		out = append(out, line)
	}
	return resp.StatusCode, strings.Join(out, " ")
}

// Marathon answers and etcd is unreachable when sync starts. Without a
// previous file, Marathon's services are published after --initial-wait;
// with one, at once, registrator's services in it standing for registrator.
// Either way registrator's current state is added when etcd comes back.
func TestEtcdDownAtStartWithMarathon(t *testing.T) {
	for _, previous := range []bool{false, true} {
		name := "no previous file"
		if previous {
			name = "previous file"
		}
		t.Run(name, func(t *testing.T) {
			m := marathontest.New(t)
			m.SetApps(webApp(10001, "10.0.0.1"))
			e := etcdtest.Start(t)
			e.Put(t, "/services/db@5432/node1:db:5432", "10.0.0.9:31432")
			e.Stop()
			out := filepath.Join(t.TempDir(), "services.yaml")
			wait := "1s"
			if previous {
				// The previous file alone lets Marathon be published at once.
				wait = "1h"
				prev := "version: 1\nservices:\n" +
					"- {name: db, port: 5432, protocol: tcp, mode: tcp, source: registrator, servers: [{ip: 10.0.0.8, port: 31432}]}\n" +
					"- {name: web.product, port: 10001, protocol: tcp, mode: tcp, source: marathon, servers: [{ip: 10.0.0.7, port: 31000}]}\n"
				if err := os.WriteFile(out, []byte(prev), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := startSync(t, out, "--marathon", m.URL, "--registrator", "etcd3://"+e.Endpoint+"/services", "--initial-wait", wait)
			data := s.waitFile(t, 15*time.Second, "10.0.0.1")
			if strings.Contains(string(data), "10.0.0.7") {
				t.Errorf("marathon's previous server kept although marathon answered:\n%s", data)
			}
			if previous != strings.Contains(string(data), "10.0.0.8") {
				t.Errorf("registrator's services of the previous file: want them kept only when there is one:\n%s", data)
			}
			want := "OK marathon=read registrator=not yet read"
			if previous {
				want += "(previous file)"
			}
			eventually(t, 5*time.Second, "/status 200 naming registrator", func() bool {
				code, got := statusSources(t, s.status)
				return code == http.StatusOK && got == want
			})
			if code, body := get(s.status + "/status"); code != http.StatusOK || body != "OK\n" {
				t.Errorf("plain /status = %d %q, want 200 \"OK\\n\"", code, body)
			}
			s.waitLog(t, "services.yaml published", 5*time.Second)

			e.Restart()
			data = s.waitFile(t, 20*time.Second, "10.0.0.1", "10.0.0.9")
			if strings.Contains(string(data), "10.0.0.8") {
				t.Errorf("registrator's previous state kept after it answered:\n%s", data)
			}
			eventually(t, 5*time.Second, "/status with both read", func() bool {
				_, got := statusSources(t, s.status)
				return got == "OK marathon=read registrator=read"
			})
			s.alive(t)
		})
	}
}

// The same net=host rule through the command line, for Marathon and
// registrator: a server on its service's own port drops the whole service,
// and --expose-host (or EXPOSE_HOST) keeps it.
func TestNetHostThroughTheCommandLine(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"), marathontest.HostApp("/infra/vault", 8200).WithTask("10.0.0.2", 8200).WithTask("10.0.0.3", 31200))
	e := etcdtest.Start(t)
	e.Put(t, "/services/consul/node1:consul:8500", "10.0.0.4:8500")
	e.Put(t, "/services/db@5432/node1:db:5432", "10.0.0.9:31432")
	run := func(env []string, args ...string) string {
		t.Helper()
		p := start(t, binSync, append([]string{"--dry-run", "--marathon", m.URL, "--registrator", "etcd3://" + e.Endpoint + "/services"}, args...), env...)
		if err := p.waitExit(t, 30*time.Second); err != nil {
			t.Fatalf("exit: %v\n%s", err, p.log.String())
		}
		return p.log.String()
	}
	out := run(nil)
	for _, gone := range []string{"name: vault.infra", "name: consul"} {
		if strings.Contains(out, gone) {
			t.Errorf("without --expose-host the output has %s:\n%s", gone, out)
		}
	}
	for _, kept := range []string{"web.product", "name: db", "service dropped: a server listens on the service's own port"} {
		if !strings.Contains(out, kept) {
			t.Errorf("output lacks %q:\n%s", kept, out)
		}
	}
	for _, exposed := range []string{run(nil, "--expose-host"), run([]string{"EXPOSE_HOST=true"})} {
		for _, kept := range []string{"name: vault.infra", "name: consul", "port: 8200", "port: 8500"} {
			if !strings.Contains(exposed, kept) {
				t.Errorf("with --expose-host the output lacks %q:\n%s", kept, exposed)
			}
		}
	}
}

// A saved Marathon answer (CI without cluster access), through the binary:
// the same output as the live Marathon, and without --once/--dry-run a
// usage error (exit 2) naming the flag.
func TestMarathonFileThroughTheBinary(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1", "10.0.0.2"), marathontest.HostApp("/infra/dns", 53).WithProtocol(0, "tcp,udp").WithTask("10.0.0.3", 31053))
	code, saved := get(m.URL + "/v2/apps?embed=apps.tasks")
	if code != http.StatusOK {
		t.Fatalf("saving the answer: %d", code)
	}
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	dryRun := func(url string) string {
		t.Helper()
		cmd := exec.Command(binSync, "--dry-run", "--marathon", url)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("--dry-run --marathon %s: %v", url, err)
		}
		return string(out)
	}
	live, fromFile := dryRun(m.URL), dryRun("file://"+path)
	if live != fromFile || !strings.Contains(live, "10.0.0.2") {
		t.Errorf("saved answer printed:\n%s\nlive:\n%s", fromFile, live)
	}

	p := start(t, binSync, []string{"--marathon", "file://" + path, "--status-endpoint", ""})
	err := p.waitExit(t, 10*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(p.log.String(), "--marathon file:// (MARATHON_URL) reads a saved answer once: it goes with --once or --dry-run") {
		t.Errorf("file:// without --once: %v\n%s", err, p.log.String())
	}
}
