package filewatch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// follow runs a watcher and returns the channel of its reports.
func follow(t *testing.T, path string, resync time.Duration) <-chan Snapshot {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Snapshot, 100)
	done := make(chan struct{})
	w := &Watcher{Path: path, Resync: resync}
	go func() {
		defer close(done)
		_ = w.Run(ctx, func(_ context.Context, s Snapshot) { out <- s })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

func next(t *testing.T, ch <-chan Snapshot) Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no report")
		return Snapshot{}
	}
}

func expectData(t *testing.T, ch <-chan Snapshot, want string) {
	t.Helper()
	s := next(t, ch)
	if s.Err != nil || string(s.Data) != want {
		t.Fatalf("got %q, err %v; want %q", s.Data, s.Err, want)
	}
}

func none(t *testing.T, ch <-chan Snapshot) {
	t.Helper()
	select {
	case s := <-ch:
		t.Fatalf("unexpected report %q, err %v", s.Data, s.Err)
	case <-time.After(300 * time.Millisecond):
	}
}

func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFollowsWritesRenamesAndRemoval(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	writeAtomic(t, path, "one")
	ch := follow(t, path, time.Hour)
	expectData(t, ch, "one")

	writeAtomic(t, path, "two")
	expectData(t, ch, "two")

	// In-place write.
	if err := os.WriteFile(path, []byte("three"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectData(t, ch, "three")

	// Same bytes again: nothing to report.
	writeAtomic(t, path, "three")
	none(t, ch)

	// Other files in the directory are ignored.
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	none(t, ch)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if s := next(t, ch); !os.IsNotExist(s.Err) {
		t.Fatalf("after remove: err %v, want not-exist", s.Err)
	}
	writeAtomic(t, path, "four")
	expectData(t, ch, "four")
}

func TestCoalescesBursts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	writeAtomic(t, path, "start")
	ch := follow(t, path, time.Hour)
	expectData(t, ch, "start")
	for i := range 20 {
		writeAtomic(t, path, "burst"+string(rune('a'+i)))
	}
	// Every report is the file at some point of the burst, the last one is
	// the final content, and the burst did not produce one read per write.
	n := 0
	for {
		s := next(t, ch)
		n++
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		if string(s.Data) == "burst"+string(rune('a'+19)) {
			break
		}
	}
	none(t, ch)
	if n >= 20 {
		t.Fatalf("%d reports for 20 writes: not coalesced", n)
	}
}

func TestWaitsForTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "services.yaml")
	ch := follow(t, path, time.Hour)
	time.Sleep(100 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if s := next(t, ch); !os.IsNotExist(s.Err) {
		t.Fatalf("empty directory: err %v, want not-exist", s.Err)
	}
	writeAtomic(t, path, "here")
	expectData(t, ch, "here")
}

// A ConfigMap volume: services.yaml -> ..data/services.yaml, ..data -> a
// timestamped directory, and an update swaps ..data with a rename.
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(ts, content string) {
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "services.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mk("..2024_01", "v1")
	if err := os.Symlink("..data/services.yaml", filepath.Join(dir, "services.yaml")); err != nil {
		t.Fatal(err)
	}
	ch := follow(t, filepath.Join(dir, "services.yaml"), time.Hour)
	expectData(t, ch, "v1")
	mk("..2024_02", "v2")
	expectData(t, ch, "v2")
}

// An event that never arrives (the file changed behind the watcher's back,
// here in a directory replaced wholesale) is caught by the resync.
func TestResyncCatchesLostEvents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	writeAtomic(t, path, "a")
	ch := follow(t, path, 200*time.Millisecond)
	expectData(t, ch, "a")
	// A hard link written through another name changes the content without
	// any event naming services.yaml.
	alias := filepath.Join(dir, "alias")
	if err := os.Link(path, alias); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(alias, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("b"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expectData(t, ch, "b")
}

// A named pipe or a directory in the file's place is reported as an error
// at once: opening a pipe must not block the watcher until a writer comes.
func TestNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	writeAtomic(t, path, "one")
	ch := follow(t, path, time.Hour)
	expectData(t, ch, "one")

	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if s := nextPresent(t, ch); s.Err == nil || !strings.Contains(s.Err.Error(), "not a regular file") {
		t.Fatalf("named pipe: got %+v, want a not-a-regular-file error", s)
	}
	writeAtomic(t, path, "two")
	expectData(t, ch, "two")

	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if s := nextPresent(t, ch); s.Err == nil || !strings.Contains(s.Err.Error(), "not a regular file") {
		t.Fatalf("directory: got %+v, want a not-a-regular-file error", s)
	}
}

// nextPresent is the next report about something at the path: the
// watcher may see the removal that precedes a replacement on its own (a
// report that the file is missing) before it sees the replacement.
func nextPresent(t *testing.T, ch <-chan Snapshot) Snapshot {
	t.Helper()
	for {
		s := next(t, ch)
		if s.Err == nil || !errors.Is(s.Err, fs.ErrNotExist) {
			return s
		}
	}
}
