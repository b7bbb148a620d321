//go:build unix

package atomicfile

import (
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// iovMax is the most pieces one writev takes (IOV_MAX on Linux).
const iovMax = 1024

// writeAll writes the pieces in order with writev, a batch at a time: a
// 10,000-service file is ten system calls, with no copy in user space.
func writeAll(f *os.File, bufs [][]byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for len(bufs) > 0 {
		batch := bufs[:min(len(bufs), iovMax)]
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), batch)
			return werr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return &os.PathError{Op: "writev", Path: f.Name(), Err: werr}
		}
		if n == 0 && slices.ContainsFunc(batch, func(b []byte) bool { return len(b) > 0 }) {
			return io.ErrShortWrite
		}
		// Drop what was written, including part of a piece.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			rest := make([][]byte, len(bufs))
			copy(rest, bufs)
			rest[0] = rest[0][n:]
			bufs, n = rest, 0
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}
