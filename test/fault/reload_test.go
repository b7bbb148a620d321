package fault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/services"
)

// backend is a real HTTP server answering its name.
type backend struct {
	name string
	srv  services.Server
}

func newBackend(t testing.TB, name string) backend {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
	t.Cleanup(s.Close)
	ap := netip.MustParseAddrPort(s.Listener.Addr().String())
	return backend{name: name, srv: services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: services.DefaultWeight}}
}

// agentd is a running proxymatic-reload.
type agentd struct {
	*proc
	file, runDir string
	status       string
	vhostPort    int
	args         []string
}

type agentOpts struct {
	haproxy bool // TCP through HAProxy rather than pen
	nginx   bool // virtual hosts under test.example
	runDir  string
	env     []string
}

// openDir makes dir and its parents traversable by the proxies'
// unprivileged user (t.TempDir is 0700).
func openDir(t testing.TB, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// agentArgs builds an agent's command line; the services file is in a
// directory of its own, the run dir fresh unless given.
func agentArgs(t testing.TB, o agentOpts) *agentd {
	t.Helper()
	a := &agentd{file: filepath.Join(t.TempDir(), "in", "services.yaml"), runDir: o.runDir}
	if a.runDir == "" {
		a.runDir = filepath.Join(t.TempDir(), "run")
	}
	if err := os.MkdirAll(filepath.Dir(a.file), 0o755); err != nil {
		t.Fatal(err)
	}
	openDir(t, filepath.Dir(a.runDir))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a.status = "http://" + addr
	a.args = []string{"--services", a.file, "--run-dir", a.runDir, "--status-endpoint", addr,
		"--shutdown-delay", "100ms", "--stop-timeout", "5s",
		"--max-connections", "256", "--pen-servers", "8", "--pen-clients", "256"}
	if o.haproxy {
		a.args = append(a.args, "--haproxy")
	}
	if o.nginx {
		a.vhostPort = freePort(t)
		a.args = append(a.args, "--vhost-domain", "test.example", "--vhost-port", strconv.Itoa(a.vhostPort))
	}
	return a
}

// startAgent writes svcs (when given) and starts the agent.
func startAgent(t testing.TB, o agentOpts, svcs ...services.Service) *agentd {
	t.Helper()
	a := agentArgs(t, o)
	if svcs != nil {
		a.write(t, svcs...)
	}
	a.run(t, o.env...)
	return a
}

func (a *agentd) run(t testing.TB, env ...string) {
	t.Helper()
	a.proc = start(t, binReload, a.args, env...)
	eventually(t, 10*time.Second, "agent status endpoint up", func() bool {
		a.alive(t)
		code, _ := get(a.status + "/status")
		return code != 0
	})
}

func svc(name string, port int, bs ...backend) services.Service {
	s := services.Service{Name: name, Port: port, Protocol: services.TCP, Mode: services.ModeTCP}
	for _, b := range bs {
		s.Servers = append(s.Servers, b.srv)
	}
	return s
}

// write replaces the services file atomically, as sync does.
func (a *agentd) write(t testing.TB, svcs ...services.Service) []byte {
	t.Helper()
	f := services.File{Services: slices.Clone(svcs)}
	f.Normalize()
	data := f.Encode()
	a.writeRaw(t, data)
	return data
}

func (a *agentd) writeRaw(t testing.TB, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(a.file), ".services.yaml.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.file); err != nil {
		t.Fatal(err)
	}
}

// tcpGet asks the proxy on port for one answer on a fresh connection.
func tcpGet(port int) (string, error) {
	code, body := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if code != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", code, body)
	}
	return body, nil
}

// vhostGet asks nginx for host.
func (a *agentd) vhostGet(host string) (string, error) {
	code, body := do("GET", fmt.Sprintf("http://127.0.0.1:%d/", a.vhostPort), host)
	if code != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", code, body)
	}
	return body, nil
}

// answers waits until get returns want. On failure the message shows the
// last answer (it was formatted before the first try, so it always said
// "" and nil whatever came back).
func answers(t testing.TB, within time.Duration, what string, get func() (string, error), want string) time.Duration {
	t.Helper()
	var got string
	var err error
	d, ok := poll(within, func() bool {
		got, err = get()
		return err == nil && got == want
	})
	if !ok {
		t.Fatalf("not within %v: %s answered by %s (last %q, %v)", within, what, want, got, err)
	}
	return d
}

// stillAnswers checks every request over d is answered by want.
func stillAnswers(t testing.TB, d time.Duration, what string, get func() (string, error), want string) int {
	t.Helper()
	n := 0
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		got, err := get()
		if err != nil || got != want {
			t.Fatalf("%s: request %d answered %q, %v; want %q", what, n, got, err, want)
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

func (a *agentd) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return metric(t, a.status, name, labels...)
}

// waitFileError waits until the agent has counted another bad read of the
// services file since before.
func (a *agentd) waitFileError(t testing.TB, before float64) {
	t.Helper()
	eventually(t, 15*time.Second, "a services file error counted", func() bool {
		a.alive(t)
		return a.metric(t, "proxymatic_reload_file_errors_total") > before
	})
}

func aliasBomb() []byte {
	var b strings.Builder
	b.WriteString("version: 1\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("services: *a9\n")
	return []byte(b.String())
}
