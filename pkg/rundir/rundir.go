// Package rundir keeps proxymatic-reload's run directory safe for an agent
// running as root, the way sshd refuses loose permissions: the agent writes
// configs, pid files and sockets there, and a user who could plant a
// symbolic link in it could otherwise make root overwrite, chmod or chown
// any file on the host.
//
//   - Prepare creates the run dir when it is missing and never changes the
//     mode of one that exists; as root it refuses a run dir (or a directory
//     above it) that a user other than root can write, and a path to it
//     through a symbolic link such a user can change.
//   - CheckReachable refuses a run dir that the user the proxies drop to
//     (nobody) cannot reach: pen and nginx's workers would fail forever.
//   - Create and Mkdir make entries in it without following a link: a new
//     file is created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW) after the old
//     entry is removed (unlink removes a link, never its target), and modes
//     and owners are set on the opened descriptor (fchmod, fchown).
//
// See README.md for the decisions.
package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DirMode is the mode of a run dir (and its missing parents) that Prepare
// creates: the proxies' unprivileged user must traverse it.
const DirMode = 0o755

// Prepare makes dir (and any missing parent) with DirMode when it does not
// exist; the mode of an existing directory is never changed (RUN_DIR=/tmp
// must not turn /tmp from 1777 into 0755). As root (euid 0) it then
// refuses a dir that a user other than root can write, or that sits under
// a directory such a user could rename it out of.
func Prepare(dir string) error {
	root := os.Geteuid() == 0
	// The links on the way are checked before anything is created: a
	// missing run dir must not be made through another user's link.
	if root {
		if err := checkLinks(dir); err != nil {
			return err
		}
	}
	if err := mkdirAll(dir); err != nil {
		return fmt.Errorf("run dir %s: %w", dir, err)
	}
	if !root {
		return nil
	}
	if err := checkLinks(dir); err != nil {
		return err
	}
	return checkRootOnly(dir)
}

// maxLinks is how many links one path may go through, as the kernel's
// ELOOP limit.
const maxLinks = 40

// checkLinks resolves dir one component at a time, as the kernel does, and
// refuses it when a symbolic link on the way could be changed by a user
// other than root: a link root does not own, or one in a directory such a
// user can write (unless it is sticky: then only the link's owner can
// replace it). The other checks look at the real directory and its
// ancestors only; a link of nobody's at /tmp/proxymatic would pass them
// and still let nobody point the run dir at any root-only directory, at any
// time. A missing component ends the walk: Prepare creates the rest as real
// directories.
func checkLinks(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("run dir %s: %w", dir, err)
	}
	rest := strings.Split(abs, "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		st, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("run dir %s: %s: %w", dir, next, err)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return fmt.Errorf("run dir %s: %w", dir, syscall.ELOOP)
		}
		problem := ""
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
			problem = "owned by " + owner(st) + ", who can point it anywhere"
		} else {
			// The link's directory and every one above it: one another
			// user could write would let them rename it away and put
			// their own in its place (checkRootOnly only sees the real
			// directory's ancestors, not where the links are).
			for d := cur; problem == ""; d = filepath.Dir(d) {
				if dst, err := os.Lstat(d); err == nil {
					if p := loose(dst, true); p != "" {
						problem = "under " + d + ", which is " + p + " (owner " + owner(dst) + ", mode " + modeString(dst) + "): another user can replace the link"
					}
				}
				if d == filepath.Dir(d) {
					break
				}
			}
		}
		if problem != "" {
			return fmt.Errorf("run dir %s goes through the link %s, %s; the agent runs as root and would write its configs and pid files wherever it points. Fix: use the real directory as --run-dir (RUN_DIR), or a link only root can change",
				dir, next, problem)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("run dir %s: %s: %w", dir, next, err)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return nil
}

// mkdirAll creates the missing directories of dir one at a time, each with
// DirMode set on its descriptor (the umask would narrow a plain mkdir, and
// a chmod by name could follow a link put in its place).
func mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("not a directory")
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
				return nil
			}
		}
		return err
	}
	return setDir(dir, DirMode, -1, -1)
}

// checkRootOnly refuses dir when anyone but root can write it or an
// ancestor (a sticky, root-owned ancestor such as /tmp is fine: nobody
// else can rename an entry root owns in it).
func checkRootOnly(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("run dir %s: %w", dir, err)
	}
	st, err := os.Lstat(real)
	if err != nil {
		return fmt.Errorf("run dir %s: %w", dir, err)
	}
	if problem := loose(st, false); problem != "" {
		return fmt.Errorf("run dir %s is %s (owner %s, mode %s): the agent runs as root and writes configs and pid files there, so another user could make it overwrite any file through a link. Fix: chown root %s && chmod go-w %s, or choose another --run-dir (RUN_DIR)",
			shown(dir, real), problem, owner(st), modeString(st), real, real)
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		st, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("run dir %s: %s: %w", dir, d, err)
		}
		if problem := loose(st, true); problem != "" {
			return fmt.Errorf("run dir %s is under %s, which is %s (owner %s, mode %s): another user could replace the run dir. Fix: chown root %s && chmod go-w %s, or choose another --run-dir (RUN_DIR)",
				shown(dir, real), d, problem, owner(st), modeString(st), d, d)
		}
		if d == "/" || d == filepath.Dir(d) {
			return nil
		}
	}
}

// loose says how a directory is open to users other than root, "" when it
// is not.
func loose(st fs.FileInfo, ancestor bool) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if sys.Uid != 0 {
		return "owned by a user other than root"
	}
	if st.Mode().Perm()&0o022 == 0 {
		return ""
	}
	if ancestor && st.Mode()&fs.ModeSticky != 0 {
		return ""
	}
	if st.Mode().Perm()&0o002 != 0 {
		return "writable by every user"
	}
	return "writable by its group"
}

// CheckReachable reports an error naming dir, the user and the fix when
// the user (uid, gid, no supplementary groups: how pen is started) cannot
// traverse every directory from / down to dir. who says what runs as that
// user ("pen and nginx's workers").
func CheckReachable(dir, userName string, uid, gid uint32, who string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("run dir %s: %w", dir, err)
	}
	var chain []string
	for d := real; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == "/" || d == filepath.Dir(d) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("run dir %s: %s: %w", dir, d, err)
		}
		if !canSearch(st, uid, gid) {
			return fmt.Errorf("run dir %s: user %s (uid %d), which %s run as, cannot reach it: %s is mode %s, owner %s. Fix: chmod o+x %s (every directory down to the run dir must be searchable by %s), or choose a --run-dir (RUN_DIR) such as /var/run/proxymatic",
				shown(dir, real), userName, uid, who, d, modeString(st), owner(st), d, userName)
		}
	}
	return nil
}

// canSearch applies the permission bits the kernel would for uid/gid.
func canSearch(st fs.FileInfo, uid, gid uint32) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := st.Mode().Perm()
	switch {
	case uid == 0:
		return true
	case sys.Uid == uid:
		return perm&0o100 != 0
	case sys.Gid == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// Create creates path as a new, empty regular file open for writing, with
// mode perm (set on the descriptor, so the umask does not narrow it). An
// old entry at path is removed first — the entry itself: a link planted
// there is unlinked, its target never touched — and the file is created
// with O_EXCL|O_NOFOLLOW, so a link that reappears in between makes Create
// fail rather than follow it.
func Create(path string, perm fs.FileMode) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// Mkdir makes dir a real directory with mode perm owned by uid:gid (-1
// keeps either), creating it when missing. An entry that is not a
// directory (a link planted in its place) is removed first, and the mode
// and owner are set on a descriptor opened with O_NOFOLLOW: never through a
// link.
func Mkdir(dir string, perm fs.FileMode, uid, gid int) error {
	st, err := os.Lstat(dir)
	if err == nil && !st.IsDir() {
		if err := os.Remove(dir); err != nil {
			return err
		}
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return setDir(dir, perm, uid, gid)
}

// setDir sets a directory's mode and owner through a descriptor that
// refuses to follow a link.
func setDir(dir string, perm fs.FileMode, uid, gid int) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.Chmod(perm)
}

// RealDir reports an error when path exists and is not a real directory
// (a link to one included).
func RealDir(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", path, st.Mode().Type())
	}
	return nil
}

func shown(dir, real string) string {
	if dir == real {
		return dir
	}
	return dir + " (" + real + ")"
}

func owner(st fs.FileInfo) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "?"
	}
	name := strconv.FormatUint(uint64(sys.Uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username + " (uid " + name + ")"
	} else {
		name = "uid " + name
	}
	return name
}

func modeString(st fs.FileInfo) string {
	m := uint32(st.Mode().Perm())
	if st.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	if st.Mode()&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if st.Mode()&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	return "0" + strings.TrimPrefix(strconv.FormatUint(uint64(m), 8), "0")
}
