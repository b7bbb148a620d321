package reload

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/supervise"
)

// A proxy that failed its first start is not serving: /status must not turn
// OK on its account, and the failure is one to retry.
func TestSingleStartFailure(t *testing.T) {
	dir := t.TempDir()
	s := &single{
		proxyName: "test",
		file:      configFile{path: filepath.Join(dir, "test.cfg")},
		check:     func(context.Context, string) error { return nil },
		// A binary that cannot be executed: a start that really fails.
		newRunner: func() runner {
			return &procRunner{r: haproxy.NewMaster(filepath.Join(dir, "no-haproxy"), dir, supervise.DefaultBackoff, nil), ctx: t.Context()}
		},
		pick: func(f *render.Files) []byte { return f.Nginx },
		log:  slog.Default(),
	}
	if !s.serving() {
		t.Fatal("a proxy with nothing to serve counts as not serving")
	}
	err := s.apply(t.Context(), &render.Files{Nginx: []byte("cfg")})
	if err == nil || !transient(err) {
		t.Fatalf("apply = %v; want a transient start failure", err)
	}
	if s.serving() {
		t.Fatal("a proxy that failed to start counts as serving")
	}
	if err := s.apply(t.Context(), &render.Files{}); err != nil || !s.serving() {
		t.Fatalf("nothing to serve: %v, serving %v", err, s.serving())
	}
}
