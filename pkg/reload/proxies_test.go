package reload

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

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

// A check cut short by shutdown (SIGTERM cancels the agent's context, which
// kills `haproxy -c`) decided nothing: it is reported as cancelled, not as a
// config the proxy rejected, and not counted as a failure.
func TestCheckCancelledIsNotRejected(t *testing.T) {
	dir := t.TempDir()
	s := &single{
		proxyName: "test",
		file:      configFile{path: filepath.Join(dir, "test.cfg")},
		check: func(ctx context.Context, _ string) error {
			<-ctx.Done()
			return errors.New("signal: killed")
		},
		newRunner: func() runner { t.Fatal("started after a cancelled check"); return nil },
		pick:      func(f *render.Files) []byte { return f.Nginx },
		log:       slog.Default(),
	}
	var logs bytes.Buffer
	a := &agent{log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	go cancel()
	failures := counterValue(reloadFailures.WithLabelValues("test"))
	err := a.applyProxy(ctx, s, &render.Files{Nginx: []byte("cfg")})
	if err == nil || errors.Is(err, errRejected) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("apply = %v; want a cancelled check, not a rejection", err)
	}
	if strings.Contains(logs.String(), "rejected") || !strings.Contains(logs.String(), "cancelled") {
		t.Errorf("logged:\n%s", logs.String())
	}
	if got := counterValue(reloadFailures.WithLabelValues("test")); got != failures {
		t.Errorf("a cancelled check counted as a failure")
	}
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return -1
	}
	return m.Counter.GetValue()
}
