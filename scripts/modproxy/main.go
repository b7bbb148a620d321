// Command modproxy serves a Go module download cache ($GOMODCACHE/cache/download,
// whose layout is the GOPROXY protocol's) over HTTP on a loopback address, so
// that `docker build --network host --build-arg GOPROXY=http://ADDR` fetches
// the modules this machine already downloaded and verified. scripts/images.sh
// uses it where a build container cannot use the default module proxy.
//
//	modproxy -dir "$(go env GOMODCACHE)/cache/download" -listen 127.0.0.1:0
//
// It prints the address it listens on as its first line of output and serves
// until SIGTERM or SIGINT. Read-only: GET and HEAD.
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
	dir := flag.String("dir", "", "the module download cache to serve (GOMODCACHE/cache/download)")
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "modproxy: -dir is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *dir, *listen); err != nil {
		slog.Error("modproxy", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, listen string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("module cache %s: not a directory (%v)", dir, err)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	// Only this machine's builds: never an address others reach.
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen %s: not a loopback address", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: handler(dir), ReadHeaderTimeout: 10 * time.Second}
	fmt.Println(ln.Addr().String())
	return serve.Run(ctx, srv, ln, 5*time.Second)
}

func handler(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	})
}
