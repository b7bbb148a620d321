// Package testbin finds the real haproxy, nginx, pen and etcd binaries for
// tests. Tests never mock a proxy: when a binary is missing the test is
// skipped on a developer's machine and fails where CI=true, so a CI run can
// never go green by skipping the parts that matter.
package testbin

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the named binary (looked up on PATH, then in
// /usr/sbin and /usr/bin, where Debian puts the proxies).
func Require(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI=true makes a missing binary a failure (run scripts/install-deps.sh)", name)
	}
	t.Skipf("%s is not installed (run scripts/install-deps.sh as root)", name)
	return ""
}
