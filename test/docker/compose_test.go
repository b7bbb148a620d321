package docker

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// compose is one project of deploy/docker-compose.yml with
// compose.e2e.yml layered on it.
type compose struct {
	cmd     []string // "docker compose" or "docker-compose"
	project string
	env     []string
	ports   map[string]int
}

// composeCommand finds Compose: the docker plugin, else docker-compose.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}
	}
	testbin.Missing(t, "neither `docker compose` nor docker-compose works")
	return nil
}

func newCompose(t *testing.T) *compose {
	t.Helper()
	c := &compose{
		cmd:     composeCommand(t),
		project: fmt.Sprintf("proxymatic-e2e-%d", os.Getpid()),
		ports:   map[string]int{},
	}
	// Host networking: every listener is on the host, so every port is
	// picked free here.
	for _, name := range []string{"MARATHON", "ETCD", "ETCD_PEER", "SYNC_STATUS", "STATUS", "VHOST",
		"BACKEND_1", "BACKEND_2", "BACKEND_3", "BACKEND_4", "WEB", "API"} {
		c.ports[name] = testbin.FreePort(t, "tcp")
		c.env = append(c.env, fmt.Sprintf("E2E_%s_PORT=%d", name, c.ports[name]))
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run("logs", "--no-color", "--tail=60")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := c.run("down", "-v", "--timeout", "5"); err != nil {
			t.Logf("cleanup: %v\n%s", err, out)
		}
	})
	return c
}

func (c *compose) run(args ...string) (string, error) {
	full := append(append([]string{}, c.cmd[1:]...), "-p", c.project,
		"-f", "deploy/docker-compose.yml", "-f", "test/docker/compose.e2e.yml")
	full = append(full, args...)
	cmd := exec.Command(c.cmd[0], full...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", strings.Join(c.cmd, " "), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *compose) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// id is the container id of a service.
func (c *compose) id(t *testing.T, service string) string {
	t.Helper()
	id := strings.TrimSpace(c.must(t, "ps", "-q", service))
	if id == "" {
		t.Fatalf("no container for %s", service)
	}
	return id
}

// etcd sets (value != "") or deletes a v2 key, as registrator does.
func (c *compose) etcd(key, value string) error {
	u := fmt.Sprintf("http://127.0.0.1:%d/v2/keys%s", c.ports["ETCD"], key)
	method, body := http.MethodDelete, ""
	if value != "" {
		method, body = http.MethodPut, url.Values{"value": {value}}.Encode()
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d", method, key, resp.StatusCode)
	}
	return nil
}

// registrator's key for backend n of service name.
func (c *compose) key(name string, n int) string {
	return fmt.Sprintf("/services/%s/e2e-host:backend-%d:%d", name, n, c.ports[strings.ToUpper(name)])
}

func (c *compose) backend(n int) string {
	return fmt.Sprintf("127.0.0.1:%d", c.ports["BACKEND_"+strconv.Itoa(n)])
}

// TestCompose runs deploy/docker-compose.yml as shipped (sync and reload,
// host networking, a shared volume), with a stand-in Marathon, a real etcd
// and four backends in containers of their own: traffic through HAProxy and
// nginx reaches the backends, follows scaling through Marathon and through
// etcd, and `down` under load stops everything within its grace period
// without losing a request.
func TestCompose(t *testing.T) {
	images(t)
	c := newCompose(t)
	c.must(t, "up", "-d", "--no-build")

	web := func(backends ...int) *marathontest.App {
		app := marathontest.BridgeApp("/web", c.ports["WEB"])
		for _, n := range backends {
			app.WithTask("127.0.0.1", c.ports["BACKEND_"+strconv.Itoa(n)])
		}
		return app
	}
	eventually(t, "the stand-in Marathon taking /web on backend-1", func() bool { return setApps(c.ports["MARATHON"], web(1)) == nil })
	eventually(t, "etcd taking api on backend-3", func() bool { return c.etcd(c.key("api", 3), c.backend(3)) == nil })

	webHA, webNginx := target{c.ports["WEB"], ""}, target{c.ports["VHOST"], "web.e2e.test"}
	apiHA, apiNginx := target{c.ports["API"], ""}, target{c.ports["VHOST"], "api.e2e.test"}
	follows(t, "from Marathon", []string{"backend-1"}, webHA, webNginx)
	follows(t, "from etcd", []string{"backend-3"}, apiHA, apiNginx)

	for _, svc := range []string{"sync", "reload"} {
		id := c.id(t, svc)
		eventually(t, svc+"'s HEALTHCHECK turning healthy", func() bool { return health(t, id) == "healthy" })
	}
	if code, body := status(c.ports["SYNC_STATUS"]); code != http.StatusOK {
		t.Errorf("sync's /status: %d %s", code, body)
	}
	if code, body := status(c.ports["STATUS"]); code != http.StatusOK {
		t.Errorf("reload's /status: %d %s", code, body)
	}

	// From here to the end a load runs through both proxies: scaling
	// reloads them under it, and `down` stops them under it.
	l := startLoad(4, "/load?delay=200ms", webHA, webNginx, apiHA, apiNginx)
	defer l.end()

	// Scale through the stand-in: a task added, then the first one gone.
	if err := setApps(c.ports["MARATHON"], web(1, 2)); err != nil {
		t.Fatal(err)
	}
	follows(t, "Marathon scaled up", []string{"backend-1", "backend-2"}, webHA, webNginx)
	if err := setApps(c.ports["MARATHON"], web(2)); err != nil {
		t.Fatal(err)
	}
	follows(t, "Marathon scaled down", []string{"backend-2"}, webHA, webNginx)

	// Scale through etcd, the way registrator registers and deregisters.
	if err := c.etcd(c.key("api", 4), c.backend(4)); err != nil {
		t.Fatal(err)
	}
	follows(t, "etcd added backend-4", []string{"backend-3", "backend-4"}, apiHA, apiNginx)
	if err := c.etcd(c.key("api", 3), ""); err != nil {
		t.Fatal(err)
	}
	follows(t, "etcd removed backend-3", []string{"backend-4"}, apiHA, apiNginx)

	ids := strings.Fields(c.must(t, "ps", "-q"))
	if len(ids) != 8 {
		t.Errorf("%d containers, want 8 (sync, reload, marathon, etcd, 4 backends)", len(ids))
	}
	for _, id := range ids {
		if n := must(t, "docker", "inspect", "--format", "{{.Name}} {{.RestartCount}}", id); !strings.HasSuffix(n, " 0") {
			t.Errorf("restarted: %s", n)
		}
	}

	// down with no --timeout: each service's stop_grace_period applies.
	l.markStopping()
	start := time.Now()
	c.must(t, "down", "-v")
	took := time.Since(start)
	l.end()
	t.Logf("down took %s; the load: %s", took.Round(100*time.Millisecond), l)
	if n, first := l.lostBefore(time.Now()); n > 0 {
		t.Errorf("%d requests lost (the first: %v); %s", n, first, l)
	}
	if l.ok == 0 || l.okAfter == 0 {
		t.Errorf("the load was not served before and during down: %s", l)
	}

	// Every container stopped on its own within the grace period: docker
	// reports 137 (SIGKILL) for one it had to kill.
	out := must(t, "docker", "events", "--since", strconv.FormatInt(start.Add(-time.Second).Unix(), 10),
		"--until", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10),
		"--filter", "label=com.docker.compose.project="+c.project, "--filter", "event=die",
		"--format", "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
	died := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("exits: %v", died)
	if len(died) != len(ids) {
		t.Errorf("%d containers died during down, want %d: %v", len(died), len(ids), died)
	}
	for _, d := range died {
		name, code, _ := strings.Cut(d, " ")
		switch {
		case code == "137":
			t.Errorf("%s was killed: it did not stop within its grace period", name)
		case strings.Contains(name, "_sync_") || strings.Contains(name, "-sync-") ||
			strings.Contains(name, "_reload_") || strings.Contains(name, "-reload-"):
			if code != "0" {
				t.Errorf("%s exited %s, want 0", name, code)
			}
		}
	}
}
