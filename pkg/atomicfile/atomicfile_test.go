package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
	"time"
)

func TestWriteCreatesDirectoryAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "services.yaml")
	w := New(path, 0o644)
	changed, err := w.Write([]byte("one\n"))
	if err != nil || !changed {
		t.Fatalf("Write = %v, %v; want true, nil", changed, err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "one\n" {
		t.Fatalf("file = %q, %v", got, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestWriteSameBytesDoesNotTouchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	w := New(path, 0o644)
	if _, err := w.Write([]byte("same\n")); err != nil {
		t.Fatal(err)
	}
	before := inode(t, path)
	changed, err := w.Write([]byte("same\n"))
	if err != nil || changed {
		t.Fatalf("Write of identical bytes = %v, %v; want false, nil", changed, err)
	}
	if after := inode(t, path); after != before {
		t.Errorf("inode changed from %d to %d: the file was replaced", before, after)
	}

	changed, err = w.Write([]byte("different\n"))
	if err != nil || !changed {
		t.Fatalf("Write of new bytes = %v, %v; want true, nil", changed, err)
	}
	if after := inode(t, path); after == before {
		t.Errorf("inode unchanged: the file was not replaced by rename")
	}
}

func TestWriteSameSizeDifferentBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w := New(path, 0o644)
	if _, err := w.Write([]byte("aaaa")); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Write([]byte("aaab")); err != nil || !changed {
		t.Fatalf("Write = %v, %v", changed, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "aaab" {
		t.Errorf("file = %q", got)
	}
}

// Files larger than the comparison block: a difference in any block, the
// last byte included, is a change; identical content is not.
func TestWriteComparesEveryBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	w := New(path, 0o644)
	data := bytes.Repeat([]byte("server a 10.0.0.1:80\n"), 20000) // ~420 KB, several blocks
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Write(bytes.Clone(data)); err != nil || changed {
		t.Fatalf("identical large Write = %v, %v; want false, nil", changed, err)
	}
	for _, at := range []int{0, 64 << 10, 64<<10 + 1, 300000, len(data) - 1} {
		next := bytes.Clone(data)
		next[at] = 'X'
		if changed, err := w.Write(next); err != nil || !changed {
			t.Fatalf("byte %d changed: Write = %v, %v; want true, nil", at, changed, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, next) {
			t.Fatalf("byte %d changed: file does not hold the new bytes", at)
		}
		data = next
	}
}

func TestWriteFixesMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := New(path, 0o644).Write([]byte("x")); err != nil || !changed {
		t.Fatalf("Write = %v, %v; want a rewrite to fix the mode", changed, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v", st.Mode().Perm())
	}
}

func TestWriteRefusesDirectoryTarget(t *testing.T) {
	path := t.TempDir()
	if _, err := New(path, 0o644).Write([]byte("x")); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
}

// TestWriteReadOnlyDirKeepsOldFile: root ignores directory permissions, so
// as root the directory is a tmpfs remounted read-only.
func TestWriteReadOnlyDirKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	if os.Geteuid() == 0 {
		dir = mountTmpfs(t, "size=1m")
		path = filepath.Join(dir, "services.yaml")
	}
	old := []byte("old contents\n")
	if _, err := New(path, 0o644).Write(old); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		run(t, "mount", "-o", "remount,ro", dir)
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	}
	changed, err := New(path, 0o644).Write([]byte("new contents\n"))
	if err == nil || changed {
		t.Fatalf("Write into a read-only directory = %v, %v; want an error", changed, err)
	}
	if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
		t.Errorf("error %v is neither EROFS nor EACCES", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	assertContent(t, path, old)
	assertNoTemp(t, dir)
}

// TestWriteFullDiskKeepsOldFile fills a 64 KiB tmpfs so the new contents do
// not fit: the write fails with ENOSPC and the old file stays whole.
func TestWriteFullDiskKeepsOldFile(t *testing.T) {
	dir := mountTmpfs(t, "size=64k")
	path := filepath.Join(dir, "services.yaml")
	old := bytes.Repeat([]byte("old\n"), 4096) // 16 KiB
	if _, err := New(path, 0o644).Write(old); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("new\n"), 32<<10) // 128 KiB: more than the disk
	changed, err := New(path, 0o644).Write(huge)
	if err == nil || changed {
		t.Fatalf("Write to a full disk = %v, %v; want an error", changed, err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v is not ENOSPC", err)
	}
	assertContent(t, path, old)
	assertNoTemp(t, dir)

	// Space freed by the failed write is back: a write that fits works.
	if changed, err := New(path, 0o644).Write([]byte("small\n")); err != nil || !changed {
		t.Fatalf("Write after ENOSPC = %v, %v", changed, err)
	}
}

func BenchmarkWrite5MiB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "services.yaml")
	w := New(path, 0o644)
	data := [2][]byte{bytes.Repeat([]byte("a"), 5<<20), bytes.Repeat([]byte("b"), 5<<20)}
	b.SetBytes(5 << 20)
	for i := 0; b.Loop(); i++ {
		if _, err := w.Write(data[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteUnchanged5MiB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "services.yaml")
	w := New(path, 0o644)
	data := bytes.Repeat([]byte("a"), 5<<20)
	if _, err := w.Write(data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(5 << 20)
	for b.Loop() {
		if changed, err := w.Write(data); err != nil || changed {
			b.Fatal(changed, err)
		}
	}
}

// mountTmpfs mounts a small tmpfs (root only). Without mount rights the test
// is skipped, except where CI=true, which must exercise these paths.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput()
	if err != nil {
		testbin.Missing(t, "cannot mount a tmpfs (%s): run as root with mount rights", strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func assertContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("old file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("old file changed: %d bytes, want the original %d", len(got), len(want))
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// pieces splits data into n pieces of varied sizes, some empty.
func pieces(data []byte, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		lo, hi := len(data)*i/n, len(data)*(i+1)/n
		if i%7 == 3 {
			out = append(out, nil)
		}
		out = append(out, data[lo:hi])
	}
	return out
}

func TestWriteBuffersIsWriteOfTheJoinedPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	w := New(path, 0o644)
	data := bytes.Repeat([]byte("0123456789abcdef\n"), 200000) // 3.4 MB
	// More pieces than one writev takes.
	changed, err := w.WriteBuffers(pieces(data, 2500), true)
	if err != nil || !changed {
		t.Fatalf("WriteBuffers = %v, %v", changed, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the file is not the joined pieces")
	}
	before := inode(t, path)
	// Compared with the file, the same bytes in other pieces are no change.
	if changed, err := w.WriteBuffers(pieces(data, 3), true); err != nil || changed {
		t.Fatalf("same bytes: WriteBuffers = %v, %v; want false, nil", changed, err)
	}
	if inode(t, path) != before {
		t.Error("the same bytes replaced the file")
	}
	// One byte different deep in a piece is a change.
	other := bytes.Clone(data)
	other[len(other)/2] = 'X'
	if changed, err := w.WriteBuffers(pieces(other, 1000), true); err != nil || !changed {
		t.Fatalf("one byte different: WriteBuffers = %v, %v", changed, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, other) {
		t.Fatal("the file is not the new pieces")
	}
	// Told the file differs, it is replaced without reading it.
	before = inode(t, path)
	if changed, err := w.WriteBuffers(pieces(other, 10), false); err != nil || !changed {
		t.Fatalf("compare false: WriteBuffers = %v, %v", changed, err)
	}
	if inode(t, path) == before {
		t.Error("compare false did not replace the file")
	}
	assertNoTemp(t, filepath.Dir(path))
}

// A named pipe (or any non-regular file) at the path is refused at once:
// opening it for the comparison must not wait for a writer.
func TestNotARegularFileRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "services.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := New(fifo, 0o644).Write([]byte("x\n")); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Write over a FIFO = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Write hung on a FIFO")
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the FIFO was replaced: %v %v", st.Mode(), err)
	}
	assertNoTemp(t, dir)
}
