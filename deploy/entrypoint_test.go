package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// waitLimit bounds every wait for a state: reaching it means the state never
// came, it is not a performance limit.
const waitLimit = 30 * time.Second

var entrypoint, _ = filepath.Abs("docker-entrypoint.sh")

func TestEntrypointSyntax(t *testing.T) {
	if out, err := exec.Command("sh", "-n", entrypoint).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	// Every other script we ship or run: the bash ones by glob, so that a
	// new script cannot be left out.
	scripts, err := filepath.Glob("../scripts/*.sh")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts under ../scripts: %v", err)
	}
	scripts = append(scripts, "healthcheck.sh", "../bench/run.sh", "../.ci/run")
	for _, f := range scripts {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
	// Every shell script we ship or run. Without shellcheck the syntax
	// checks above stand alone on a developer's machine; where CI=true a
	// missing shellcheck is a failure (scripts/install-deps.sh installs it).
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		if testbin.CI() {
			t.Fatal("CI=true: shellcheck is not installed (run scripts/install-deps.sh)")
		}
		t.Log("shellcheck not installed; syntax checked with sh -n only")
		return
	}
	for _, f := range append([]string{entrypoint}, scripts...) {
		if out, err := exec.Command(shellcheck, f).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", f, err, out)
		}
	}
}

// stubs puts on PATH two programs named like the binaries that record their
// pid and arguments (NUL separated) in dir, then wait for SIGTERM and exit 0.
// They stand in for the binaries only where the test is about which
// arguments reach which binary.
func stubs(t *testing.T) (dir string) {
	dir = t.TempDir()
	const script = `#!/bin/sh
n=${0##*/}
trap 'exit 0' TERM
printf '%s\0' "$$" "$@" >"$STUB_DIR/$n.tmp" && mv "$STUB_DIR/$n.tmp" "$STUB_DIR/$n.args"
while :; do sleep 0.05; done
`
	for _, n := range []string{"proxymatic-sync", "proxymatic-reload"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recorded reads what a stub recorded: its pid and arguments.
func recorded(t *testing.T, dir, name string) (int, []string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".args"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	pid, err := strconv.Atoi(parts[0])
	if err != nil {
		t.Fatalf("%s recorded %q", name, b)
	}
	return pid, parts[1:], true
}

// cleanEnv is the environment without any variable the binaries read, so
// the machine's own settings cannot leak into a test.
func cleanEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, extra...)
}

// started is a running entrypoint.
type started struct {
	cmd  *exec.Cmd
	out  *testbin.Buffer
	done chan struct{}
	err  error
}

func startEntrypoint(t *testing.T, env []string, args ...string) *started {
	t.Helper()
	return startEntrypointErr(t, env, nil, args...)
}

// startEntrypointErr is startEntrypoint with its stderr on stderr, when
// not nil (the write end of a pipe whose reader a test closes).
func startEntrypointErr(t *testing.T, env []string, stderr *os.File, args ...string) *started {
	t.Helper()
	cmd := exec.Command("sh", append([]string{entrypoint}, args...)...)
	cmd.Env = env
	out := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if stderr != nil {
		cmd.Stderr = stderr
	}
	// Its own process group, so that a failing test can still stop all of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		if t.Failed() {
			t.Logf("entrypoint output:\n%s", out.String())
		}
	})
	return s
}

// exit waits for the entrypoint to end and returns its exit status.
func (s *started) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitLimit):
		t.Fatalf("entrypoint still running after %s", waitLimit)
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, waitLimit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drain is what the entrypoint adds for reload unless SHUTDOWN_DELAY or
// --shutdown-delay is set: after SIGTERM the proxies serve until killed.
const drain = "--shutdown-delay=8760h"

func TestEntrypointRoutesOriginalOptions(t *testing.T) {
	cases := []struct {
		name       string
		env        []string
		args       []string
		sync, rel  []string
		runDirFile string   // where the services file must be, under the run dir
		out        []string // in the entrypoint's output
	}{
		{
			name: "original long options, both forms",
			args: []string{"--marathon=http://m1:8080/,http://m2:8080/", "--registrator", "etcd://e:4001/services",
				"--refresh-interval", "5", "--expose-host", "--haproxy", "--vhost-domain", "apps.example.com",
				"--vhost-port=8080", "--proxy-protocol", "--pen-servers", "16", "--pen-clients=100", "--verbose",
				"--marathon-callback=http://me:5090/", "--group-size=3", "--max-connections", "500"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml", "--marathon=http://m1:8080/,http://m2:8080/",
				"--registrator=etcd://e:4001/services", "--refresh-interval=5", "--expose-host", "--verbose",
				"--marathon-callback=http://me:5090/", "--group-size=3"},
			rel: []string{"--services=RUN/services.yaml", "--haproxy", "--vhost-domain=apps.example.com", "--vhost-port=8080",
				"--proxy-protocol", "--pen-servers=16", "--pen-clients=100", "--verbose", "--max-connections=500", drain},
		},
		{
			name: "short options, attached values and a flag cluster",
			args: []string{"-mhttp://m:8080", "-r", "etcd://e:4001/s", "-i30", "-ev", "-c", "http://cb"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml", "--marathon=http://m:8080",
				"--registrator=etcd://e:4001/s", "--refresh-interval=30", "--expose-host", "--verbose",
				"--marathon-callback=http://cb"},
			rel: []string{"--services=RUN/services.yaml", "--verbose", drain},
		},
		{
			name: "environment only: nothing to route, both read their variables",
			env:  []string{"MARATHON_URL=http://m:8080", "HAPROXY=true"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml"},
			rel:  []string{"--services=RUN/services.yaml", drain},
		},
		{
			name: "SHUTDOWN_DELAY set: reload's timed shutdown, no drain",
			env:  []string{"SHUTDOWN_DELAY=5s"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml"},
			rel:  []string{"--services=RUN/services.yaml"},
		},
		{
			name: "optparse abbreviations; stray positional arguments ignored",
			args: []string{"stray-first", "--expose", "--group=3", "--refresh=30", "--vhost-d=a.example", "--regis", "etcd://e:4001/s",
				"--st=:7000", "--sto", "3s", "--hard=0", "--verb", "stray", "--", "-x", "--haproxy"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml", "--expose-host", "--group-size=3", "--refresh-interval=30",
				"--registrator=etcd://e:4001/s", "--verbose"},
			rel: []string{"--services=RUN/services.yaml", "--vhost-domain=a.example", "--status-endpoint=:7000", "--stop-timeout=3s",
				"--hard-stop-after=0", "--verbose", drain},
			out: []string{"ignoring positional argument 'stray-first'", "ignoring positional argument 'stray'",
				"ignoring positional argument '-x'", "ignoring positional argument '--haproxy'"},
		},
		{
			name: "sync's status endpoint on when asked for; services file and run dir given",
			env:  []string{"SYNC_STATUS_ENDPOINT=127.0.0.1:9999"},
			args: []string{"--services-file", "RUN/x/s.yaml", "--status-endpoint=:7000", "--sync-status-endpoint=:7001",
				"--stop-timeout=3s", "--shutdown-delay", "1s", "--template-dir=RUN/it's here"},
			sync: []string{"--output=RUN/x/s.yaml", "--status-endpoint=:7001"},
			rel: []string{"--services=RUN/x/s.yaml", "--status-endpoint=:7000", "--stop-timeout=3s",
				"--shutdown-delay=1s", "--template-dir=RUN/it's here"},
		},
		{
			name: "values that look like options stay values",
			args: []string{"-m", "-weird", "--vhost-domain", "--haproxy"},
			sync: []string{"--status-endpoint=", "--output=RUN/services.yaml", "--marathon=-weird"},
			rel:  []string{"--services=RUN/services.yaml", "--vhost-domain=--haproxy", drain},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := stubs(t)
			run := t.TempDir()
			subst := func(l []string) []string {
				out := make([]string, len(l))
				for i, s := range l {
					out[i] = strings.ReplaceAll(s, "RUN", run)
				}
				return out
			}
			env := cleanEnv(append(tc.env, "PATH="+dir+":"+os.Getenv("PATH"), "STUB_DIR="+dir, "RUN_DIR="+run, "TMPDIR="+t.TempDir())...)
			s := startEntrypoint(t, env, subst(tc.args)...)
			var syncArgs, relArgs []string
			eventually(t, "both binaries started", func() bool {
				_, a, ok1 := recorded(t, dir, "proxymatic-sync")
				_, b, ok2 := recorded(t, dir, "proxymatic-reload")
				syncArgs, relArgs = a, b
				return ok1 && ok2
			})
			if want := subst(tc.sync); !slices.Equal(syncArgs, want) {
				t.Errorf("proxymatic-sync got\n %q\nwant\n %q", syncArgs, want)
			}
			if want := subst(tc.rel); !slices.Equal(relArgs, want) {
				t.Errorf("proxymatic-reload got\n %q\nwant\n %q", relArgs, want)
			}
			for _, o := range tc.out {
				if !strings.Contains(s.out.String(), o) {
					t.Errorf("output lacks %q:\n%s", o, s.out.String())
				}
			}
			s.cmd.Process.Signal(syscall.SIGTERM)
			if rc := s.exit(t); rc != 0 {
				t.Errorf("exit status after SIGTERM with both children exiting 0 = %d, want 0", rc)
			}
		})
	}
}

func TestEntrypointUsageErrors(t *testing.T) {
	dir := stubs(t)
	env := cleanEnv("PATH="+dir+":"+os.Getenv("PATH"), "STUB_DIR="+dir, "RUN_DIR="+t.TempDir())
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--no-such-option"}, "no such option: '--no-such-option'"},
		{[]string{"-m"}, "-m needs a value"},
		{[]string{"--once"}, "--once is not a combined-mode option"},
		{[]string{"--dry-run"}, "--dry-run is not"},
		{[]string{"--dry"}, "no such option"},
		{[]string{"-x"}, "no such option"},
		// Ambiguous abbreviations name the candidates, as optparse did.
		{[]string{"--mar=http://m"}, "ambiguous option: --mar (--marathon, --marathon-callback?)"},
		{[]string{"--h"}, "ambiguous option: --h (--haproxy, --help?)"},
		{[]string{"-m", "http://m", "--p"}, "ambiguous option: --p (--pen-clients, --pen-servers, --proxy-protocol?)"},
		{[]string{"--vhost", "x"}, "ambiguous option: --vhost (--vhost-domain, --vhost-port?)"},
		{[]string{"--r", "x"}, "ambiguous option: --r (--refresh-interval, --registrator?)"},
	} {
		args := tc.args
		out, err := runEntrypoint(env, args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, tc.says) {
			t.Errorf("%q: %v, want exit status 2 saying %q\n%s", args, err, tc.says, out)
		}
		if _, _, ok := recorded(t, dir, "proxymatic-sync"); ok {
			t.Fatalf("%q started proxymatic-sync", args)
		}
	}
	out, err := runEntrypoint(env, "--help")
	if err != nil || !strings.Contains(out, "--vhost-domain") || !strings.Contains(out, "MARATHON_URL") {
		t.Errorf("--help: %v\n%s", err, out)
	}
}

func runEntrypoint(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{entrypoint}, args...)...)
	cmd.Env = env
	// A run that wrongly started the stand-ins must not hang the test on
	// their copy of the output pipe.
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEntrypointExecsOneBinary(t *testing.T) {
	for _, name := range []string{"proxymatic-sync", "proxymatic-reload"} {
		t.Run(name, func(t *testing.T) {
			dir := stubs(t)
			env := cleanEnv("PATH="+dir+":"+os.Getenv("PATH"), "STUB_DIR="+dir, "MARATHON_URL=http://m")
			s := startEntrypoint(t, env, name, "--once", "-m", "x y")
			var pid int
			var args []string
			eventually(t, name+" started", func() bool {
				var ok bool
				pid, args, ok = recorded(t, dir, name)
				return ok
			})
			if pid != s.cmd.Process.Pid {
				t.Errorf("%s runs as pid %d, the entrypoint is %d: want exec, not a child", name, pid, s.cmd.Process.Pid)
			}
			if !slices.Equal(args, []string{"--once", "-m", "x y"}) {
				t.Errorf("args = %q, want them untouched", args)
			}
			s.cmd.Process.Signal(syscall.SIGTERM)
			s.exit(t)
			for _, other := range []string{"proxymatic-sync", "proxymatic-reload"} {
				if _, _, ok := recorded(t, dir, other); ok && other != name {
					t.Errorf("%s started too", other)
				}
			}
		})
	}
}

// --- the real thing: both binaries, HAProxy, nginx, a fake Marathon ---

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds both commands once into a directory for PATH.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "proxymatic-deploy-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", "../cmd/proxymatic-sync", "../cmd/proxymatic-reload").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

// backend is an HTTP server that names itself; it returns its port.
func backend(t *testing.T, name string) int {
	t.Helper()
	return int(testbin.Backend(t, "I am "+name+"\n").Port())
}

// get returns the body of GET http://127.0.0.1:port/ with Host host, "" on error.
func get(port int, host string) string {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if host != "" {
		req.Host = host
	}
	// A new connection each time: HAProxy in TCP mode balances connections.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// reaches reports whether some of a few requests reach backend name.
func reaches(port int, host, name string) bool {
	for range 6 {
		if strings.Contains(get(port, host), "I am "+name) {
			return true
		}
	}
	return false
}

// stack is the combined entrypoint running both binaries against a fake
// Marathon serving one app with one task.
type stack struct {
	*started
	marathon  *marathontest.Server
	app       *marathontest.App
	svcPort   int
	vhostPort int
	status    int
}

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, "100ms")
}

// startStackWith sets SHUTDOWN_DELAY to shutdownDelay, or leaves it unset
// when it is "" (the combined image's default: serve until killed).
func startStackWith(t *testing.T, shutdownDelay string) *stack {
	t.Helper()
	return startStackErr(t, shutdownDelay, nil)
}

// startStackErr is startStackWith with the entrypoint's stderr on stderr
// when not nil.
func startStackErr(t *testing.T, shutdownDelay string, stderr *os.File) *stack {
	t.Helper()
	for _, b := range []string{"haproxy", "nginx"} {
		testbin.Require(t, b)
	}
	bin := binaries(t)
	st := &stack{marathon: marathontest.New(t), svcPort: freePort(t), vhostPort: freePort(t), status: freePort(t)}
	st.app = marathontest.BridgeApp("/web", st.svcPort).WithTask("127.0.0.1", backend(t, "backend-1"))
	st.marathon.SetApps(st.app)

	// nginx's workers drop to nobody when the test runs as root: the run
	// directory must be reachable by them.
	run, err := os.MkdirTemp("", "pm-ep-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(run, 0o755)
	t.Cleanup(func() { os.RemoveAll(run) })

	env := cleanEnv(
		"PATH="+bin+":"+os.Getenv("PATH"),
		"MARATHON_URL="+st.marathon.URL,
		"HAPROXY=true",
		"RUN_DIR="+run,
		"TMPDIR="+t.TempDir(),
		"STATUS_ENDPOINT="+fmt.Sprintf("127.0.0.1:%d", st.status),
		"REFRESH_INTERVAL=1",
		// Within the open-file limit of small CI machines; HAProxy sizes
		// its descriptors from it.
		"MAX_CONNECTIONS=1000",
	)
	if shutdownDelay != "" {
		env = append(env, "SHUTDOWN_DELAY="+shutdownDelay)
	}
	// Options both ways: variables above, original command-line options here.
	st.started = startEntrypointErr(t, env, stderr, "--vhost-domain", "test.local", fmt.Sprintf("--vhost-port=%d", st.vhostPort))
	eventually(t, "backend-1 through HAProxy", func() bool { return reaches(st.svcPort, "", "backend-1") })
	eventually(t, "backend-1 through nginx", func() bool { return reaches(st.vhostPort, "web.test.local", "backend-1") })
	return st
}

// descendants lists the processes below pid, with their names.
func descendants(t *testing.T, pid int) map[int]string {
	t.Helper()
	children := map[int][]int{}
	names := map[int]string{}
	for _, p := range testbin.Procs() {
		children[p.PPID] = append(children[p.PPID], p.PID)
		names[p.PID] = p.Name
	}
	out := map[int]string{}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out[c] = names[c]
			queue = append(queue, c)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie has stopped running).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func hasName(procs map[int]string, prefix string) (int, bool) {
	for p, n := range procs {
		if strings.HasPrefix(n, prefix) {
			return p, true
		}
	}
	return 0, false
}

// requireAllGone fails for each recorded process still running.
func requireAllGone(t *testing.T, procs map[int]string) {
	t.Helper()
	eventually(t, "every child process gone", func() bool {
		for p := range procs {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

func TestEntrypointCombinedServesFollowsAndStops(t *testing.T) {
	st := startStack(t)

	// HAProxy may serve a moment before reload has applied the whole file
	// and reports OK: the image's health check passes once it does.
	eventually(t, "healthcheck.sh passing on reload's /status", func() bool {
		return exec.Command("bash", "healthcheck.sh", fmt.Sprintf("127.0.0.1:%d", st.status)).Run() == nil
	})

	// Scale up: a second task, announced by an event as Marathon does.
	st.app.WithTask("127.0.0.1", backend(t, "backend-2"))
	st.marathon.SetApps(st.app)
	st.marathon.PushEvent("status_update_event")
	eventually(t, "backend-2 through HAProxy", func() bool { return reaches(st.svcPort, "", "backend-2") })
	eventually(t, "backend-2 through nginx", func() bool { return reaches(st.vhostPort, "web.test.local", "backend-2") })
	if !reaches(st.svcPort, "", "backend-1") {
		t.Error("backend-1 no longer served after the scale-up")
	}

	procs := descendants(t, st.cmd.Process.Pid)
	for _, want := range []string{"proxymatic-sync", "proxymatic-relo", "haproxy", "nginx"} {
		if _, ok := hasName(procs, want); !ok {
			t.Errorf("no %s below the entrypoint: %v", want, procs)
		}
	}
	// SIGHUP is passed on: sync reads every source again, reload applies
	// the file again; nothing stops, nothing restarts: the binaries and
	// the proxies' masters are the same processes after it (workers and the
	// entrypoint's ticks come and go).
	masters := map[int]string{}
	parent := map[int]int{}
	for _, p := range testbin.Procs() {
		parent[p.PID] = p.PPID
	}
	workers := map[int]bool{} // has a child of its own name
	for pid, name := range procs {
		if pp := parent[pid]; procs[pp] == name {
			workers[pp] = true
		}
	}
	for pid, name := range procs {
		if name == procs[parent[pid]] {
			continue
		}
		// A proxy's master has workers; a lone haproxy or nginx is a
		// config check (haproxy -c, nginx -t) that comes and goes.
		if (name == "haproxy" || name == "nginx") && !workers[pid] {
			continue
		}
		masters[pid] = name
	}
	st.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "SIGHUP handled by both binaries", func() bool {
		out := st.out.String()
		return strings.Contains(out, "refresh requested (SIGHUP)") && strings.Contains(out, "SIGHUP: reading the services file")
	})
	after := descendants(t, st.cmd.Process.Pid)
	for _, name := range []string{"proxymatic-sync", "proxymatic-relo", "haproxy", "nginx"} {
		found := false
		for pid, n := range masters {
			if n == name {
				found = true
				if after[pid] != name {
					t.Errorf("%s (pid %d) is gone after SIGHUP: %v", name, pid, after)
				}
			}
		}
		if !found {
			t.Errorf("no %s below the entrypoint before SIGHUP: %v", name, procs)
		}
	}
	if !reaches(st.svcPort, "", "backend-1") || !reaches(st.vhostPort, "web.test.local", "backend-2") {
		t.Error("not serving after SIGHUP")
	}

	// Sync's status endpoint is off in combined mode: one port, as before.
	if strings.Contains(st.out.String(), "9091") {
		t.Errorf("sync's status endpoint is on:\n%s", st.out.String())
	}

	st.cmd.Process.Signal(syscall.SIGTERM)
	if rc := st.exit(t); rc != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", rc)
	}
	requireAllGone(t, procs)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", st.svcPort), time.Second); err == nil {
		c.Close()
		t.Error("the service port still accepts connections after the stop")
	}
}

// statusOf is reload's /status: code and body.
func statusOf(port int) (int, string) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEntrypointSIGTERMKeepsServing: in the combined image SIGTERM flips
// /status to TERMINATING and the proxies keep serving, and keep following
// Marathon, until the container is killed at the end of its stop timeout
// (the original's behaviour, which its drain procedure relies on). Outside a
// container a second SIGTERM stops everything, gracefully.
func TestEntrypointSIGTERMKeepsServing(t *testing.T) {
	st := startStackWith(t, "")
	eventually(t, "/status OK", func() bool { code, _ := statusOf(st.status); return code == http.StatusOK })
	procs := descendants(t, st.cmd.Process.Pid)

	st.cmd.Process.Signal(syscall.SIGTERM)
	eventually(t, "/status TERMINATING", func() bool {
		code, body := statusOf(st.status)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "TERMINATING")
	})
	// Past what reload alone would wait (2s shutdown delay) before it
	// stops the proxies: they still serve. A fixed wait, as the claim is
	// about time passing; it bounds nothing.
	time.Sleep(3 * time.Second)
	if !reaches(st.svcPort, "", "backend-1") || !reaches(st.vhostPort, "web.test.local", "backend-1") {
		t.Fatalf("the proxies stopped serving after SIGTERM:\n%s", st.out.String())
	}
	// Discovery goes on: a scale-up still reaches the proxies.
	st.app.WithTask("127.0.0.1", backend(t, "backend-2"))
	st.marathon.SetApps(st.app)
	st.marathon.PushEvent("status_update_event")
	eventually(t, "backend-2 through HAProxy while terminating", func() bool { return reaches(st.svcPort, "", "backend-2") })
	select {
	case <-st.done:
		t.Fatalf("the entrypoint exited after one SIGTERM:\n%s", st.out.String())
	default:
	}

	st.cmd.Process.Signal(syscall.SIGTERM)
	if rc := st.exit(t); rc != 0 {
		t.Errorf("exit status after the second SIGTERM = %d, want 0", rc)
	}
	requireAllGone(t, procs)
	if !strings.Contains(st.out.String(), "keep serving until the container is killed") {
		t.Errorf("the drain is not announced:\n%s", st.out.String())
	}
}

// TestReloadAloneSecondSignal: proxymatic-reload run on its own (the
// two-container set-up) keeps its timed --shutdown-delay; a second SIGTERM
// during a long delay ends it at once.
func TestReloadAloneSecondSignal(t *testing.T) {
	bin := binaries(t)
	// The run dir must be reachable by nobody (pen, nginx's workers): not
	// under TempDir's 0700 parent.
	dir, err := os.MkdirTemp("", "pm-ep-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	svcFile := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(svcFile, []byte("version: 1\nservices: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	env := cleanEnv("PATH="+bin+":"+os.Getenv("PATH"), "SHUTDOWN_DELAY=1h", "RUN_DIR="+filepath.Join(dir, "run"),
		fmt.Sprintf("STATUS_ENDPOINT=127.0.0.1:%d", port))
	s := startEntrypoint(t, env, "proxymatic-reload", "--services", svcFile)
	eventually(t, "/status OK", func() bool { code, _ := statusOf(port); return code == http.StatusOK })
	s.cmd.Process.Signal(syscall.SIGTERM)
	eventually(t, "/status TERMINATING", func() bool { code, _ := statusOf(port); return code == http.StatusServiceUnavailable })
	s.cmd.Process.Signal(syscall.SIGTERM)
	if rc := s.exit(t); rc != 0 {
		t.Errorf("exit status = %d, want 0\n%s", rc, s.out.String())
	}
	if !strings.Contains(s.out.String(), "second signal") {
		t.Errorf("the second signal is not what ended the delay:\n%s", s.out.String())
	}
}

func TestEntrypointStopsTheOtherWhenOneDies(t *testing.T) {
	for _, tc := range []struct {
		kill, survivor string
		sig            syscall.Signal
	}{
		{"proxymatic-relo", "proxymatic-sync", syscall.SIGKILL},
		{"proxymatic-sync", "proxymatic-relo", syscall.SIGTERM},
	} {
		t.Run(tc.kill, func(t *testing.T) {
			st := startStack(t)
			procs := descendants(t, st.cmd.Process.Pid)
			victim, ok := hasName(procs, tc.kill)
			if !ok {
				t.Fatalf("no %s below the entrypoint: %v", tc.kill, procs)
			}
			if _, ok := hasName(procs, tc.survivor); !ok {
				t.Fatalf("no %s below the entrypoint: %v", tc.survivor, procs)
			}
			syscall.Kill(victim, tc.sig)
			if rc := st.exit(t); rc == 0 {
				t.Error("exit status 0 after a child died, want non-zero")
			}
			requireAllGone(t, procs)
			if !strings.Contains(st.out.String(), "stopping the other") {
				t.Errorf("no word of the child's exit in the output:\n%s", st.out.String())
			}
		})
	}
}

func TestHealthcheckFailsOnUnready(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			t.Errorf("healthcheck asked for %s", r.URL.Path)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("INITIALIZING\n"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	if err := exec.Command("bash", "healthcheck.sh", addr).Run(); err == nil {
		t.Error("healthcheck passed on 503")
	}
	_, port, _ := net.SplitHostPort(addr)
	// The mode names read the binaries' variables; a wildcard host is
	// reached on loopback.
	cmd := exec.Command("bash", "healthcheck.sh", "sync")
	cmd.Env = cleanEnv("SYNC_STATUS_ENDPOINT=0.0.0.0:" + port)
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Run(); err == nil || !strings.Contains(out.String(), "503") {
		t.Errorf("healthcheck sync on a 503 endpoint: %v, %q", err, out.String())
	}
	if err := exec.Command("bash", "healthcheck.sh", fmt.Sprintf("127.0.0.1:%d", freePort(t))).Run(); err == nil {
		t.Error("healthcheck passed with nothing listening")
	}
	// A variable set to "" turned the endpoint off: the check says so
	// instead of asking the default port, where another process may answer.
	for mode, v := range map[string]string{"reload": "STATUS_ENDPOINT", "sync": "SYNC_STATUS_ENDPOINT"} {
		cmd := exec.Command("bash", "healthcheck.sh", mode)
		cmd.Env = cleanEnv(v + "=")
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Run(); err == nil || !strings.Contains(out.String(), v+` is set to "": the status endpoint is off`) {
			t.Errorf("healthcheck %s with %s set to \"\": %v, %q", mode, v, err, out.String())
		}
	}
}

// The reader of the container's log pipe goes away: the entrypoint's next
// log line ("received SIGHUP, passing it on") used to kill it with SIGPIPE.
// Under tini that ends the container, proxies and all; here it left the
// binaries orphaned, never stopped by the SIGTERM that follows. Now a lost
// log reader costs log lines only: SIGHUP is passed on, traffic goes on,
// and SIGTERM still stops everything with status 0.
func TestEntrypointSurvivesLostLogReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	st := startStackErr(t, "100ms", w)
	w.Close()
	procs := descendants(t, st.cmd.Process.Pid)
	r.Close()

	st.cmd.Process.Signal(syscall.SIGHUP)
	if !reaches(st.svcPort, "", "backend-1") || !reaches(st.vhostPort, "web.test.local", "backend-1") {
		t.Error("not serving after SIGHUP with the log reader gone")
	}
	if err := syscall.Kill(st.cmd.Process.Pid, 0); err != nil {
		t.Fatalf("the entrypoint is gone after SIGHUP with its log reader gone (%v): its binaries are orphaned", err)
	}
	st.cmd.Process.Signal(syscall.SIGTERM)
	if rc := st.exit(t); rc != 0 {
		t.Errorf("exit status after SIGTERM = %d (%v), want 0: the entrypoint did not outlive its log reader", rc, st.err)
	}
	requireAllGone(t, procs)
}
