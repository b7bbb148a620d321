//go:build !unix

package atomicfile

import "os"

type vectors struct{}

// writeAll writes bufs[0][skip:] and the pieces after it in order.
func writeAll(f *os.File, bufs [][]byte, skip int, _ *vectors) error {
	for i, b := range bufs {
		if i == 0 {
			b = b[skip:]
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
	}
	return nil
}
