package marathon

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// Everything the source gives comes out, in order, and its error after the
// last byte; whatever the source's read sizes.
func TestReadAheadPassesBytesAndError(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 50000) // 800 KB, many blocks
	boom := errors.New("connection reset")
	for name, src := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
		"error":    io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)),
		"data+err": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		a := newReadAhead(src)
		got, err := io.ReadAll(iotest.HalfReader(a))
		a.Close()
		wantErr := error(nil)
		if name == "error" {
			wantErr = boom
		}
		if !bytes.Equal(got, data) || !errors.Is(err, wantErr) {
			t.Errorf("%s: read %d bytes (equal %v), err %v; want %d bytes, err %v",
				name, len(got), bytes.Equal(got, data), err, len(data), wantErr)
		}
	}
}

// A consumer that stops early (a decode error) leaves the goroutine
// waiting to hand over a block; Close must still stop it at once.
func TestReadAheadCloseWhenConsumerStops(t *testing.T) {
	a := newReadAhead(bytes.NewReader(make([]byte, 10*aheadBlockSize)))
	if _, err := a.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, a)
}

// A source that blocks (a stalled Marathon) is released by closing it,
// which the caller does before Close.
func TestReadAheadCloseAfterSourceClosed(t *testing.T) {
	pr, pw := io.Pipe()
	a := newReadAhead(pr)
	go pw.Write([]byte("partial"))
	buf := make([]byte, 100)
	if n, err := a.Read(buf); n == 0 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	pr.Close()
	closeWithin(t, a)
}

func closeWithin(t *testing.T, a *readAhead) {
	t.Helper()
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return: the read-ahead goroutine is stuck")
	}
}
