package version

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func info(mainVersion string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
	return func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: mainVersion}, Settings: settings}, true
	}
}

func TestRead(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}
	for _, c := range []struct {
		name                string
		ldVersion, ldCommit string
		bi                  func() (*debug.BuildInfo, bool)
		want                Info
	}{
		{"repository build", "", "", info("(devel)", rev),
			Info{"dev", rev.Value, "go1.99.1"}},
		{"make build", "v1.2.3-4-gabcdef", "", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			Info{"v1.2.3-4-gabcdef", rev.Value + "+dirty", "go1.99.1"}},
		{"image build without .git", "v1.2.3", "feedbeef", info("(devel)"),
			Info{"v1.2.3", "feedbeef", "go1.99.1"}},
		{"go install module@version", "", "", info("v0.9.0"),
			Info{"v0.9.0", "unknown", "go1.99.1"}},
		{"no build info", "", "", func() (*debug.BuildInfo, bool) { return nil, false },
			Info{"dev", "unknown", ""}},
	} {
		got := read(c.ldVersion, c.ldCommit, c.bi)
		if c.want.GoVersion == "" {
			c.want.GoVersion = got.GoVersion // runtime.Version()
			if !strings.HasPrefix(got.GoVersion, "go") {
				t.Errorf("%s: Go version %q", c.name, got.GoVersion)
			}
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestBuildInfoMetric(t *testing.T) {
	i := Get()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "proxymatic_build_info" {
			if n := len(mf.GetMetric()); n != 1 {
				t.Fatalf("%d series, want 1", n)
			}
			m := mf.GetMetric()[0]
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			want := map[string]string{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion}
			if m.GetGauge().GetValue() != 1 || len(labels) != 3 || labels["version"] != want["version"] ||
				labels["commit"] != want["commit"] || labels["goversion"] != want["goversion"] {
				t.Fatalf("proxymatic_build_info %v = %v, want %v = 1", labels, m.GetGauge().GetValue(), want)
			}
			return
		}
	}
	t.Fatal("proxymatic_build_info not on the default registry")
}
