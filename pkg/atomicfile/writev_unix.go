//go:build unix

package atomicfile

import (
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iovMax is the most pieces one writev takes (IOV_MAX on Linux).
const iovMax = 1024

// vectors is a writev's iovec array, kept from write to write: x/sys'
// Writev builds a new one by appending, half a megabyte of garbage for a
// 10,000-piece file.
type vectors []unix.Iovec

// writeAll writes the pieces in order with writev, a batch at a time: a
// 10,000-service file is ten system calls, with no copy in user space.
func writeAll(f *os.File, bufs [][]byte, vs *vectors) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for len(bufs) > 0 {
		iov := (*vs)[:0]
		for _, b := range bufs {
			if len(iov) == iovMax {
				break
			}
			if len(b) == 0 {
				continue
			}
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		*vs = iov
		if len(iov) == 0 {
			return nil // only empty pieces left
		}
		var n uintptr
		var errno unix.Errno
		if err := rc.Write(func(fd uintptr) bool {
			n, _, errno = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			return errno != unix.EAGAIN
		}); err != nil {
			return err
		}
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return &os.PathError{Op: "writev", Path: f.Name(), Err: errno}
		case n == 0:
			return io.ErrShortWrite
		}
		// Drop what was written, including part of a piece.
		for left := int(n); left > 0 || (len(bufs) > 0 && len(bufs[0]) == 0); {
			if len(bufs[0]) <= left {
				left -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			rest := append([][]byte{bufs[0][left:]}, bufs[1:]...)
			bufs, left = rest, 0
		}
	}
	return nil
}
