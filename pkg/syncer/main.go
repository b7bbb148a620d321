package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
)

// FileMode is services.yaml's mode: proxymatic-reload may run as another user.
const FileMode = 0o644

// Main runs proxymatic-sync with a validated configuration until ctx is done
// (or once, with --once or --dry-run).
func Main(ctx context.Context, cfg *config.Sync, logger *slog.Logger, stdout io.Writer) error {
	if cfg.MarathonCallback != "" {
		logger.Warn("--marathon-callback (MARATHON_CALLBACK_URL) is deprecated and ignored: Marathon events are read from its /v2/events stream")
	}
	sources, err := newSources(cfg, logger, os.Getenv)
	if err != nil {
		return err
	}
	d := &Daemon{
		Sources:      sources,
		Logger:       logger,
		ExposeHost:   cfg.ExposeHost,
		WaitWarning:  cfg.RefreshInterval,
		FetchTimeout: cfg.RefreshInterval,
		StopTimeout:  DefaultStopTimeout,
	}
	if cfg.Output != "" {
		d.Previous = readPrevious(cfg.Output, logger)
	}
	if cfg.DryRun {
		// --dry-run implies --once: following the sources while writing
		// nothing would only print the same file again and again.
		d.Sink = printer{stdout}
		return d.Once(ctx)
	}
	d.Sink = atomicfile.New(cfg.Output, FileMode)
	if cfg.Once {
		return d.Once(ctx)
	}

	if cfg.StatusEndpoint != "" {
		// Bound now, so a busy port fails the start rather than a log line later.
		ln, err := status.Listen(cfg.StatusEndpoint)
		if err != nil {
			return err
		}
		st := status.New(nil)
		d.Status = st
		// The endpoint outlives ctx until the sources have stopped, so that
		// /status answers TERMINATING while the daemon shuts down.
		srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
		served := make(chan error, 1)
		go func() { served <- st.Serve(srvCtx, ln) }()
		defer func() {
			stopSrv()
			if err := <-served; err != nil {
				logger.Error("status endpoint", "err", err)
			}
		}()
		logger.Info("status endpoint listening", "addr", ln.Addr().String())
	}
	// The servers the previous file held count as last seen healthy, so a
	// restart during a Marathon leader election does not drop them.
	for _, src := range sources {
		if hs, ok := src.(healthSeeder); ok {
			hs.SeedHealth(d.Previous)
		}
	}
	logger.Info("following sources", "sources", len(sources), "output", cfg.Output, "refresh_interval", cfg.RefreshInterval)
	return d.Run(ctx)
}

// healthSeeder is a source that keeps last known health (marathon.Source).
type healthSeeder interface {
	SeedHealth(previous []services.Service)
}

// readPrevious reads the file a previous run left, to log changes against
// it and to seed Marathon's last known health; a missing or unreadable file
// simply means every service is logged as Added.
func readPrevious(path string, logger *slog.Logger) []services.Service {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logger.Debug("previous services.yaml not read", "path", path, "err", err)
		}
		return nil
	}
	defer f.Close()
	d, err := services.ReadFile(f)
	if err != nil {
		logger.Debug("previous services.yaml not parsed", "path", path, "err", err)
		return nil
	}
	return d.File.Services
}

// printer is the --dry-run Sink: every state is printed, streamed.
type printer struct{ w io.Writer }

func (p printer) WriteFile(f *services.File) (int64, error) {
	n, err := f.WriteTo(p.w)
	if err != nil {
		return n, fmt.Errorf("write to stdout: %w", err)
	}
	return n, nil
}

func (p printer) Write(data []byte) (bool, error) {
	if _, err := p.w.Write(data); err != nil {
		return false, fmt.Errorf("write to stdout: %w", err)
	}
	return true, nil
}
