// Package filewatch follows one file and reports its content each time it
// changes. It watches the file's directory, not the file: a watch on the file
// dies at the first atomic rename, and a Kubernetes ConfigMap swaps a
// "..data" symlink rather than touching the file. Bursts of events are
// coalesced, the content is hashed so only real changes are reported, and
// the hash is checked on a timer in case an event was lost.
package filewatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Snapshot is the file's content at one read, or why it could not be read.
type Snapshot struct {
	Data []byte
	Hash [sha256.Size]byte
	Err  error // os.ErrNotExist when the file is missing
}

// Watcher follows Path. The zero durations take the defaults.
type Watcher struct {
	Path     string
	Quiet    time.Duration // a burst ends after this long without events (50 ms)
	MaxDelay time.Duration // but is never held longer than this (1 s)
	Resync   time.Duration // safety-net re-read for lost events (30 s)
	MaxSize  int64         // larger files are an error (64 MiB)
	Logger   *slog.Logger
}

// Run reads the file at once and after every change, calling onChange from
// this goroutine whenever the content (or the error) differs from the last
// report. It returns when ctx is done. A directory that does not exist yet
// is waited for.
func (w *Watcher) Run(ctx context.Context, onChange func(context.Context, Snapshot)) error {
	quiet := orDefault(w.Quiet, 50*time.Millisecond)
	maxDelay := orDefault(w.MaxDelay, time.Second)
	resync := orDefault(w.Resync, 30*time.Second)
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	path := filepath.Clean(w.Path)
	dir, name := filepath.Dir(path), filepath.Base(path)

	var last *Snapshot
	report := func(cause string) {
		reads.WithLabelValues(cause).Inc()
		s := w.read(path)
		if last != nil && sameSnapshot(*last, s) {
			return
		}
		last = &s
		onChange(ctx, s)
	}

	for {
		fw, err := w.waitForDir(ctx, dir, log)
		if err != nil || fw == nil {
			return err
		}
		report("start")
		err = w.follow(ctx, fw, dir, name, quiet, maxDelay, resync, report, log)
		fw.Close()
		if err != nil || ctx.Err() != nil {
			return err
		}
		// The directory went away; wait for it to come back.
	}
}

// waitForDir returns a watcher on dir once dir exists, nil when ctx ends first.
func (w *Watcher) waitForDir(ctx context.Context, dir string, log *slog.Logger) (*fsnotify.Watcher, error) {
	logged := false
	for {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			return nil, fmt.Errorf("filewatch %s: %w", dir, err)
		}
		if err = fw.Add(dir); err == nil {
			return fw, nil
		}
		fw.Close()
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("filewatch %s: %w", dir, err)
		}
		if !logged {
			log.Warn("directory of the services file does not exist yet; waiting for it", "dir", dir)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// follow handles events until ctx is done or the directory is gone.
func (w *Watcher) follow(ctx context.Context, fw *fsnotify.Watcher, dir, name string, quiet, maxDelay, resync time.Duration, report func(string), log *slog.Logger) error {
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var burstStart time.Time // zero when no burst is pending
	pend := func() {
		now := time.Now()
		if burstStart.IsZero() {
			burstStart = now
		}
		timer.Reset(max(0, min(quiet, burstStart.Add(maxDelay).Sub(now))))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				log.Warn("directory of the services file removed; waiting for it", "dir", dir)
				report("event")
				return nil
			}
			base := filepath.Base(ev.Name)
			// "..data" is the symlink a ConfigMap volume swaps atomically.
			if base != name && base != "..data" {
				continue
			}
			pend()
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			watchErrors.Inc()
			log.Warn("file watcher error; re-reading", "dir", dir, "err", err)
			pend()
		case <-timer.C:
			burstStart = time.Time{}
			report("event")
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		case <-ticker.C:
			report("resync")
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
	}
}

// Read reads the file now, as Run would, without waiting for an event (a
// SIGHUP asking for the file to be applied again).
func (w *Watcher) Read() Snapshot { return w.read(filepath.Clean(w.Path)) }

func (w *Watcher) read(path string) Snapshot {
	limit := w.MaxSize
	if limit <= 0 {
		limit = 64 << 20
	}
	// O_NONBLOCK: opening a named pipe put in the file's place would
	// otherwise block until some writer opened it, hanging the watcher
	// for good. Only a regular file is content.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Snapshot{Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Snapshot{Err: fmt.Errorf("read %s: %w", path, err)}
	}
	if !st.Mode().IsRegular() {
		return Snapshot{Err: fmt.Errorf("read %s: not a regular file (%s)", path, st.Mode().Type())}
	}
	if st.Size() > limit {
		return Snapshot{Err: fmt.Errorf("read %s: larger than %d bytes", path, limit)}
	}
	// One buffer of the file's size: io.ReadAll's doubling copies a
	// multi-megabyte file a dozen times on every change.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return Snapshot{Err: fmt.Errorf("read %s: %w", path, err)}
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return Snapshot{Err: fmt.Errorf("read %s: larger than %d bytes", path, limit)}
	}
	return Snapshot{Data: data, Hash: sha256.Sum256(data)}
}

func sameSnapshot(a, b Snapshot) bool {
	if (a.Err == nil) != (b.Err == nil) {
		return false
	}
	if a.Err != nil {
		return a.Err.Error() == b.Err.Error()
	}
	return a.Hash == b.Hash
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
