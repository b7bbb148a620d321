//go:build !unix

package atomicfile

import "os"

type vectors struct{}

// writeAll writes the pieces in order.
func writeAll(f *os.File, bufs [][]byte, _ *vectors) error {
	for _, b := range bufs {
		if _, err := f.Write(b); err != nil {
			return err
		}
	}
	return nil
}
