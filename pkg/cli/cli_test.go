package cli

import (
	"runtime/debug"
	"testing"
)

func TestBatchGCTurnsCollectorOffUntilTheLimitAndRestores(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 40))

	restore := batchGC(func(string) string { return "" })
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("during a batch run GC percent = %d, want -1 (off)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != batchMemoryLimit {
		t.Errorf("during a batch run memory limit = %d, want %d", got, batchMemoryLimit)
	}
	restore()
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("after the run GC percent = %d, want 100 back", got)
	}
	debug.SetGCPercent(100)
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("after the run memory limit = %d, want it back", got)
	}

	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		restore := batchGC(func(k string) string {
			if k == v {
				return "50"
			}
			return ""
		})
		if got := debug.SetGCPercent(-1); got != 100 {
			t.Errorf("with %s set, GC percent = %d: the operator's setting must win", v, got)
		}
		debug.SetGCPercent(100)
		restore()
	}
}
