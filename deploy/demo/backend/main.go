// Command backend is the demo's HTTP backend: it answers every request with
// its own name and address, so that a request through the proxy shows which
// backend served it. It stops on SIGTERM or SIGINT.
//
//	backend -name web-1 -listen 127.0.0.1:18081
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/internal/serve"
)

func main() {
	name := flag.String("name", "backend", "the name this backend answers with")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *name, *listen); err != nil {
		slog.Error("backend", "name", *name, "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	srv := &http.Server{
		Handler:           handler(name, ln.Addr().String()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	// Requests may be delayed up to maxDelay: they get that to finish.
	return serve.Run(ctx, srv, ln, maxDelay+5*time.Second)
}

// maxDelay bounds ?delay=.
const maxDelay = 10 * time.Second

func handler(name, addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("delay"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > maxDelay {
				http.Error(w, fmt.Sprintf("delay %q: want a duration from 0 to %s", v, maxDelay), http.StatusBadRequest)
				return
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "hello from %s (%s), you asked for %s%s\n", name, addr, r.Host, r.URL.Path)
	})
}
