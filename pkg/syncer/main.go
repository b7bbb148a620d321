package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/hangup"
	"github.com/meltwater/proxymatic/pkg/logging"
	"github.com/meltwater/proxymatic/pkg/marathon"
	"github.com/meltwater/proxymatic/pkg/services"
	"github.com/meltwater/proxymatic/pkg/status"
	"github.com/meltwater/proxymatic/pkg/statuspage"
)

// FileMode is services.yaml's mode: proxymatic-reload may run as another user.
const FileMode = 0o644

// Main runs proxymatic-sync with a validated configuration until ctx is done
// (or once, with --once or --dry-run): MainTo with the process's stderr.
func Main(ctx context.Context, cfg *config.Sync, logger *slog.Logger, stdout io.Writer) error {
	return MainTo(ctx, cfg, logger, stdout, os.Stderr)
}

// MainTo is Main with the writer that takes the --explain table.
func MainTo(ctx context.Context, cfg *config.Sync, logger *slog.Logger, stdout, stderr io.Writer) error {
	if cfg.MarathonCallback != "" {
		logger.Warn("--marathon-callback (MARATHON_CALLBACK_URL) is deprecated and ignored: Marathon events are read from its /v2/events stream")
	}
	services.AllowLinkLocal(cfg.AllowLinkLocal)
	// One book for every source (and the daemon): why each app, task,
	// port or key of the last compile is not served.
	book := explain.NewBook(0, 0)
	explain.Export(book)
	sources, err := newSources(cfg, logger, os.Getenv, book)
	if err != nil {
		return err
	}
	tracked := track(sources)
	d := &Daemon{
		Sources:      make([]Source, len(tracked)),
		Logger:       logger,
		ExposeHost:   cfg.ExposeHost,
		WaitWarning:  cfg.RefreshInterval,
		FetchTimeout: cfg.RefreshInterval,
		StopTimeout:  DefaultStopTimeout,
		InitialWait:  cfg.InitialWait,
		// The daemon's own reasons (net=host, empty service, a port won
		// by a higher-precedence source) go into the sources' book.
		Explain: book,
	}
	for i, t := range tracked {
		d.Sources[i] = t.asSource()
	}
	if cfg.Output != "" {
		d.Previous, d.PreviousFound = readPrevious(cfg.Output, logger)
	}
	if cfg.DryRun {
		// --dry-run implies --once: following the sources while writing
		// nothing would only print the same file again and again.
		d.Sink = printer{stdout}
		return explainAfter(cfg, book, stderr, d.Once(ctx))
	}
	if cfg.Once {
		d.Sink = atomicfile.New(cfg.Output, FileMode)
		return explainAfter(cfg, book, stderr, d.Once(ctx))
	}
	// The daemon rewrites the file on every change: in place, in one of
	// two slot files linked over it in turn (atomicfile.Slots), which at
	// 10,000 services is a tenth of the CPU of a new file per change.
	slots := atomicfile.NewSlots(cfg.Output, FileMode)
	slots.Observe = observeWrite
	d.Sink = slots

	if cfg.StatusEndpoint != "" {
		// Bound now, so a busy port fails the start rather than a log line later.
		ln, err := status.Listen(cfg.StatusEndpoint)
		if err != nil {
			return err
		}
		st := status.New(nil)
		d.Status = st
		p := &page{cfgOutput: cfg.Output, reloadURL: cfg.ReloadStatusURL, started: time.Now(), status: st,
			sources: tracked, book: book, ring: logging.RingOf(logger), gatherer: prometheus.DefaultGatherer,
			failedAt: map[string]float64{}, seenGood: map[string]time.Time{}}
		st.Handle("GET "+statuspage.ExplainPath, statuspage.ExplainHandler(book, marathon.RelateApp))
		st.Handle("GET /{$}", statuspage.Handler(p.view))
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
	refresh := make(chan struct{}, 1)
	d.Refresh = refresh
	stopHangups := hangup.Notify(refresh)
	defer stopHangups()
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

// explainAfter prints the reasons of a --once or --dry-run run on stderr
// when --explain asks for them, whether or not the run succeeded (a
// failed source may be the reason), and returns the run's error.
func explainAfter(cfg *config.Sync, book *explain.Book, stderr io.Writer, runErr error) error {
	if !cfg.Explain {
		return runErr
	}
	entries, omitted := book.Entries(explain.Filter{})
	if err := explain.WriteTable(stderr, entries, omitted); err != nil {
		return errors.Join(runErr, fmt.Errorf("--explain: %w", err))
	}
	return runErr
}

// readPrevious reads the file a previous run left: changes are logged
// against it, a source down at start-up keeps its services in it, and
// Marathon's last known health is seeded from it. A
// missing or unreadable file counts as none (found is false): every
// service is logged as Added, and a source down at start-up is waited for
// (Daemon.InitialWait).
func readPrevious(path string, logger *slog.Logger) (svcs []services.Service, found bool) {
	// O_NONBLOCK: a named pipe at the output path must not hang start-up
	// (the writer refuses it later, with an error that names it).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logger.Warn("previous services.yaml not read; sources down at start-up are waited for", "path", path, "err", err)
		}
		return nil, false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		logger.Warn("the output path is not a regular file; it will not be replaced", "path", path)
		return nil, false
	}
	d, err := services.ReadFile(f)
	if err != nil {
		logger.Warn("previous services.yaml not parsed; sources down at start-up are waited for", "path", path, "err", err)
		return nil, false
	}
	return d.File.Services, true
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
