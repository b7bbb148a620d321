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
	return control(f, func(fd uintptr) error {
		_, err := unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_WRLCK)
		return err
	})
}

func unlease(f *os.File) {
	_ = control(f, func(fd uintptr) error {
		_, err := unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_UNLCK)
		return err
	})
}

func fdatasync(f *os.File) error {
	return control(f, func(fd uintptr) error {
		for {
			if err := unix.Fdatasync(int(fd)); err != unix.EINTR {
				return err
			}
		}
	})
}

// control runs fn on f's descriptor, returning fn's error.
func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}

func idOf(st os.FileInfo) (fileID, bool) {
	// os.File.Stat fills a syscall.Stat_t.
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(sys.Ino), uint64(sys.Dev), uint64(sys.Nlink), sys.Mtim.Nano()}, true
}
