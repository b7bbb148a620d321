package testbin

import (
	"runtime"
	"testing"
)

// outcome is a testing.TB that records whether a test was skipped or
// failed; both end the goroutine, as the real ones do.
type outcome struct {
	testing.TB
	skipped, failed bool
}

func (o *outcome) Helper()               {}
func (o *outcome) Skipf(string, ...any)  { o.skipped = true; runtime.Goexit() }
func (o *outcome) Fatalf(string, ...any) { o.failed = true; runtime.Goexit() }
func (o *outcome) run(f func(testing.TB)) *outcome {
	done := make(chan struct{})
	go func() { defer close(done); f(o) }()
	<-done
	return o
}

// A missing prerequisite skips on a developer's machine and fails where
// CI=true; a present binary does neither.
func TestMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		o := (&outcome{TB: t}).run(func(tb testing.TB) { Missing(tb, "no %s", "thing") })
		if o.failed != (ci == "true") || o.skipped != (ci != "true") {
			t.Errorf("CI=%q: skipped %v failed %v", ci, o.skipped, o.failed)
		}
		o = (&outcome{TB: t}).run(func(tb testing.TB) { Require(tb, "no-such-binary-proxymatic") })
		if o.failed != (ci == "true") || o.skipped != (ci != "true") {
			t.Errorf("Require, CI=%q: skipped %v failed %v", ci, o.skipped, o.failed)
		}
		o = (&outcome{TB: t}).run(func(tb testing.TB) { Require(tb, "sh") })
		if o.failed || o.skipped {
			t.Errorf("Require(sh), CI=%q: skipped %v failed %v", ci, o.skipped, o.failed)
		}
	}
}
