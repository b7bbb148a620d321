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

// writeAll writes bufs[0][skip:] and the pieces after it in order, at the
// file's offset, with writev a batch at a time: a 10,000-service file is
// ten system calls, with no copy in user space and no allocation.
func writeAll(f *os.File, bufs [][]byte, skip int, vs *vectors) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// The cursor: the next byte to write is bufs[i][off].
	i, off := 0, skip
	for {
		for i < len(bufs) && off == len(bufs[i]) {
			i, off = i+1, 0
		}
		if i == len(bufs) {
			return nil
		}
		iov := (*vs)[:0]
		for j, o := i, off; j < len(bufs) && len(iov) < iovMax; j, o = j+1, 0 {
			if b := bufs[j][o:]; len(b) > 0 {
				v := unix.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
		}
		*vs = iov
		var n uintptr
		var errno unix.Errno
		err := rc.Write(func(fd uintptr) bool {
			n, _, errno = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			return errno != unix.EAGAIN
		})
		// The kept array must not keep the pieces alive after the write:
		// its Base pointers are pointers the garbage collector follows.
		clear(iov)
		if err != nil {
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
		// Move the cursor past what was written, part of a piece included.
		for left := int(n); left > 0; {
			k := min(left, len(bufs[i])-off)
			left -= k
			if off += k; off == len(bufs[i]) {
				i, off = i+1, 0
			}
		}
	}
}
