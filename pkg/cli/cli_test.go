package cli

import (
	"io"
	"runtime/debug"
	"testing"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/spf13/cobra"
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

// The commands read the variables through LookupEnv when the environment
// has one (OSEnv does), so that STATUS_ENDPOINT set to "" turns reload's
// endpoint off, as it turned the original image's off.
func TestPrepareTellsAnEmptyVariableFromAnUnsetOne(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STATUS_ENDPOINT": ""}, ""},
		{map[string]string{}, "0.0.0.0:9090"},
		{map[string]string{"STATUS_ENDPOINT": "127.0.0.1:1"}, "127.0.0.1:1"},
	} {
		var c config.Reload
		var verbose bool
		cmd := &cobra.Command{Use: "proxymatic-reload"}
		config.BindReload(cmd.Flags(), &c)
		env := Env{
			Getenv:    func(k string) string { return tc.env[k] },
			LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
			Stderr:    io.Discard,
		}
		if _, err := prepare(cmd, env, &verbose); err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.StatusEndpoint != tc.want {
			t.Errorf("env %v: status endpoint %q, want %q", tc.env, c.StatusEndpoint, tc.want)
		}
	}
}
