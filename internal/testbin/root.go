package testbin

import (
	"os"
	"testing"
)

// RequireRoot skips a test that needs root (file ownership, a dropped
// user) on a developer's machine, and fails it where CI=true: CI runs the
// suite as root, as the combined image runs the agent.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root; CI=true makes that a failure")
	}
	t.Skip("needs root")
}
