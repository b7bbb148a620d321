package nginx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
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
