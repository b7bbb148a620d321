// Package hangup turns SIGHUP into a request to do the work again — sync
// reads every source, reload applies the services file — instead of the
// signal's default, which ends the process (and, for reload, the proxies
// with it). Both daemons take it from here, so the two agree on what a
// burst of signals means: one request.
package hangup

import (
	"os"
	"os/signal"
	"syscall"
)

// Notify forwards every SIGHUP to ch until the returned stop is called. A
// burst collapses into one: a send that would block is dropped, since the
// request already waiting covers it.
func Notify(ch chan<- struct{}) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				select {
				case ch <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}
