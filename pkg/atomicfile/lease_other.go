//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

// lease is Linux's (F_SETLEASE): elsewhere a slot is never rewritten in
// place, only replaced by a new file.
func lease(*os.File) error { return errors.ErrUnsupported }

func unlease(*os.File) {}

func fdatasync(f *os.File) error { return f.Sync() }

// idOf: without leases a slot is never rewritten in place, so what it
// holds need not be known.
func idOf(os.FileInfo) (fileID, bool) { return fileID{}, false }
