package rundir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meltwater/proxymatic/internal/testbin"
)

const nobody = 65534

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

// base is a root-owned 0755 directory for a test's run dirs (t.TempDir is
// 0700, and its parents are root's).
func base(t *testing.T) string {
	t.Helper()
	testbin.RequireRoot(t, "this test")
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestPrepareCreatesMissingDirs(t *testing.T) {
	b := base(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(b, "a", "run")
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(b, "a"), dir} {
		if m := mode(t, d); !m.IsDir() || m.Perm() != DirMode {
			t.Errorf("%s: mode %v, want a directory %v whatever the umask", d, m, os.FileMode(DirMode))
		}
	}
}

func TestPrepareNeverChangesAnExistingMode(t *testing.T) {
	b := base(t)
	for _, m := range []os.FileMode{0o700, 0o750, 0o711} {
		dir := filepath.Join(b, m.String())
		if err := os.Mkdir(dir, m); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, m)
		if err := Prepare(dir); err != nil {
			t.Errorf("%v: %v", m, err)
		}
		if got := mode(t, dir).Perm(); got != m {
			t.Errorf("mode %v became %v", m, got)
		}
	}
}

func TestPrepareRefusesDirsOthersCanWrite(t *testing.T) {
	b := base(t)
	cases := map[string]func(dir string){
		"world-writable and sticky": func(dir string) { os.Chmod(dir, os.ModeSticky|0o777) },
		"group-writable":            func(dir string) { os.Chmod(dir, 0o775) },
		"owned by nobody":           func(dir string) { os.Chown(dir, nobody, nobody) },
	}
	for name, loosen := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(b, strings.ReplaceAll(name, " ", "_"))
			os.Mkdir(dir, 0o755)
			loosen(dir)
			before := mode(t, dir)
			err := Prepare(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range []string{dir, "owner", "mode", "Fix"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if after := mode(t, dir); after != before {
				t.Errorf("mode changed from %v to %v", before, after)
			}
		})
	}
	// Under a directory anyone can write (not sticky): another user could
	// rename the run dir away and put their own in its place.
	open := filepath.Join(b, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if err := Prepare(filepath.Join(open, "run")); err == nil || !strings.Contains(err.Error(), "is under "+open) {
		t.Errorf("under a world-writable dir: %v", err)
	}
	// A sticky one (like /tmp) is fine: its entries are their owners'.
	sticky := filepath.Join(b, "sticky")
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, os.ModeSticky|0o777)
	if err := Prepare(filepath.Join(sticky, "run")); err != nil {
		t.Errorf("under a sticky dir: %v", err)
	}
}

func TestCheckReachable(t *testing.T) {
	b := base(t)
	closed := filepath.Join(b, "closed")
	os.Mkdir(closed, 0o700)
	os.Chmod(closed, 0o700)
	dir := filepath.Join(closed, "run")
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	err := CheckReachable(dir, "nobody", nobody, nobody, "pen and nginx's workers")
	if err == nil {
		t.Fatal("nobody reaches a dir under a 0700 one")
	}
	for _, want := range []string{dir, "user nobody", closed, "chmod o+x " + closed} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	os.Chmod(closed, 0o711)
	if err := CheckReachable(dir, "nobody", nobody, nobody, "pen"); err != nil {
		t.Errorf("0711: %v", err)
	}
	// Group search is enough for a member of the group.
	os.Chmod(closed, 0o710)
	os.Chown(closed, 0, nobody)
	if err := CheckReachable(dir, "nobody", nobody, nobody, "pen"); err != nil {
		t.Errorf("group search: %v", err)
	}
}

// A link planted where a file is created: the link goes, its target is
// neither written nor chmod'ed.
func TestCreateNeverFollowsALink(t *testing.T) {
	b := base(t)
	target := filepath.Join(b, "shadow")
	if err := os.WriteFile(target, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(b, ".haproxy.cfg.new")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, err := Create(link, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	f.Close()
	if got, _ := os.ReadFile(target); string(got) != "root only\n" {
		t.Errorf("link target overwritten: %q", got)
	}
	if m := mode(t, target).Perm(); m != 0o600 {
		t.Errorf("link target chmod'ed to %v", m)
	}
	if m := mode(t, link); !m.IsRegular() || m.Perm() != 0o640 {
		t.Errorf("created %v, want a regular file 0640", m)
	}
}

// A link planted where a directory is made (pen/ctl): never chown'ed
// through; a real directory takes its place.
func TestMkdirNeverFollowsALink(t *testing.T) {
	b := base(t)
	target := filepath.Join(b, "rootonly")
	os.Mkdir(target, 0o700)
	os.Chmod(target, 0o700)
	ctl := filepath.Join(b, "ctl")
	if err := os.Symlink(target, ctl); err != nil {
		t.Fatal(err)
	}
	if err := Mkdir(ctl, 0o700, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Lstat(target)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || st.Mode().Perm() != 0o700 {
		t.Errorf("link target changed: uid %d mode %v", sys.Uid, st.Mode())
	}
	st, _ = os.Lstat(ctl)
	if sys := st.Sys().(*syscall.Stat_t); !st.IsDir() || sys.Uid != nobody || st.Mode().Perm() != 0o700 {
		t.Errorf("ctl: %v uid %d", st.Mode(), sys.Uid)
	}
}

// A run dir reached through a link another user can change is theirs to
// point anywhere: RUN_DIR=/tmp/proxymatic, with a link of nobody's at that
// name in sticky /tmp, made the agent write its configs into the link's
// root-only target. The real directory alone passes every other check.
func TestPrepareRefusesLinksOthersCanChange(t *testing.T) {
	b := base(t)
	target := filepath.Join(b, "target")
	if err := os.Mkdir(target, 0o711); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(b, "sticky")
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, os.ModeSticky|0o777)
	open := filepath.Join(b, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)

	// A link owned by nobody in a sticky directory: nobody can replace it.
	theirs := filepath.Join(sticky, "theirs")
	if err := os.Symlink(target, theirs); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// A link of root's in a directory anyone can write (not sticky).
	inOpen := filepath.Join(open, "link")
	if err := os.Symlink(target, inOpen); err != nil {
		t.Fatal(err)
	}
	// A link of root's in a root-only directory under one anyone can write
	// (not sticky): the directory holding it can be renamed away.
	deep := filepath.Join(open, "deep")
	os.Mkdir(deep, 0o755)
	underOpen := filepath.Join(deep, "link")
	if err := os.Symlink(target, underOpen); err != nil {
		t.Fatal(err)
	}
	// A link of root's, relative, leading through nobody's link.
	chained := filepath.Join(b, "chained")
	if err := os.Symlink("sticky/theirs", chained); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, link string }{
		{theirs, theirs},
		{filepath.Join(theirs, "run"), theirs},
		{inOpen, inOpen},
		{underOpen, underOpen},
		{chained, theirs},
	} {
		err := Prepare(c.dir)
		if err == nil {
			t.Errorf("%s: accepted", c.dir)
			continue
		}
		for _, want := range []string{c.dir, "link " + c.link, "Fix"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %q", c.dir, err, want)
			}
		}
	}

	if _, err := os.Lstat(filepath.Join(target, "run")); err == nil {
		t.Error("a missing run dir was created through nobody's link")
	}

	// Links only root can change are fine (/var/run -> /run is one): in a
	// root-only directory, or root's own in a sticky one.
	ours := filepath.Join(b, "ours")
	if err := os.Symlink("target", ours); err != nil {
		t.Fatal(err)
	}
	rootsInSticky := filepath.Join(sticky, "roots")
	if err := os.Symlink(target, rootsInSticky); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{ours, filepath.Join(ours, "run"), rootsInSticky, filepath.Join(b, "x", "..", "ours")} {
		if err := Prepare(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}
