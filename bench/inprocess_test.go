package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/meltwater/proxymatic/pkg/cli"
	"github.com/meltwater/proxymatic/pkg/cli/reloadcmd"
	"github.com/meltwater/proxymatic/pkg/cli/synccmd"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/spf13/cobra"
)

// BenchmarkInProcess runs the same commands as BenchmarkOnceDryRun inside
// the test process, so that -cpuprofile and -memprofile see the whole
// path of each binary (the child processes are invisible to them).
func BenchmarkInProcess(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		m := marathontest.New(b)
		m.SetAppsJSON(cluster(n, 4))
		dir := tempDir(b)
		file := filepath.Join(dir, "services.yaml")
		var yaml bytes.Buffer
		b.Run(fmt.Sprintf("sync/apps=%d/tasks=4", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				yaml.Reset()
				execute(b, &yaml, synccmd.New, "--once", "--dry-run", "--marathon", m.URL, "--status-endpoint", "")
			}
		})
		if err := os.WriteFile(file, yaml.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("reload/apps=%d/tasks=4", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				execute(b, io.Discard, reloadcmd.New, "--dry-run", "--validate=false", "--haproxy",
					"--services", file, "--output-dir", filepath.Join(dir, "out"), "--run-dir", filepath.Join(dir, "run"), "--status-endpoint", "")
			}
		})
	}
}

func execute(b *testing.B, stdout io.Writer, cmd func(cli.Env) *cobra.Command, args ...string) {
	var stderr bytes.Buffer
	env := cli.Env{Args: args, Getenv: func(string) string { return "" }, Stdout: stdout, Stderr: &stderr}
	if code := cli.Execute(cmd(env), env); code != 0 {
		b.Fatalf("exit %d: %s", code, stderr.Bytes())
	}
}
