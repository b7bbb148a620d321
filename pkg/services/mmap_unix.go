//go:build unix

package services

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
)

// mapMin is the size from which ReadFile maps a file instead of reading it.
const mapMin = 1 << 20

// readMapped parses a large regular file through a read-only shared mapping
// of it, and reports whether it did. Reading 4 MB into a new buffer cost a
// reload dry run ~20 ms at 10,000 services, nearly all of it the kernel
// handing the process fresh pages; the mapping uses the page cache's.
// Parse keeps nothing of its input (every string is a copy), so the
// mapping is released before returning.
//
// A writer that truncates the file in place while it is mapped makes the
// pages past the new end fault (SIGBUS). With SetPanicOnFault that is a
// panic, recovered here into an error: the caller keeps what it had, as
// for any unreadable file. sync never writes in place (it renames), so
// only a hand edit can meet this. before, when set, runs between mapping
// and parsing (tests truncate the file there).
func readMapped(f *os.File, before func()) (d *Decoded, mapped bool, err error) {
	st, serr := f.Stat()
	if serr != nil || !st.Mode().IsRegular() || st.Size() < mapMin || st.Size() > MaxFileSize {
		return nil, false, nil
	}
	data, merr := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if merr != nil {
		return nil, false, nil // read it the ordinary way
	}
	defer syscall.Munmap(data)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			var re runtime.Error
			if e, ok := r.(error); !ok || !errors.As(e, &re) {
				panic(r)
			}
			d, mapped, err = nil, true, fmt.Errorf("%s changed while it was read (truncated in place?): %v", f.Name(), r)
		}
	}()
	if before != nil {
		before()
	}
	d, err = Parse(data)
	return d, true, err
}
