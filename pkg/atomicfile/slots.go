package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Slots replaces one large file that changes a little at a time (the
// daemon's services.yaml: 4.4 MB at 10,000 services, one service changed
// per Marathon event) with the same guarantee as Writer — a reader sees the
// old file or the new one, whole — at a fraction of its cost.
//
// Writer makes a new file each time: the kernel allocates and fills fresh
// pages for all of it, and frees the old file's pages at the rename. That,
// not the copy, is most of a write's CPU (docs/performance.md, issue 14).
// Slots keeps two files beside the target, ".<name>.slot-0" and
// ".<name>.slot-1", and the target is a hard link to one of them. A write
// rewrites the other one in place from its first changed byte — its pages
// are already in the page cache — then links it over the target with a
// rename, and the directory is fsynced as Writer does.
//
// Rewriting a file in place is safe only if nobody reads it meanwhile. The
// slot being rewritten is not the target (readers that open the target get
// the other slot), but a reader may still hold it from when it was, or be
// in the middle of opening it. So the rewrite happens under a write lease
// (fcntl F_SETLEASE): the kernel grants it only when no one else has the
// file open or mapped, and anyone who opens it during the rewrite waits in
// open until the lease is released, by which time the slot is whole. When
// the lease is refused (a reader still holds the slot, a file system
// without leases, a slot owned by another user) or the slot is not what
// this Writer last left there (size, inode, mtime, link count or mode
// differ: someone else touched it), the slot is written as a new file, the
// way Writer writes, and renamed over the slot's name: whoever holds the
// old one keeps it, intact. A file system that refuses hard links makes
// every write Writer's.
//
// What the lease does not cover, by the kernel's design: a reader that
// spliced or sendfile'd the file and closed it while those pages are still
// in a pipe or a socket's send queue (they are the page cache's own pages,
// which the rewrite changes; every reader here reads with read(2)); a
// reader kept waiting in open longer than /proc/sys/fs/lease-break-time
// (45 s), which the kernel then lets in even though the rewrite, stalled
// in fdatasync on a dying disk, is not done; a reader on another machine
// through a network or FUSE file system that grants leases locally. And a
// slot edited by someone else to the same size within one timestamp tick
// is not seen as changed where the file system's mtime is coarse (ext4 and
// tmpfs since Linux 6.13 give a fresh fine-grained mtime once the old one
// was looked at, as record does).
//
// What a slot holds is known by the pieces last written to it, compared by
// identity: a piece given to WriteBuffers must never change afterwards
// (services.Encoded makes a new piece for every change). After a restart
// nothing is known, and each slot is first written whole.
type Slots struct {
	w       *Writer // the reference write, and the compare with the target
	slot    [2]slot
	cur     int  // the slot linked at the target, -1 when none is
	noLinks bool // the file system refused a hard link
	vs      vectors

	// Observe, when set, is told how each write went: "in_place" with the
	// bytes rewritten, "new_file" with the file's size and why the slot
	// was not rewritten in place.
	Observe func(how, why string, bytes int64)
}

// fileID is what tells that a slot is still the file this Writer left.
type fileID struct {
	ino, dev, nlink uint64
	mtime           int64 // ns
}

// slot is what this Writer last left in one slot file.
type slot struct {
	known  bool
	pieces [][]byte // its content, piece by piece (by identity)
	size   int64
	id     fileID
}

// NewSlots returns a Slots for path; the file gets exactly perm, as with New.
func NewSlots(path string, perm fs.FileMode) *Slots {
	return &Slots{w: New(path, perm), cur: -1}
}

// Path is the file the Writer replaces.
func (s *Slots) Path() string { return s.w.path }

// SlotPaths are the two files beside the target that hold its content.
func (s *Slots) SlotPaths() [2]string { return [2]string{s.slotPath(0), s.slotPath(1)} }

func (s *Slots) slotPath(i int) string {
	return filepath.Join(filepath.Dir(s.w.path), fmt.Sprintf(".%s.slot-%d", filepath.Base(s.w.path), i))
}

// Write is WriteBuffers of a copy of data: data itself may be reused by
// the caller, so it cannot be compared by identity later.
func (s *Slots) Write(data []byte) (changed bool, err error) {
	return s.WriteBuffers([][]byte{bytes.Clone(data)}, true)
}

// WriteBuffers makes the file hold the pieces, as Writer.WriteBuffers
// does (compare true reads the target first and writes nothing when it
// already holds them). The pieces are kept: none may change afterwards.
func (s *Slots) WriteBuffers(bufs [][]byte, compare bool) (changed bool, err error) {
	if compare {
		same, err := s.w.holds(bufs)
		if err != nil || same {
			return false, err
		}
	}
	if s.noLinks {
		return s.w.WriteBuffers(bufs, false)
	}
	if err := os.MkdirAll(filepath.Dir(s.w.path), 0o755); err != nil {
		return false, fmt.Errorf("write %s: %w", s.w.path, err)
	}
	n := 0
	if s.cur == 0 {
		n = 1
	}
	if err := s.fill(n, bufs); err != nil {
		return false, err
	}
	err = s.publish(n)
	if errors.Is(err, errNoLinks) {
		s.noLinks = true
		s.forget()
		return s.w.WriteBuffers(bufs, false)
	}
	if err != nil {
		// Replaced but the directory fsync failed: changed, as Writer says.
		return s.cur == n, err
	}
	return true, nil
}

// forget drops what the slots are known to hold (and the pieces kept).
func (s *Slots) forget() {
	s.slot = [2]slot{}
	s.cur = -1
}

// fill makes slot n hold bufs: in place when it can, as a new file otherwise.
func (s *Slots) fill(n int, bufs [][]byte) error {
	sl := &s.slot[n]
	why := "unknown"
	if sl.known {
		written, reason, err := s.rewrite(n, bufs)
		if err != nil {
			// Part of the slot may be written: what it holds is unknown
			// now. The target is another file and was not touched.
			sl.known = false
			return fmt.Errorf("write %s: %w", s.w.path, err)
		}
		if reason == "" {
			s.observe("in_place", "", written)
			return nil
		}
		why = reason
	}
	sl.known = false
	size, err := s.fresh(n, bufs)
	if err != nil {
		return fmt.Errorf("write %s: %w", s.w.path, err)
	}
	s.observe("new_file", why, size)
	return nil
}

func (s *Slots) observe(how, why string, n int64) {
	if s.Observe != nil {
		s.Observe(how, why, n)
	}
}

// rewrite overwrites slot n in place from the first byte that differs.
// A non-empty reason says why it was not done (nothing was written then).
func (s *Slots) rewrite(n int, bufs [][]byte) (written int64, reason string, err error) {
	sl := &s.slot[n]
	// O_NOFOLLOW and O_NONBLOCK: a symlink or a named pipe put in the
	// slot's place is not written through, nor waited on; the new file
	// renamed over the name replaces it.
	f, err := os.OpenFile(s.slotPath(n), os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, "unopenable", nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "unopenable", nil
	}
	if !sl.matches(st, s.w.perm) {
		return 0, "changed", nil
	}
	if err := lease(f); err != nil {
		return 0, "busy", nil
	}
	// From here until the lease is released, no one else can open the
	// slot: whoever tries waits in open.
	defer unlease(f)
	// A rewrite that fails part way (ENOSPC growing the file, EIO) leaves
	// the slot neither version. Its name goes while the lease still holds
	// off openers, so none opens it by name afterwards; the next write
	// makes the slot anew.
	failed := true
	defer func() {
		if failed {
			_ = os.Remove(s.slotPath(n))
		}
	}()
	off, i, skip := firstDifference(sl.pieces, bufs)
	size := total(bufs)
	if off < size {
		if _, err := f.Seek(off, 0); err != nil {
			return 0, "", err
		}
		if err := writeAll(f, bufs[i:], skip, &s.vs); err != nil {
			return 0, "", err
		}
	}
	if size < sl.size {
		if err := f.Truncate(size); err != nil {
			return 0, "", err
		}
	}
	// The data (and the new size) must be on disk before the rename that
	// makes it the target is, as Writer's fsync before its rename.
	if err := fdatasync(f); err != nil {
		return 0, "", fmt.Errorf("fdatasync: %w", err)
	}
	failed = false
	if err := sl.record(f, bufs); err != nil {
		return 0, "", err
	}
	return size - off, "", nil
}

// fresh writes bufs to a new file and renames it over slot n's name.
func (s *Slots) fresh(n int, bufs [][]byte) (int64, error) {
	dir := filepath.Dir(s.w.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.w.path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		_ = tmp.Close()
		if !renamed {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := writeAll(tmp, bufs, 0, &s.vs); err != nil {
		return 0, err
	}
	if err := tmp.Chmod(s.w.perm); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.slotPath(n)); err != nil {
		return 0, err
	}
	renamed = true
	sl := &s.slot[n]
	if err := sl.record(tmp, bufs); err != nil {
		return 0, err
	}
	return sl.size, nil
}

// link is os.Link; a test stands in a file system without hard links.
var link = os.Link

// errNoLinks is a file system that does not do hard links.
var errNoLinks = errors.New("hard links not supported")

// publish links slot n over the target: a link under a temporary name,
// renamed over the target (rename is atomic; link over an existing name
// is not possible), then the directory fsynced as Writer does.
func (s *Slots) publish(n int) error {
	dir := filepath.Dir(s.w.path)
	tmp := filepath.Join(dir, "."+filepath.Base(s.w.path)+".link")
	_ = os.Remove(tmp) // left by a crash between link and rename
	if err := link(s.slotPath(n), tmp); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && (errors.Is(le.Err, syscall.EPERM) || errors.Is(le.Err, syscall.ENOTSUP) ||
			errors.Is(le.Err, syscall.EOPNOTSUPP) || errors.Is(le.Err, syscall.ENOSYS) || errors.Is(le.Err, syscall.EXDEV)) {
			return errNoLinks
		}
		return fmt.Errorf("write %s: %w", s.w.path, err)
	}
	if err := os.Rename(tmp, s.w.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", s.w.path, err)
	}
	s.cur = n
	if err := dirSync(dir); err != nil {
		// The rename may not be on disk: after a crash the target can
		// still be the other slot, so that slot must not be rewritten in
		// place next — it is made anew, which leaves its old file whole.
		s.slot[1-n].known = false
		return fmt.Errorf("write %s: fsync directory: %w", s.w.path, err)
	}
	return nil
}

// dirSync is syncDir; a test stands in a directory fsync that fails.
var dirSync = syncDir

// matches reports whether the open slot is still the file this Writer left
// there, unlinked from the target.
func (sl *slot) matches(st fs.FileInfo, perm fs.FileMode) bool {
	id, ok := idOf(st)
	if !ok || !st.Mode().IsRegular() || st.Mode().Perm() != perm {
		return false
	}
	// Two links: the slot is also the target (not where this Writer
	// thought it was); readers opening the target would see the rewrite.
	return id.nlink == 1 && id.ino == sl.id.ino && id.dev == sl.id.dev &&
		id.mtime == sl.id.mtime && st.Size() == sl.size
}

// record notes what slot f now holds.
func (sl *slot) record(f *os.File, bufs [][]byte) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	id, ok := idOf(st)
	if !ok {
		return nil // not known: the next write is a new file
	}
	// The old list's tail is cleared: a shorter file must not keep the
	// pieces of a longer one alive in the array's spare capacity.
	if len(bufs) < cap(sl.pieces) {
		clear(sl.pieces[len(bufs):cap(sl.pieces)])
	}
	sl.pieces = append(sl.pieces[:0], bufs...)
	sl.size = st.Size()
	sl.id = id
	sl.known = sl.size == total(bufs)
	return nil
}

func total(bufs [][]byte) int64 {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	return n
}

// firstDifference is the offset of the first byte where the content of a
// and b differ (the length of the shorter one when one is the other's
// prefix, their length when they are equal), with where that byte is in b:
// bufs[i][skip]. A piece of b that is the same slice as a's at the same
// offset is skipped without reading it.
func firstDifference(a, b [][]byte) (off int64, i, skip int) {
	ai, ao := 0, 0
	for {
		for ai < len(a) && ao == len(a[ai]) {
			ai, ao = ai+1, 0
		}
		for i < len(b) && skip == len(b[i]) {
			i, skip = i+1, 0
		}
		if ai == len(a) || i == len(b) {
			return off, i, skip
		}
		x, y := a[ai][ao:], b[i][skip:]
		if ao == 0 && skip == 0 && len(x) == len(y) && &x[0] == &y[0] {
			off += int64(len(y))
			ai, i = ai+1, i+1
			continue
		}
		k := min(len(x), len(y))
		p := commonPrefix(x[:k], y[:k])
		off += int64(p)
		ao, skip = ao+p, skip+p
		if p < k {
			return off, i, skip
		}
	}
}

// commonPrefix is the length of the common prefix of two equal-length
// slices, found a block at a time with bytes.Equal (memeq).
func commonPrefix(x, y []byte) int {
	const block = 512
	p := 0
	for p+block <= len(x) && bytes.Equal(x[p:p+block], y[p:p+block]) {
		p += block
	}
	for p < len(x) && x[p] == y[p] {
		p++
	}
	return p
}
