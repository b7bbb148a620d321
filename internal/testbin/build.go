package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// Build compiles the command ./cmd/<name> of this module once per test
// process (per set of ldflags) and returns the binary's path: tests run
// the real binary, as a user would. Call RemoveBuilds from TestMain.
func Build(t testing.TB, name string, ldflags ...string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := name + "\x00" + strings.Join(ldflags, " ")
	if p, ok := builds.bins[key]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "proxymatic-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		// The proxies' unprivileged users may need to traverse it.
		os.Chmod(dir, 0o755)
		builds.dir, builds.bins = dir, map[string]string{}
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	out := filepath.Join(builds.dir, fmt.Sprintf("%d", len(builds.bins)), name)
	args := []string{"build", "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, "./cmd/"+name)...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	os.Chmod(filepath.Dir(out), 0o755)
	builds.bins[key] = out
	return out
}

// RemoveBuilds deletes what Build compiled.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.bins = "", nil
	}
}
