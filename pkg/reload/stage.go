package reload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/meltwater/proxymatic/pkg/rundir"
)

// ConfigMode is the mode of every rendered config in the run dir: HAProxy's
// and nginx's masters read theirs as root before they drop privileges;
// pen, which runs as nobody from exec on, reads its own through the group
// (see configFile.gid).
const ConfigMode fs.FileMode = 0o640

// configFile is one live config file. A candidate is written beside it under
// a temporary name, checked by the caller, then renamed into place, so the
// live file only ever holds a config that passed its check.
type configFile struct {
	path string
	// gid, when set (>0), is the group the file is given, so that a proxy
	// running as a user of that group can read it (pen as nobody:nogroup).
	gid int
}

// stage writes data to the candidate path and returns it. The candidate is
// created exclusively, never through a link left at its name (see
// rundir.Create), and its group is set on the open file.
func (c configFile) stage(data []byte) (string, error) {
	tmp := filepath.Join(filepath.Dir(c.path), "."+filepath.Base(c.path)+".new")
	f, err := rundir.Create(tmp, ConfigMode)
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", c.path, err)
	}
	var gerr error
	if c.gid > 0 {
		gerr = f.Chown(-1, c.gid)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(gerr, werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("stage %s: %w", c.path, err)
	}
	return tmp, nil
}

// commit renames the staged candidate into place (rename replaces whatever
// entry is at the live path, a link included, and never follows it).
func (c configFile) commit(tmp string) error {
	if err := os.Rename(tmp, c.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("install %s: %w", c.path, err)
	}
	return nil
}

// discard removes a candidate that failed its check.
func (c configFile) discard(tmp string) { _ = os.Remove(tmp) }

// write stages and commits data without a check (restoring a config that
// passed one before).
func (c configFile) write(data []byte) error {
	tmp, err := c.stage(data)
	if err != nil {
		return err
	}
	return c.commit(tmp)
}

// remove deletes the live file (a pen service that went away).
func (c configFile) remove() {
	if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = err // nothing reads it any more; a leftover is harmless
	}
}
