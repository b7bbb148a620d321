package hangup

import (
	"syscall"
	"testing"
	"time"
)

// A SIGHUP reaches the channel; a burst while one waits is one request;
// after stop, SIGHUP no longer reaches it (and the test process, which
// still has it routed to signal.Notify's handler elsewhere, survives).
func TestNotify(t *testing.T) {
	ch := make(chan struct{}, 1)
	stop := Notify(ch)
	for range 3 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second): // a safety net, not a measurement
		t.Fatal("SIGHUP did not arrive")
	}
	stop()
	// Whatever the burst left queued is one request at most.
	select {
	case <-ch:
	default:
	}
	select {
	case <-ch:
		t.Fatal("more than one request queued for one burst")
	default:
	}
}
