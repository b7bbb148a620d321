package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
)

// unitDirs are where systemd keeps the units a unit of ours may require.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

func unitInstalled(name string) bool {
	for _, d := range unitDirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

// verifyUnit runs systemd-analyze verify on a copy of a unit in dir and
// returns what it said. Commands the unit runs that this machine lacks
// (/usr/local/bin/proxymatic-sync, docker on a CI runner) are replaced by
// stubs under dir, and a unit it requires that is not installed by a stub
// unit beside it: verify checks both exist, and the rest is what we test.
func verifyUnit(t *testing.T, analyze, dir, name, text string) (string, error) {
	t.Helper()
	u, err := parseUnit(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for key, lines := range u["Service"] {
		if !strings.HasPrefix(key, "Exec") {
			continue
		}
		for _, l := range lines {
			cmd := strings.TrimLeft(l, "-@:+!")
			f := strings.Fields(cmd)
			if len(f) == 0 || !filepath.IsAbs(f[0]) {
				continue
			}
			if st, err := os.Stat(f[0]); err == nil && st.Mode()&0o111 != 0 {
				continue
			}
			stub := filepath.Join(dir, "root", f[0])
			os.MkdirAll(filepath.Dir(stub), 0o755)
			if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			text = strings.ReplaceAll(text, f[0], stub)
		}
	}
	for _, key := range []string{"Requires", "Requisite", "BindsTo"} {
		for _, l := range u["Unit"][key] {
			for _, dep := range strings.Fields(l) {
				if _, err := os.Stat(filepath.Join(dir, dep)); err == nil || unitInstalled(dep) {
					continue
				}
				stub := "[Unit]\nDescription=stand-in for " + dep + "\n[Service]\nExecStart=/bin/true\n"
				if err := os.WriteFile(filepath.Join(dir, dep), []byte(stub), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Every unit passes systemd's own check with nothing to say: verify exits
// 0 on some warnings (KillMode=none is one), so any output fails too.
func TestSystemdUnitsPassVerify(t *testing.T) {
	analyze := testbin.Require(t, "systemd-analyze")
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) != 3 {
		t.Fatalf("units %v (%v), want 3", units, err)
	}
	dir := t.TempDir()
	// All units side by side, so that one finds the others (reload wants sync).
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(u)), b, 0o644)
	}
	for _, u := range units {
		b, _ := os.ReadFile(u)
		if out, err := verifyUnit(t, analyze, dir, filepath.Base(u), string(b)); err != nil || out != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}

	// The check can fail: the deprecated KillMode=none is reported.
	b, _ := os.ReadFile("systemd/proxymatic.service")
	old := strings.Replace(string(b), "\nKillMode=mixed\n", "\nKillMode=none\n", 1)
	if out, _ := verifyUnit(t, analyze, t.TempDir(), "proxymatic.service", old); !strings.Contains(out, "KillMode=none") {
		t.Errorf("verify did not report KillMode=none: %q", out)
	}
}
