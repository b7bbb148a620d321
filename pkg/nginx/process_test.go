package nginx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

func freePort(t *testing.T) int {
	t.Helper()
	return testbin.FreePort(t, "tcp")
}

func backendServer(t *testing.T, name string) services.Server {
	t.Helper()
	ap := testbin.Backend(t, name)
	return services.Server{IP: ap.Addr(), Port: int(ap.Port()), Weight: services.DefaultWeight}
}

func writeVHost(t *testing.T, prefix string, port int, srv services.Server) {
	t.Helper()
	cfg, err := Render(Params{RunDir: prefix, Port: port, MaxConnections: 256}, []VHost{{
		Host: "web.test.example", Service: services.Key{Port: 10001, Protocol: services.TCP}, Servers: []services.Server{srv},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ConfigFile(prefix), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
}

func getHost(port int, host string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func TestServerStartReloadRestartStop(t *testing.T) {
	bin := testbin.Require(t, "nginx")
	prefix := t.TempDir()
	if err := os.Chmod(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MakeDirs(prefix); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	a, b := backendServer(t, "a"), backendServer(t, "b")
	writeVHost(t, prefix, port, a)

	s := NewServer(bin, prefix, supervise.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Reset: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if got, err := getHost(port, "web.test.example"); err != nil || got != "a" {
		t.Fatalf("before reload: %q, %v", got, err)
	}
	for i, srv := range []services.Server{b, a, b} {
		writeVHost(t, prefix, port, srv)
		if err := s.Reload(ctx); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		want := map[bool]string{true: "a", false: "b"}[srv == a]
		if got, err := getHost(port, "web.test.example"); err != nil || got != want {
			t.Fatalf("after reload %d: %q, %v; want %q", i, got, err, want)
		}
	}

	master := s.Pid()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := getHost(port, "web.test.example")
		if err == nil && got == "b" && s.Pid() != master && s.Pid() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after master kill: %q %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	pid := s.Pid()
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("master %d still running", pid)
	}
	if _, err := getHost(port, "web.test.example"); err == nil {
		t.Fatal("still serving after Stop")
	}
}

// nginx's workers set worker_rlimit_nofile with setrlimit. Above the hard
// limit that needs CAP_SYS_RESOURCE, which containers usually lack: every
// worker then logs "setrlimit(RLIMIT_NOFILE, N) failed (1: Operation not
// permitted)". Run under a 4096 hard limit without that capability, a config
// rendered with FDLimit stays within it; one rendered without does not (so
// the check can fail).
func TestRlimitWithinHardLimit(t *testing.T) {
	bin := testbin.Require(t, "nginx")
	prlimit, setpriv := testbin.Require(t, "prlimit"), testbin.Require(t, "setpriv")
	testbin.RequireRoot(t, "this test")
	for _, fdLimit := range []int{0, 4096} {
		prefix := t.TempDir()
		os.Chmod(prefix, 0o755)
		if err := MakeDirs(prefix); err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		cfg, err := Render(Params{RunDir: prefix, Port: port, MaxConnections: 8192, FDLimit: fdLimit, User: "nobody", Group: "nogroup"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ConfigFile(prefix), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		var out syncBuf
		cmd := exec.Command(prlimit, "--nofile=4096:4096", setpriv, "--bounding-set=-sys_resource", "--inh-caps=-sys_resource",
			bin, "-e", "stderr", "-p", prefix+"/", "-c", ConfigFile(prefix))
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A worker answering has run its init, setrlimit included (and a
		// failure is logged before it accepts).
		deadline := time.Now().Add(20 * time.Second)
		for {
			if code, _ := statusCode(port); code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				cmd.Wait()
				t.Fatalf("nginx not answering: %s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		failed := strings.Contains(out.String(), "setrlimit(RLIMIT_NOFILE")
		switch {
		case fdLimit == 0 && !failed:
			t.Errorf("without a cap, no setrlimit failure: the test cannot tell (output %q)", out.String())
		case fdLimit > 0 && failed:
			t.Errorf("with FDLimit %d: %s", fdLimit, out.String())
		}
		if fdLimit > 0 && !strings.Contains(string(cfg), "worker_rlimit_nofile 4096;") {
			t.Errorf("config does not cap worker_rlimit_nofile at 4096")
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func statusCode(port int) (int, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/_status", port))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
