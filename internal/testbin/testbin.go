// Package testbin finds the real haproxy, nginx, pen and etcd binaries for
// tests. Tests never mock a proxy: when a binary is missing the test is
// skipped on a developer's machine and fails where CI=true, so a CI run can
// never go green by skipping the parts that matter. The same holds for any
// other prerequisite (root, mounts, IPv6 loopback): see Missing.
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
	Missing(t, "%s is not installed (run scripts/install-deps.sh as root)", name)
	return ""
}

// CI reports whether the tests run where CI=true.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends a test whose environment lacks something it needs: a tool,
// root, a tmpfs mount, an IPv6 loopback, a large enough fd limit. On a
// developer's machine the test is skipped; where CI=true it fails, because
// CI is set up to have all of it (scripts/install-deps.sh installs the
// tools, and CI runs the tests as root), so a skip there could only hide a
// test that matters. Every t.Skip in the repository goes through here.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true: a missing prerequisite is a failure, not a skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot ends the test through Missing unless it runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root", why)
	}
}
