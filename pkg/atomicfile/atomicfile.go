// Package atomicfile replaces a file's contents so that a reader only ever
// sees the old bytes or the new ones, never a mix, an empty file or a
// half-written one — even across a crash or power loss. It is the one place
// proxymatic-sync writes to disk.
//
// A write goes to a temporary file in the same directory (rename is only
// atomic within one file system), is fsynced, renamed over the target, and
// the directory is fsynced so the rename itself survives a crash. When
// anything fails — a full disk, a read-only directory — the temporary file
// is removed and the old file is left exactly as it was.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Writer replaces one file. It is not safe for concurrent use: one owner
// writes the file.
type Writer struct {
	path string
	perm fs.FileMode
	vs   vectors // writev's scratch
}

// New returns a Writer for path. The file gets exactly perm: it is set with
// chmod, so the process umask cannot narrow it and a reader running as
// another user can still open the file.
func New(path string, perm fs.FileMode) *Writer {
	return &Writer{path: filepath.Clean(path), perm: perm.Perm()}
}

// Path is the file the Writer replaces.
func (w *Writer) Path() string { return w.path }

// Write makes the file hold exactly data. When it already does, nothing is
// written (so its mtime and inode stay, and a watcher sees no event) and
// changed is false. The directory is created when missing.
func (w *Writer) Write(data []byte) (changed bool, err error) {
	return w.WriteBuffers([][]byte{data}, true)
}

// WriteBuffers is Write for a file given in pieces, written in order with
// writev and never joined in memory. With compare false the caller knows
// the file holds something else (it changed what it last wrote): the file
// is replaced without being read first, which at several megabytes is a
// read and a compare saved on every change.
func (w *Writer) WriteBuffers(bufs [][]byte, compare bool) (changed bool, err error) {
	if compare {
		same, err := w.holds(bufs)
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
	}
	dir := filepath.Dir(w.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("write %s: %w", w.path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(w.path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", w.path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := writeAll(tmp, bufs, 0, &w.vs); err != nil {
		return false, fmt.Errorf("write %s: %w", w.path, err)
	}
	if err := tmp.Chmod(w.perm); err != nil {
		return false, fmt.Errorf("write %s: %w", w.path, err)
	}
	// tmpfs and some overlay set-ups report delayed allocation failures
	// (ENOSPC) only at fsync or close: both are checked before the rename.
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("write %s: fsync: %w", w.path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write %s: close: %w", w.path, err)
	}
	if err := os.Rename(tmp.Name(), w.path); err != nil {
		return false, fmt.Errorf("write %s: %w", w.path, err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		// The new file is in place and readers see it; only its durability
		// across a crash is in doubt. Report it all the same.
		return true, fmt.Errorf("write %s: fsync directory: %w", w.path, err)
	}
	return true, nil
}

// holds reports whether the file already contains exactly the pieces. A
// missing file holds nothing; any other read error is reported, because
// writing over a file we cannot read would hide a real problem.
func (w *Writer) holds(bufs [][]byte) (bool, error) {
	// O_NONBLOCK: a named pipe at the path would otherwise block the open
	// until some writer came, hanging the writer (and whoever waits for it,
	// SIGTERM included) for good. Only a regular file is replaced.
	f, err := os.OpenFile(w.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", w.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("read %s: %w", w.path, err)
	}
	if !st.Mode().IsRegular() {
		return false, fmt.Errorf("write %s: not a regular file (%s); refusing to replace it", w.path, st.Mode().Type())
	}
	// The mode is part of what a write establishes: a file left 0600 by
	// someone else is rewritten so the reader can open it.
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	if st.Size() != int64(size) || st.Mode().Perm() != w.perm {
		return false, nil
	}
	// Compared a block at a time: reading the whole file would double the
	// memory a write touches (a 4 MB haproxy.cfg is 4 MB of fresh pages).
	buf := make([]byte, 64<<10)
	pieces := bufs
	var cur []byte
	left := size
	for {
		n, err := f.Read(buf[:min(len(buf), left+1)])
		if n > left {
			return false, nil
		}
		for got := buf[:n]; len(got) > 0; {
			for len(cur) == 0 {
				cur, pieces = pieces[0], pieces[1:]
			}
			k := min(len(cur), len(got))
			if !bytes.Equal(got[:k], cur[:k]) {
				return false, nil
			}
			got, cur = got[k:], cur[k:]
		}
		left -= n
		if err == io.EOF {
			return left == 0, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", w.path, err)
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
