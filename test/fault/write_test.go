package fault

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// tmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted when
// the test ends. It needs root (the suite runs as root in CI); elsewhere it
// skips (testbin.Missing: a failure where CI=true).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	testbin.RequireRoot(t, "mounting a tmpfs")
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		testbin.Missing(t, "cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, opt string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opt, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, opt, err, out)
	}
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return
		}
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for range 1 << 16 {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("file system never filled")
}

// manyApps is a state big enough not to fit in the space left.
func manyApps(ip string, n int) []*marathontest.App {
	var apps []*marathontest.App
	for i := range n {
		a := marathontest.BridgeApp("/product/web"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"-"+strconv.Itoa(i), 10001+i)
		a.WithTask(ip, 31000+i)
		apps = append(apps, a)
	}
	return apps
}

// The output directory fills up (ENOSPC) or turns read-only: the old file
// stays whole, the error is logged and counted, the daemon keeps running,
// and it writes the current state once the disk takes writes again.
func TestOutputDirFullOrReadOnly(t *testing.T) {
	for _, fault := range []string{"full", "read-only"} {
		t.Run(fault, func(t *testing.T) {
			dir := tmpfs(t, "512k")
			m := marathontest.New(t)
			m.SetApps(webApp(10001, "10.0.0.1"))
			s := startSync(t, filepath.Join(dir, "services.yaml"), "--marathon", m.URL)
			good := s.waitFile(t, 10*time.Second, "10.0.0.1")

			filler := filepath.Join(dir, "filler")
			switch fault {
			case "full":
				fill(t, filler)
			case "read-only":
				remount(t, dir, "ro")
			}
			m.SetApps(manyApps("10.0.0.2", 200)...)
			m.PushEvent("status_update_event")
			eventually(t, 15*time.Second, "write errors counted", func() bool {
				return metric(t, s.status, "proxymatic_sync_file_write_errors_total") > 0
			})
			want := "no space left on device"
			if fault == "read-only" {
				want = "read-only file system"
			}
			s.waitLog(t, want, 5*time.Second)
			if !fileEquals(s.out, good) {
				t.Fatalf("the old file was damaged:\n%s", tail(string(readFile(t, s.out)), 400))
			}
			// Leftover temp files would eat the space that is freed. The
			// slot files are the file itself (services.yaml is a link to
			// one of them; atomicfile.Slots).
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				switch e.Name() {
				case "services.yaml", "filler", ".services.yaml.slot-0", ".services.yaml.slot-1":
				default:
					t.Errorf("left behind in the output directory: %s", e.Name())
				}
			}
			s.alive(t)

			switch fault {
			case "full":
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			case "read-only":
				remount(t, dir, "rw")
			}
			// No new event: the daemon retries by itself.
			s.waitFile(t, 15*time.Second, "10.0.0.2", "port: 10200")
		})
	}
}
