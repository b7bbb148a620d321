package atomicfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// doc is a file kept in pieces the way services.Encoded keeps services.yaml:
// a changed piece is a new slice, never an old one modified.
type doc struct{ parts [][]byte }

func (d *doc) edit(r *rand.Rand) {
	switch op := r.IntN(10); {
	case op < 5 && len(d.parts) > 0: // one piece changed, often to the same length
		i := r.IntN(len(d.parts))
		p := bytes.Clone(d.parts[i])
		if len(p) > 0 && r.IntN(2) == 0 {
			p[r.IntN(len(p))] ^= 0x20
		} else {
			p = fmt.Appendf(p[:r.IntN(len(p)+1)], "x%d\n", r.IntN(1000))
		}
		d.parts[i] = p
	case op < 7: // a piece added
		i := r.IntN(len(d.parts) + 1)
		d.parts = slices.Insert(d.parts, i, fmt.Appendf(nil, "service %d\n", r.IntN(1e6)))
	case op < 9 && len(d.parts) > 1: // a piece removed
		i := r.IntN(len(d.parts))
		d.parts = slices.Delete(d.parts, i, i+1)
	default: // everything encoded again: same bytes, new slices
		for i := range d.parts {
			d.parts[i] = bytes.Clone(d.parts[i])
		}
	}
}

func (d *doc) bufs() [][]byte { return slices.Clone(d.parts) }

func newDoc(r *rand.Rand, n int) *doc {
	d := &doc{}
	for i := 0; i < n; i++ {
		d.parts = append(d.parts, fmt.Appendf(nil, "- name: app-%d\n  port: %d\n%s", i, 10000+i, bytes.Repeat([]byte("  server: 10.0.0.1:31000\n"), r.IntN(5))))
	}
	return d
}

type tally struct {
	mu  sync.Mutex
	how map[string]int
	why map[string]int
}

func observe(s *Slots) *tally {
	t := &tally{how: map[string]int{}, why: map[string]int{}}
	s.Observe = func(how, why string, _ int64) {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.how[how]++
		if why != "" {
			t.why[why]++
		}
	}
	return t
}

func joined(bufs [][]byte) []byte { return bytes.Join(bufs, nil) }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// After any sequence of changes the target holds exactly the last pieces
// given, and once both slots are known every write is done in place.
func TestSlotsHoldWhatWasWritten(t *testing.T) {
	for _, fs := range []string{"disk", "tmpfs"} {
		t.Run(fs, func(t *testing.T) {
			dir := t.TempDir()
			if fs == "tmpfs" {
				dir = mountTmpfs(t, "size=64m")
			}
			path := filepath.Join(dir, "services.yaml")
			s := NewSlots(path, 0o644)
			seen := observe(s)
			r := rand.New(rand.NewPCG(1, 2))
			d := newDoc(r, 300)
			for step := 0; step < 400; step++ {
				bufs := d.bufs()
				changed, err := s.WriteBuffers(bufs, step%5 == 0)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if got := readFile(t, path); !bytes.Equal(got, joined(bufs)) {
					t.Fatalf("step %d: target holds %d bytes, not the %d written (changed=%v)", step, len(got), len(joined(bufs)), changed)
				}
				st, _ := os.Stat(path)
				if st.Mode().Perm() != 0o644 {
					t.Fatalf("step %d: mode %v", step, st.Mode())
				}
				d.edit(r)
			}
			if seen.how["new_file"] != 2 || seen.how["in_place"] < 300 {
				t.Errorf("writes: %v (why %v), want the two slots made once and then only rewrites in place", seen.how, seen.why)
			}
			// The same content again, compared: nothing written.
			if _, err := s.WriteBuffers(d.bufs(), true); err != nil {
				t.Fatal(err)
			}
			ino := inode(t, path)
			if changed, err := s.WriteBuffers(d.bufs(), true); err != nil || changed {
				t.Errorf("the same pieces again: changed=%v err=%v, want nothing written", changed, err)
			}
			if inode(t, path) != ino {
				t.Error("the same pieces again replaced the file")
			}
		})
	}
}

// A reader that still has a slot open from when it was the target keeps
// reading the bytes it opened: that slot is replaced by a new file, not
// rewritten under it. The same for a reader that mapped the file.
func TestSlotsReaderKeepsItsVersion(t *testing.T) {
	for _, mapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "services.yaml")
			s := NewSlots(path, 0o644)
			seen := observe(s)
			r := rand.New(rand.NewPCG(3, 4))
			d := newDoc(r, 2000)
			write := func() []byte {
				t.Helper()
				if _, err := s.WriteBuffers(d.bufs(), false); err != nil {
					t.Fatal(err)
				}
				d.edit(r)
				return readFile(t, path)
			}
			write()
			want := write() // both slots exist now; the target is one of them
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var held []byte
			if mapped {
				st, _ := f.Stat()
				held, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
				if err != nil {
					t.Fatal(err)
				}
				defer syscall.Munmap(held)
				f.Close() // the mapping alone keeps the file
			}
			for range 6 {
				write()
			}
			if mapped {
				if !bytes.Equal(held, want) {
					t.Fatal("the mapped version changed under its reader")
				}
			} else {
				got := make([]byte, len(want)+1)
				n, _ := f.ReadAt(got, 0)
				if !bytes.Equal(got[:n], want) {
					t.Fatalf("the reader's version changed: %d bytes, want %d", n, len(want))
				}
			}
			// Of the 6 writes, the held slot's first turn makes it a new
			// file (the reader keeps the old one); from then on the new
			// file, which nobody holds, is rewritten in place like the other.
			if seen.why["busy"] != 1 || seen.how["in_place"] != 5 {
				t.Errorf("writes %v, why %v: want the held slot replaced once and every other write in place", seen.how, seen.why)
			}
		})
	}
}

// Readers opening the slots themselves, over and over, while the writer
// rewrites them: every read is one whole version, never a mix. An open
// that comes during a rewrite waits for it (the lease); a slot still open
// when its turn comes is replaced instead.
func TestSlotsConcurrentReadersSeeWholeVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	s := NewSlots(path, 0o644)
	seen := observe(s)
	r := rand.New(rand.NewPCG(5, 6))
	d := newDoc(r, 3000)
	var versions sync.Map // string(content) → true
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, torn atomic.Int64
	sp := s.SlotPaths()
	readers := []string{sp[0], sp[1], path}
	for _, p := range readers {
		wg.Go(func() {
			for !stop.Load() {
				b, err := os.ReadFile(p)
				if err != nil {
					continue // not there yet
				}
				reads.Add(1)
				if _, ok := versions.Load(string(b)); !ok {
					torn.Add(1)
					t.Errorf("%s: read %d bytes that are no version written", filepath.Base(p), len(b))
				}
			}
		})
	}
	for range 300 {
		bufs := d.bufs()
		versions.Store(string(joined(bufs)), true) // before any byte of it is written
		if _, err := s.WriteBuffers(bufs, false); err != nil {
			t.Fatal(err)
		}
		d.edit(r)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads; writes %v, why %v", reads.Load(), seen.how, seen.why)
	if reads.Load() == 0 {
		t.Fatal("no read happened")
	}
}

// A slot changed by someone else (edited, replaced, made a link to the
// target) is written anew rather than patched from what it no longer holds.
func TestSlotsChangedBehindTheirBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	s := NewSlots(path, 0o644)
	seen := observe(s)
	r := rand.New(rand.NewPCG(7, 8))
	d := newDoc(r, 200)
	write := func() {
		t.Helper()
		bufs := d.bufs()
		if _, err := s.WriteBuffers(bufs, false); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); !bytes.Equal(got, joined(bufs)) {
			t.Fatalf("target holds %d bytes, not the %d written", len(got), len(joined(bufs)))
		}
		d.edit(r)
	}
	write()
	write()
	slots := s.SlotPaths()
	tamper := []func(p string){
		func(p string) { // same size, other bytes
			b := readFile(t, p)
			b[0] ^= 1
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt(b[:1], 0)
			f.Close()
		},
		func(p string) { os.Remove(p) },
		func(p string) { os.Remove(p); os.Symlink(path, p) },
		func(p string) { os.Remove(p); syscall.Mkfifo(p, 0o644) },
		func(p string) { os.Chmod(p, 0o600) },
		func(p string) { os.Link(p, filepath.Join(dir, "alias")) },
	}
	for i, f := range tamper {
		before := seen.how["new_file"]
		next := slots[(s.cur+1)%2]
		f(next)
		write()
		if seen.how["new_file"] != before+1 {
			t.Errorf("tamper %d: the slot was not written anew (%v, why %v)", i, seen.how, seen.why)
		}
		os.Remove(filepath.Join(dir, "alias"))
		write()
		write()
	}
	// The target replaced by hand: the next write puts the file back.
	os.WriteFile(path, []byte("by hand\n"), 0o644)
	write()
	write()
}

// On a file system without hard links every write is Writer's.
func TestSlotsWithoutHardLinks(t *testing.T) {
	old := link
	link = func(string, string) error {
		return &os.LinkError{Op: "link", Err: syscall.EPERM}
	}
	t.Cleanup(func() { link = old })
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	s := NewSlots(path, 0o644)
	d := newDoc(rand.New(rand.NewPCG(9, 10)), 50)
	for i := range 5 {
		d.parts[0] = fmt.Appendf(nil, "v%d\n", i)
		bufs := d.bufs()
		if _, err := s.WriteBuffers(bufs, true); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); !bytes.Equal(got, joined(bufs)) {
			t.Fatalf("write %d: target holds %d bytes, want %d", i, len(got), len(joined(bufs)))
		}
		var st syscall.Stat_t
		syscall.Stat(path, &st)
		if st.Nlink != 1 {
			t.Fatalf("write %d: target has %d links", i, st.Nlink)
		}
	}
	if !s.noLinks {
		t.Error("the refused link was not remembered")
	}
}

// firstDifference agrees with a byte-by-byte compare of the joined pieces,
// however the two are cut and whichever pieces they share.
func FuzzFirstDifference(f *testing.F) {
	f.Add([]byte("abc"), []byte("abd"), uint64(0), uint64(0))
	f.Add([]byte("hello world"), []byte("hello"), uint64(0b1011), uint64(0b11))
	f.Add([]byte(""), []byte("x"), uint64(1), uint64(1))
	f.Add([]byte("same same"), []byte("same same"), uint64(0xff), uint64(0x0f))
	f.Add(bytes.Repeat([]byte("a"), 1500), append(bytes.Repeat([]byte("a"), 1400), 'b'), uint64(1<<9), uint64(1<<3))
	f.Fuzz(func(t *testing.T, x, y []byte, cutX, cutY uint64) {
		// Pieces of x; b reuses x's piece wherever y has the same bytes at
		// the same offset and cut, so identity-equal pieces occur.
		split := func(s []byte, cut uint64) [][]byte {
			var out [][]byte
			start := 0
			for i := 1; i <= len(s); i++ {
				if i == len(s) || cut&(1<<(i%64)) != 0 {
					out = append(out, s[start:i])
					start = i
				}
			}
			if cut&1 != 0 {
				out = append(out, nil)
			}
			return out
		}
		a, b := split(x, cutX), split(y, cutY)
		var off int
		for j, p := range b {
			// share a's piece when it holds the same bytes at the same offset
			ao := 0
			for _, q := range a {
				if ao == off && bytes.Equal(q, p) && len(p) > 0 {
					b[j] = q
				}
				ao += len(q)
			}
			off += len(p)
		}
		got, i, skip := firstDifference(a, b)
		ja, jb := joined(a), joined(b)
		want := 0
		for want < len(ja) && want < len(jb) && ja[want] == jb[want] {
			want++
		}
		if got != int64(want) {
			t.Fatalf("first difference %d, want %d", got, want)
		}
		// b[i][skip] is the byte at that offset (or the end).
		pos := 0
		for _, p := range b[:i] {
			pos += len(p)
		}
		if pos+skip != want || (i < len(b) && skip > len(b[i])) {
			t.Fatalf("cursor (%d,%d) is at %d, want %d", i, skip, pos+skip, want)
		}
	})
}

// Whoever can write the output directory may plant a link or a named pipe
// at the hidden names Slots keeps beside the target (both slots and the
// ".link" name used for the rename), before the first write or between
// two. A write never goes through a link (the file it points at keeps its
// bytes and mode), never waits on a pipe, and leaves the target whole.
func TestSlotsNeverWriteThroughAPlantedLinkOrPipe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services.yaml")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewSlots(path, 0o644)
	names := []string{s.SlotPaths()[0], s.SlotPaths()[1], filepath.Join(dir, ".services.yaml.link")}
	plant := []func(p string) error{
		func(p string) error { os.Remove(p); return os.Symlink(victim, p) },
		func(p string) error { os.Remove(p); return syscall.Mkfifo(p, 0o644) },
	}
	r := rand.New(rand.NewPCG(9, 10))
	d := newDoc(r, 50)
	for round := range 6 {
		for _, p := range names {
			if err := plant[round%2](p); err != nil {
				t.Fatal(err)
			}
		}
		// Two writes a round: the first after the plant, the second with
		// the other slot known (the in-place path).
		for range 2 {
			bufs := d.bufs()
			done := make(chan error, 1)
			go func() { _, err := s.WriteBuffers(bufs, round == 0); done <- err }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: the write hangs on what was planted", round)
			}
			if got := readFile(t, path); !bytes.Equal(got, joined(bufs)) {
				t.Fatalf("round %d: the target does not hold what was written", round)
			}
			d.edit(r)
		}
	}
	st, err := os.Stat(victim)
	if got := readFile(t, victim); string(got) != "secret\n" || err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the link's target was written or chmod'ed: %q, %v, %v", got, st.Mode(), err)
	}
}

// A rewrite in place that fails part way (here the disk fills while the
// slot grows) returns the error and leaves the target whole; the slot it
// was writing is no half-written file anyone can open by name, and the
// next write, with room again, puts the last pieces in place.
func TestSlotsRewriteFailingPartWay(t *testing.T) {
	dir := mountTmpfs(t, "size=256k")
	path := filepath.Join(dir, "services.yaml")
	s := NewSlots(path, 0o644)
	seen := observe(s)
	piece := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	var versions [][]byte
	write := func(bufs [][]byte) error {
		versions = append(versions, joined(bufs))
		_, err := s.WriteBuffers(bufs, false)
		return err
	}
	for _, c := range []byte("abc") {
		if err := write([][]byte{piece(c, 40<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if seen.how["in_place"] != 1 {
		t.Fatalf("writes %v, want the third in place", seen.how)
	}
	last := readFile(t, path)
	// Leave about 16 KiB free: growing the next slot by 80 KiB fails.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int64(st.Bavail)*st.Bsize <= 16<<10 {
			break
		}
		if _, err := f.Write(piece('f', 4096)); err != nil {
			break
		}
	}
	f.Close()
	next := s.SlotPaths()[(s.cur+1)%2]
	err = write([][]byte{piece('d', 120<<10)})
	if err == nil {
		t.Fatal("a write larger than the disk's room succeeded")
	}
	if seen.how["in_place"] != 1 || seen.how["new_file"] != 2 {
		t.Fatalf("writes %v: want the failing write to have been a rewrite in place", seen.how)
	}
	if got := readFile(t, path); !bytes.Equal(got, last) {
		t.Fatalf("the target changed after a failed write (%d bytes)", len(got))
	}
	if b, err := os.ReadFile(next); err == nil {
		whole := false
		for _, v := range versions[:len(versions)-1] {
			whole = whole || bytes.Equal(b, v)
		}
		if !whole {
			t.Errorf("the slot the failed write was rewriting opens as %d bytes that are no version written", len(b))
		}
	}
	os.Remove(filler)
	bufs := [][]byte{piece('e', 60<<10)}
	if err := write(bufs); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !bytes.Equal(got, joined(bufs)) {
		t.Fatalf("after the disk has room again, the target holds %d bytes, want %d", len(got), len(joined(bufs)))
	}
}

// When the directory fsync after the rename fails, the rename may not be
// on disk: after a crash the target could still be the previous slot. So
// the write reports the file changed (as Writer does) and the previous
// slot is not rewritten in place by the next write — a crash during that
// rewrite would leave a half-written target — but made as a new file.
func TestSlotsDirectoryFsyncFailing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	s := NewSlots(path, 0o644)
	seen := observe(s)
	d := newDoc(rand.New(rand.NewPCG(11, 12)), 100)
	write := func() (bool, error) {
		d.parts[0] = fmt.Appendf(nil, "v%d\n", seen.how["in_place"]+seen.how["new_file"])
		return s.WriteBuffers(d.bufs(), false)
	}
	for range 3 {
		if _, err := write(); err != nil {
			t.Fatal(err)
		}
	}
	old := dirSync
	dirSync = func(string) error { return syscall.EIO }
	changed, err := write()
	dirSync = old
	if err == nil || !changed {
		t.Fatalf("directory fsync failing: changed=%v err=%v, want changed and the error", changed, err)
	}
	if got := readFile(t, path); !bytes.Equal(got, joined(d.parts)) {
		t.Fatal("the target does not hold the write whose directory fsync failed")
	}
	before := seen.how["new_file"]
	if _, err := write(); err != nil {
		t.Fatal(err)
	}
	if seen.how["new_file"] != before+1 {
		t.Errorf("writes %v: the slot that may still be the target on disk was rewritten in place", seen.how)
	}
	if _, err := write(); err != nil {
		t.Fatal(err)
	}
	if seen.how["new_file"] != before+1 {
		t.Errorf("writes %v: once a directory fsync succeeded, writes are in place again", seen.how)
	}
}

// The pieces of a longer file are not kept alive once both slots hold a
// shorter one: neither in the slot's list nor in writev's kept array.
func TestSlotsDoNotKeepOldPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	s := NewSlots(path, 0o644)
	var freed atomic.Int64
	const many = 2000
	func() {
		bufs := make([][]byte, many)
		for i := range bufs {
			bufs[i] = fmt.Appendf(make([]byte, 0, 64), "- name: app-%d\n  port: %d\n%40s\n", i, i, "")
			runtime.AddCleanup(&bufs[i][0], func(struct{}) { freed.Add(1) }, struct{}{})
		}
		for range 2 { // both slots
			if _, err := s.WriteBuffers(bufs, false); err != nil {
				t.Fatal(err)
			}
		}
	}()
	for i := range 2 {
		if _, err := s.WriteBuffers([][]byte{fmt.Appendf(nil, "small %d\n", i)}, false); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if freed.Load() == many {
			break
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
	}
	if n := freed.Load(); n != many {
		t.Errorf("%d of %d old pieces are still kept alive", many-n, many)
	}
	runtime.KeepAlive(s)
}
