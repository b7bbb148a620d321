// Package serve is the one serve loop of every HTTP server the project
// runs: the status endpoint of both binaries and the small commands (the
// demo backend, the stand-in Marathon of the Docker test, the module proxy
// of the image build). Each had its own copy of the same twenty lines.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves srv on ln until ctx is done, then shuts it down: ln is closed
// at once and the requests in flight get grace to finish (long-lived
// streams are ended by a function given to srv.RegisterOnShutdown); what
// is still open then is cut. It returns Serve's error when serving fails,
// else the shutdown's (nil when every request finished within grace), and
// only once Serve has returned.
func Run(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("shutdown: %w", err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return errors.Join(err, serr)
	}
	return err
}
