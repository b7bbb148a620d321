package reload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// configFile is one live config file. A candidate is written beside it under
// a temporary name, checked by the caller, then renamed into place, so the
// live file only ever holds a config that passed its check.
type configFile struct {
	path string
}

// stage writes data to the candidate path and returns it.
func (c configFile) stage(data []byte) (string, error) {
	tmp := filepath.Join(filepath.Dir(c.path), "."+filepath.Base(c.path)+".new")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("stage %s: %w", c.path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("stage %s: %w", c.path, err)
	}
	// The proxies may read it after dropping privileges.
	if err := os.Chmod(tmp, 0o644); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("stage %s: %w", c.path, err)
	}
	return tmp, nil
}

// commit renames the staged candidate into place.
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
