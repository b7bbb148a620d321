package marathon

import "io"

// readAhead reads its source on a goroutine of its own, a few blocks ahead
// of the decoder. Copying a 44 MB body out of the kernel's socket buffers is
// about a third of what a fresh sync process spends reading it; done ahead,
// it runs on the other core (where the compiler waits on the decoder half
// the time) instead of on the decoder's critical path.
//
// Close stops the goroutine and waits for it: close the source first, so
// that a Read it is blocked in returns.
type readAhead struct {
	full chan aheadBlock
	free chan []byte
	done chan struct{}
	gone chan struct{}

	cur  []byte // unread part of the block being consumed
	held []byte // that block's buffer, returned to free once consumed
	err  error  // the source's error, once every block before it is read
}

type aheadBlock struct {
	data []byte
	err  error
}

const (
	aheadBlocks    = 4
	aheadBlockSize = 64 << 10
)

func newReadAhead(r io.Reader) *readAhead {
	a := &readAhead{
		full: make(chan aheadBlock, aheadBlocks),
		free: make(chan []byte, aheadBlocks),
		done: make(chan struct{}),
		gone: make(chan struct{}),
	}
	for range aheadBlocks {
		a.free <- make([]byte, aheadBlockSize)
	}
	go a.fill(r)
	return a
}

func (a *readAhead) fill(r io.Reader) {
	defer close(a.gone)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.done:
			return
		}
		n, err := r.Read(buf)
		select {
		case a.full <- aheadBlock{buf[:n], err}:
		case <-a.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *readAhead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.held != nil {
			a.free <- a.held[:cap(a.held)]
			a.held = nil
		}
		blk := <-a.full
		a.cur, a.held, a.err = blk.data, blk.data, blk.err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the reading goroutine and waits until it has.
func (a *readAhead) Close() {
	close(a.done)
	<-a.gone
}
