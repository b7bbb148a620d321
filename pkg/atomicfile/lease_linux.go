package atomicfile

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// lease takes a write lease on f: refused (EAGAIN) while anyone else has
// the file open or mapped; granted, it makes every later open of the file
// wait until it is released. Breaking it sends this process SIGIO, which
// the Go runtime ignores unless asked for it (os/signal).
func lease(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		_, lerr = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_WRLCK)
	}); err != nil {
		return err
	}
	return lerr
}

func unlease(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_UNLCK) })
	}
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

func idOf(st os.FileInfo) (fileID, bool) {
	// os.File.Stat fills a syscall.Stat_t.
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(sys.Ino), uint64(sys.Dev), uint64(sys.Nlink), sys.Mtim.Nano()}, true
}
