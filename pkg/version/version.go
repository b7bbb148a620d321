// Package version says which build of proxymatic is running: the version
// (`git describe`, set at link time by `make build` and the images), the
// commit and the Go version, read from the binary's own build information.
// Both commands print it with --version and export it on /metrics as
// proxymatic_build_info{version,commit,goversion} 1.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at link time; empty means "read the build information":
//
//	go build -ldflags "-X github.com/meltwater/proxymatic/pkg/version.version=$(git describe --tags --always --dirty)"
//
// commit is for builds without the repository's .git (the images' build
// context leaves it out), where Go cannot stamp vcs.revision itself.
var (
	version string
	commit  string
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`   // "v1.2.3-4-gabcdef", or "dev" when nothing says
	Commit    string `json:"commit"`    // full revision, "+dirty" when built from a modified tree; "unknown" without one
	GoVersion string `json:"goversion"` // "go1.26.0"
}

var (
	once   sync.Once
	cached Info
)

// Get returns this binary's build information.
func Get() Info {
	once.Do(func() { cached = read(version, commit, debug.ReadBuildInfo) })
	return cached
}

// read is Get with its inputs as arguments, for tests.
func read(ldVersion, ldCommit string, buildInfo func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	bi, ok := buildInfo()
	if ok {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		// `go install module@v1.2.3` stamps the module version; a build in
		// the repository says "(devel)", which is no version.
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "+dirty"
			}
			in.Commit = rev
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the --version line after the program name:
// "v1.2.3 (commit 0123abcd..., go1.26.0)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}
