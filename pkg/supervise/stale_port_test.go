package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
)

// StopStale returns only once the stale proxy's workers are gone, so the
// caller can bind its port at once. A real master-worker HAProxy is left
// behind (its own process group, as our supervisor starts it); right after
// StopStale its port must bind, every time. Returning when the master alone
// had exited made a new HAProxy find the port held about one time in ten
// on a loaded machine.
func TestStopStaleFreesThePort(t *testing.T) {
	bin := testbin.Require(t, "haproxy")
	for i := range 3 {
		dir := t.TempDir()
		port := testbin.FreePort(t, "tcp")
		cfg := fmt.Sprintf("defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nlisten old\n  bind 127.0.0.1:%d\n  server s 127.0.0.1:1\n", port)
		if err := os.WriteFile(filepath.Join(dir, "h.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		pidFile := filepath.Join(dir, "haproxy.pid")
		cmd := exec.Command(bin, "-W", "-f", filepath.Join(dir, "h.cfg"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() // reaped, as its own parent would
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		if err := WritePidFile(pidFile, cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		// Up when a worker listens.
		waitFor(t, "the stale HAProxy to listen", func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
			}
			return err == nil && len(children(cmd.Process.Pid, mustExe(cmd.Process.Pid))) > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := StopStale(ctx, pidFile, bin, filepath.Join(dir, "h.cfg"), slog.New(slog.DiscardHandler))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("round %d: the port is still held when StopStale returns: %v", i, err)
		}
		ln.Close()
		if groupAlive(cmd.Process.Pid) {
			t.Errorf("round %d: the stale HAProxy's group is still alive", i)
		}
		if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
			t.Errorf("round %d: pid file left: %v", i, err)
		}
	}
}
