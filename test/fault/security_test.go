package fault

// The security sweep (issue 18): what a hostile neighbour on the host, a
// hostile Marathon replica or a stray signal could do to the real binaries,
// run as root the way the combined image runs them. docs/reliability.md
// ("Security sweep") lists each case.

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// rootRunDir is a fresh run dir's parent: root-owned, 0755, reachable by
// nobody (t.TempDir is 0700).
func rootRunDir(t *testing.T) string {
	t.Helper()
	testbin.RequireRoot(t, "this test")
	parent := t.TempDir()
	openDir(t, parent)
	return filepath.Join(parent, "run")
}

type fileState struct {
	data string
	mode os.FileMode
	uid  uint32
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	return fileState{string(data), st.Mode(), st.Sys().(*syscall.Stat_t).Uid}
}

// Links planted in the run dir at every name the agent writes: it neither
// writes, chmods nor chowns through any of them, and serves all the same.
func TestRunDirPlantedLinks(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	testbin.Require(t, "pen")
	runDir := rootRunDir(t)
	secrets := t.TempDir() // root-only targets
	if err := os.MkdirAll(filepath.Join(runDir, "pen"), 0o755); err != nil {
		t.Fatal(err)
	}
	web := newBackend(t, "web-1")
	port, udpPort := freePort(t), testbin.FreePort(t, "udp")
	udpKey := fmt.Sprintf("%d-udp", udpPort)
	targets := map[string]string{}
	for _, name := range []string{".haproxy.cfg.new", ".nginx.conf.new", "haproxy.pid.tmp", "pen/" + udpKey + ".pid.tmp", "pen/." + udpKey + ".cfg.new", "haproxy.state.new"} {
		target := filepath.Join(secrets, strings.NewReplacer("/", "_", ".", "_").Replace(name))
		if err := os.WriteFile(target, []byte("root only: "+name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(runDir, name)); err != nil {
			t.Fatal(err)
		}
		targets[name] = target
	}
	// pen/ctl: the agent chowns it to nobody.
	ctlTarget := filepath.Join(secrets, "rootonly-dir")
	if err := os.Mkdir(ctlTarget, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ctlTarget, filepath.Join(runDir, "pen", "ctl")); err != nil {
		t.Fatal(err)
	}
	before := map[string]fileState{}
	for name, target := range targets {
		before[name] = stateOf(t, target)
	}
	dirBefore := stateOf(t, ctlTarget)

	dns := services.Service{Name: "dns", Port: udpPort, Protocol: services.UDP, Mode: services.ModeTCP, Servers: []services.Server{web.srv}}
	a := startAgent(t, agentOpts{haproxy: true, nginx: true, runDir: runDir}, svc("web", port, web), dns)
	answers(t, 20*time.Second, "web via HAProxy", func() (string, error) { return tcpGet(port) }, "web-1")
	answers(t, 10*time.Second, "web via nginx", func() (string, error) { return a.vhostGet("web.test.example") }, "web-1")
	penCfg := filepath.Join(runDir, "pen", udpKey+".cfg")
	eventually(t, 20*time.Second, "pen started for the UDP service", func() bool {
		st, err := os.Lstat(filepath.Join(runDir, "pen", udpKey+".pid"))
		return err == nil && st.Mode().IsRegular()
	})

	for name, target := range targets {
		if got := stateOf(t, target); got != before[name] {
			t.Errorf("the target of a link planted at %s changed: %+v, was %+v", name, got, before[name])
		}
	}
	if got := stateOf(t, ctlTarget); got != dirBefore {
		t.Errorf("the directory a pen/ctl link pointed at changed: %+v, was %+v", got, dirBefore)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	ctl := stateOf(t, filepath.Join(runDir, "pen", "ctl"))
	if !ctl.mode.IsDir() || strconv.Itoa(int(ctl.uid)) != nobody.Uid || ctl.mode.Perm() != 0o700 {
		t.Errorf("pen/ctl is %v owned by %d; want a real 0700 directory of nobody", ctl.mode, ctl.uid)
	}

	// Rendered files: 0640 or stricter; pen's readable by its group (pen
	// runs as nobody and re-reads it on every reload).
	for _, f := range []string{"haproxy.cfg", "nginx.conf", "pen/" + udpKey + ".cfg", "pen-slots.json", "nginx-vhosts.json"} {
		p := filepath.Join(runDir, f)
		st, err := os.Stat(p)
		if err != nil {
			if f == "pen-slots.json" || f == "nginx-vhosts.json" {
				continue // named by their packages; checked when present
			}
			t.Fatal(err)
		}
		if st.Mode().Perm()&^0o640 != 0 {
			t.Errorf("%s: mode %v, want 0640 or stricter", f, st.Mode().Perm())
		}
	}
	st, _ := os.Stat(penCfg)
	if gid := st.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != nobody.Gid {
		t.Errorf("pen's config group %d, want nobody's group %s", gid, nobody.Gid)
	}
	a.alive(t)
}

// As root, a run dir another user can write is refused at start-up with a
// message naming it, its owner and mode and the fix — and its mode is left
// as it was (RUN_DIR=/tmp used to become 0755). So is one nobody cannot
// reach (pen used to fail forever with "permission denied").
func TestRunDirRefused(t *testing.T) {
	testbin.Require(t, "pen")
	cases := []struct {
		name  string
		setup func(t *testing.T, runDir string) string // returns the run dir to pass
		want  []string
	}{
		{"world-writable and sticky like tmp", func(t *testing.T, d string) string {
			os.Mkdir(d, 0o755)
			os.Chmod(d, os.ModeSticky|0o777)
			return d
		}, []string{"writable by every user", "mode 01777", "owner root", "chmod go-w"}},
		{"group-writable", func(t *testing.T, d string) string {
			os.Mkdir(d, 0o755)
			os.Chmod(d, 0o775)
			return d
		}, []string{"writable by its group", "mode 0775"}},
		{"owned by nobody", func(t *testing.T, d string) string {
			os.Mkdir(d, 0o755)
			os.Chown(d, 65534, 65534)
			return d
		}, []string{"owned by a user other than root", "uid 65534", "chown root"}},
		{"under a directory anyone can write", func(t *testing.T, d string) string {
			os.Mkdir(d, 0o755)
			os.Chmod(d, 0o777)
			return filepath.Join(d, "run")
		}, []string{"is under", "writable by every user"}},
		{"via a link", func(t *testing.T, d string) string {
			// A root-only run dir, reached through nobody's link in a
			// sticky directory (RUN_DIR=/tmp/proxymatic, the link planted
			// first): nobody could point it anywhere, any time.
			os.Mkdir(d, 0o711)
			os.Chmod(d, 0o711)
			sticky := d + "-s"
			os.Mkdir(sticky, 0o755)
			os.Chmod(sticky, os.ModeSticky|0o777)
			link := filepath.Join(sticky, "run")
			os.Symlink(d, link)
			os.Lchown(link, 65534, 65534)
			return link
		}, []string{"goes through the link", "owned by nobody", "Fix"}},
		{"unreachable by nobody", func(t *testing.T, d string) string {
			os.Mkdir(d, 0o700)
			os.Chmod(d, 0o700)
			return filepath.Join(d, "run")
		}, []string{"user nobody", "cannot reach it", "mode 0700", "chmod o+x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := rootRunDir(t)
			runDir := c.setup(t, d)
			modeBefore := stateOf(t, d).mode
			a := agentArgs(t, agentOpts{runDir: runDir})
			c.setup(t, d) // again: agentArgs opens the run dir's parent
			a.proc = start(t, binReload, a.args)
			if err := a.waitExit(t, 30*time.Second); err == nil {
				t.Fatal("the agent started")
			}
			log := a.log.String()
			for _, want := range append(c.want, runDir) {
				if !strings.Contains(log, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, log)
				}
			}
			if got := stateOf(t, d).mode; got != modeBefore {
				t.Errorf("the directory's mode changed from %v to %v", modeBefore, got)
			}
		})
	}

	// An existing, private enough run dir keeps its mode.
	t.Run("existing 0711 kept", func(t *testing.T) {
		runDir := rootRunDir(t)
		os.Mkdir(runDir, 0o711)
		os.Chmod(runDir, 0o711)
		web := newBackend(t, "web-1")
		port := freePort(t)
		startAgent(t, agentOpts{runDir: runDir}, svc("web", port, web))
		answers(t, 20*time.Second, "web via pen", func() (string, error) { return tcpGet(port) }, "web-1")
		if m := stateOf(t, runDir).mode.Perm(); m != 0o711 {
			t.Errorf("run dir mode %v, want 0711 kept", m)
		}
	})
}

// A pid file naming a process that is not the proxy it recorded (a reused
// pid, another run dir's HAProxy, an old file without a start time) is
// left alone and logged; only the recorded proxy is stopped.
func TestStalePidFileNotOurs(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	runDir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An unrelated HAProxy on the host, with a config of its own.
	otherDir := t.TempDir()
	otherPort := freePort(t)
	other := newBackend(t, "other")
	cfg := fmt.Sprintf("defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nlisten other\n  bind 127.0.0.1:%d\n  server s %s\n", otherPort, other.srv.Address())
	otherCfg := filepath.Join(otherDir, "haproxy.cfg")
	if err := os.WriteFile(otherCfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	unrelated := exec.Command(bin, "-W", "-f", otherCfg)
	unrelated.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := unrelated.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = unrelated.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-unrelated.Process.Pid, syscall.SIGKILL) })
	answers(t, 10*time.Second, "the unrelated HAProxy", func() (string, error) { return tcpGet(otherPort) }, "other")
	// Its pid, with its true start time, where our HAProxy's would be: as
	// if our HAProxy had stopped and the pid been reused by this one.
	if err := supervise.WritePidFile(filepath.Join(runDir, "haproxy.pid"), unrelated.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// And an old-format file (pid only) for nginx's.
	if err := os.WriteFile(filepath.Join(runDir, "nginx-agent.pid"), []byte(strconv.Itoa(unrelated.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := newBackend(t, "web-1")
	port := freePort(t)
	a := startAgent(t, agentOpts{haproxy: true, nginx: true, runDir: runDir}, svc("web", port, web))
	answers(t, 20*time.Second, "web via our HAProxy", func() (string, error) { return tcpGet(port) }, "web-1")
	select {
	case <-exited:
		t.Fatal("the agent killed an unrelated HAProxy whose pid was in its pid file")
	default:
	}
	answers(t, 5*time.Second, "the unrelated HAProxy still", func() (string, error) { return tcpGet(otherPort) }, "other")
	for _, want := range []string{"stale pid file names another process; left alone", "does not name " + filepath.Join(runDir, "haproxy.cfg"), "without a pid and a start time"} {
		if !strings.Contains(a.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// pipedProc starts bin with its stdout and stderr on a pipe this test
// reads; cut closes the read end, as a log reader that went away.
func pipedProc(t *testing.T, bin string, args []string, env ...string) (p *proc, cut func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/tmp", "LOG_FORMAT=text"}, env...)
	cmd.Stdout, cmd.Stderr = w, w
	p = &proc{t: t, name: filepath.Base(bin), cmd: cmd, log: &logBuf{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	copied := make(chan struct{})
	go func() { io.Copy(p.log, r); close(copied) }()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output (last 6 KiB):\n%s", p.name, tail(p.log.String(), 6<<10))
		}
	})
	return p, func() {
		r.Close()
		<-copied
	}
}

// SIGHUP refreshes sync and re-applies reload's file, stopping neither;
// a log reader that went away (SIGPIPE on stderr) costs log lines only.
func TestSignals(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	t.Run("sync", func(t *testing.T) {
		m := marathontest.New(t)
		m.SetApps(webApp(10001, "10.0.0.1"))
		out := filepath.Join(t.TempDir(), "services.yaml")
		// No poll for an hour, no events: only SIGHUP can bring a change in.
		p, cut := pipedProc(t, binSync, []string{"--marathon", m.URL, "--output", out, "--refresh-interval", "3600", "--status-endpoint", ""})
		s := &syncd{proc: p, out: out}
		s.waitFile(t, 15*time.Second, "10.0.0.1")
		eventually(t, 10*time.Second, "event stream open", func() bool { return m.Subscribers() > 0 })
		m.StallEvents(true)
		m.SetApps(webApp(10001, "10.0.0.2"))
		p.cmd.Process.Signal(syscall.SIGHUP)
		s.waitFile(t, 15*time.Second, "10.0.0.2")
		p.waitLog(t, "refresh requested (SIGHUP)", 5*time.Second)

		// The log reader goes away; the next log line must not kill sync.
		cut()
		p.cmd.Process.Signal(syscall.SIGHUP) // logs a line
		m.SetApps(webApp(10001, "10.0.0.3"))
		p.cmd.Process.Signal(syscall.SIGHUP)
		s.waitFile(t, 15*time.Second, "10.0.0.3")
		p.alive(t)
	})
	t.Run("reload", func(t *testing.T) {
		web1, web2 := newBackend(t, "web-1"), newBackend(t, "web-2")
		port := freePort(t)
		a := agentArgs(t, agentOpts{haproxy: true, nginx: true})
		a.write(t, svc("web", port, web1))
		p, cut := pipedProc(t, binReload, a.args)
		a.proc = p
		answers(t, 20*time.Second, "web via HAProxy", func() (string, error) { return tcpGet(port) }, "web-1")
		answers(t, 10*time.Second, "web via nginx", func() (string, error) { return a.vhostGet("web.test.example") }, "web-1")
		eventually(t, 10*time.Second, "status OK", func() bool { c, _ := get(a.status + "/status"); return c == http.StatusOK })
		children := childrenOf(p.cmd.Process.Pid)

		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, "SIGHUP: reading the services file and applying it again", 5*time.Second)
		p.waitLog(t, "services file applied", 10*time.Second)
		stillAnswers(t, 300*time.Millisecond, "web after SIGHUP", func() (string, error) { return tcpGet(port) }, "web-1")
		if now := childrenOf(p.cmd.Process.Pid); fmt.Sprint(now) != fmt.Sprint(children) {
			t.Errorf("proxies changed after SIGHUP: %v, were %v", now, children)
		}

		cut()
		p.cmd.Process.Signal(syscall.SIGHUP) // logs a line to nobody
		a.write(t, svc("web", port, web2))   // and so does applying it
		answers(t, 20*time.Second, "the new backend via HAProxy", func() (string, error) { return tcpGet(port) }, "web-2")
		answers(t, 10*time.Second, "the new backend via nginx", func() (string, error) { return a.vhostGet("web.test.example") }, "web-2")
		if c, _ := get(a.status + "/status"); c != http.StatusOK {
			t.Errorf("/status %d after the log reader went away", c)
		}
		p.alive(t)
		if err := p.stop(); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	})
}

// A first replica that answers 200 and then an endless body, one byte every
// 2 s, headers then silence, a gzip bomb, or a 403: sync moves on to the
// healthy second replica within the request deadline and publishes its
// state; the hostile one's never is.
func TestHostileMarathonReplica(t *testing.T) {
	trickle := func(every time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"apps":[`))
			w.(http.Flusher).Flush()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(every):
				}
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}
	cases := map[string]http.HandlerFunc{
		"200 then endless": trickle(time.Millisecond),
		"2 s per byte":     trickle(2 * time.Second),
		"headers then silence": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
		"gzip bomb": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write([]byte(`{"apps":[{"id":"/x","env":{"k":"`))
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range 512 {
				if _, err := zw.Write(chunk); err != nil {
					return
				}
			}
			zw.Close()
		},
		"403": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "forbidden", http.StatusForbidden) },
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			bad := httptest.NewServer(h)
			t.Cleanup(bad.Close)
			good := marathontest.New(t)
			good.SetApps(webApp(10001, "10.0.0.1"))
			start := time.Now()
			out, logs := runOut(t, binSync, "--once", "--dry-run", "--marathon", bad.URL+","+good.URL,
				"--marathon-timeout", "2s", "--marathon-max-body", "16MiB")
			if !bytes.Contains(out, []byte("10.0.0.1")) {
				t.Fatalf("no state from the healthy replica:\n%s\n%s", out, logs)
			}
			if !strings.Contains(logs, "replica failed, trying the next") {
				t.Errorf("no failover logged:\n%s", logs)
			}
			t.Logf("%s: failed over and published in %v", name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// A --marathon value without a scheme never shows its password.
func TestSchemelessMarathonURLRedacted(t *testing.T) {
	for _, args := range [][]string{
		{"--once", "--dry-run", "--marathon", "alice:s3cr3tpw@host:8080"},
		{"--once", "--dry-run", "--marathon", "http://alice:s3cr3tpw/x@host:8080"},
	} {
		cmd := exec.Command(binSync, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want 2\n%s", args, err, out)
		}
		if bytes.Contains(out, []byte("s3cr3tpw")) {
			t.Errorf("%v: the password is printed:\n%s", args, out)
		}
	}
}

// A named pipe at sync's output path is refused, not written into: sync
// keeps running, logs why, and stops on SIGTERM (it used to block in open
// for good, deaf to SIGTERM).
func TestSyncOutputIsAFIFO(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(webApp(10001, "10.0.0.1"))
	out := filepath.Join(t.TempDir(), "services.yaml")
	if err := syscall.Mkfifo(out, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSync(t, out, "--marathon", m.URL)
	s.waitLog(t, "not a regular file", 15*time.Second)
	s.alive(t)
	if st, err := os.Lstat(out); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the FIFO was replaced: %v %v", st.Mode(), err)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.waitExit(t, 10*time.Second)
}

// The vhost a service holds stays with it when a newcomer claims the same
// name (/shop/web and /web.shop are both web.shop), even on a lower port,
// and across a restart of the agent.
func TestVHostNotTakenOver(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	real, intruder := newBackend(t, "real"), newBackend(t, "intruder")
	high, low := freePort(t), freePort(t)
	if low > high {
		low, high = high, low
	}
	holder := svc("web.shop", high, real)
	newcomer := svc("web.shop", low, intruder)
	a := startAgent(t, agentOpts{haproxy: true, nginx: true}, holder)
	via := func() (string, error) { return a.vhostGet("web.shop.test.example") }
	answers(t, 20*time.Second, "web.shop", via, "real")

	a.write(t, holder, newcomer)
	answers(t, 20*time.Second, "the newcomer on its own port", func() (string, error) { return tcpGet(low) }, "intruder")
	stillAnswers(t, 300*time.Millisecond, "web.shop after the newcomer came", via, "real")
	a.waitLog(t, "virtual host name claimed by two services", 5*time.Second)
	if n := a.metric(t, "proxymatic_reload_vhost_conflicts"); n != 1 {
		t.Errorf("proxymatic_reload_vhost_conflicts = %v, want 1", n)
	}

	// Restarted on the same run dir: the holder still holds it.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	a.run(t)
	answers(t, 20*time.Second, "web.shop after a restart", via, "real")
}

// A services file with an unknown key on every service logs one line per
// key name, with a count, not one per occurrence.
func TestUnknownKeysLoggedOncePerName(t *testing.T) {
	web := newBackend(t, "web-1")
	var b strings.Builder
	b.WriteString("version: 1\nservices:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "- name: s%d\n  port: %d\n  color: blue\n  servers:\n  - ip: %s\n    port: %d\n    zone: a\n",
			i, 20000+i, web.srv.IP, web.srv.Port)
	}
	out, logs := runOutErr(t, true, binReload, "--dry-run", "--validate=false", "--haproxy", "--services", writeTemp(t, b.String()),
		"--output-dir", filepath.Join(t.TempDir(), "out"))
	lines := strings.Count(string(out)+logs, "unknown field")
	if lines != 2 || !strings.Contains(string(out), `unknown field "color" ignored (500 times in the file)`) {
		t.Errorf("%d lines about unknown fields, want 2 (one per name, with a count):\n%s", lines, grepLines(string(out)+logs, "unknown field"))
	}
}

// A file that is not a services file has nothing of its content echoed,
// by the live agent or by a dry run.
func TestNotAServicesFileNotEchoed(t *testing.T) {
	secret := "password: hunter2-Zq9\napi_token: hunter2-Zq9\nversion: hunter2-Zq9\n"
	path := writeTemp(t, secret)
	_, logs := runOutErr(t, true, binReload, "--dry-run", "--services", path, "--output-dir", filepath.Join(t.TempDir(), "out"))
	if strings.Contains(logs, "hunter2") {
		t.Errorf("dry run echoes the file:\n%s", logs)
	}
	a := agentArgs(t, agentOpts{})
	a.writeRaw(t, []byte(secret))
	a.run(t)
	a.waitLog(t, "services file unusable", 10*time.Second)
	if strings.Contains(a.log.String(), "hunter2") {
		t.Errorf("the agent logs the file:\n%s", a.log.String())
	}
}

// Addresses that are never a service are refused — from Marathon with a
// warning naming the app, in a hand-written file naming the service — and
// link-local ones are admitted with --allow-link-local.
func TestNeverServiceAddresses(t *testing.T) {
	m := marathontest.New(t)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31000).
		WithTask("169.254.169.254", 31001).WithTask("0.0.0.0", 31002).WithTask("224.0.0.1", 31003))
	out, logs := runOut(t, binSync, "--once", "--dry-run", "--marathon", m.URL)
	for _, ip := range []string{"169.254.169.254", "0.0.0.0", "224.0.0.1"} {
		if bytes.Contains(out, []byte(ip)) {
			t.Errorf("%s reached services.yaml", ip)
		}
		if !strings.Contains(logs, "app=/product/web host="+ip) {
			t.Errorf("no warning naming the app for %s:\n%s", ip, logs)
		}
	}
	if !bytes.Contains(out, []byte("10.0.0.1")) {
		t.Errorf("the good task is gone:\n%s", out)
	}
	out, _ = runOut(t, binSync, "--once", "--dry-run", "--marathon", m.URL, "--allow-link-local")
	if !bytes.Contains(out, []byte("169.254.169.254")) || bytes.Contains(out, []byte("0.0.0.0")) {
		t.Errorf("with --allow-link-local:\n%s", out)
	}

	file := writeTemp(t, "version: 1\nservices:\n- name: meta\n  port: 8080\n  servers:\n  - ip: 169.254.169.254\n    port: 80\n"+
		"- name: api.\n  port: 8081\n  servers:\n  - ip: 10.0.0.1\n    port: 80\n")
	dry := func(extra ...string) string {
		out, logs := runOutErr(t, true, binReload, append([]string{"--dry-run", "--validate=false", "--services", file,
			"--output-dir", filepath.Join(t.TempDir(), "out")}, extra...)...)
		return string(out) + logs
	}
	got := dry()
	if !strings.Contains(got, `service "meta"`) || !strings.Contains(got, "link-local") || !strings.Contains(got, `"api." is not a valid name`) {
		t.Errorf("hand-written file:\n%s", got)
	}
	if got := dry("--allow-link-local"); strings.Contains(got, `service "meta"`) {
		t.Errorf("--allow-link-local still refuses the link-local server:\n%s", got)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
