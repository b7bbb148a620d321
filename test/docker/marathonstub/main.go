// Command marathonstub is a stand-in Marathon in a process of its own: the
// fake of pkg/marathon/marathontest (real Marathon's /v2/apps JSON and
// /v2/events stream) behind a listener, plus one control endpoint through
// which a test scales apps from outside. The Docker end-to-end test runs it
// in a container of its own.
//
//	marathonstub -listen 127.0.0.1:8080
//	curl -X POST --data-binary @apps.json http://127.0.0.1:8080/stub/apps
//
// POST /stub/apps takes a /v2/apps body ({"apps":[...]}, as
// marathontest.AppsJSON renders it), serves it from then on and announces
// the change with a status_update_event, as Marathon does when a task starts
// or stops. Every other path is Marathon's. It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meltwater/proxymatic/internal/serve"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// maxApps bounds a POSTed apps body.
const maxApps = 16 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *listen); err != nil {
		slog.Error("marathonstub", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	m := marathontest.NewHandler()
	srv := &http.Server{Handler: handler(m), ReadHeaderTimeout: 10 * time.Second}
	// The event streams never end by themselves: close them as the
	// shutdown starts, or it waits for them until its deadline.
	srv.RegisterOnShutdown(m.Close)
	slog.Info("marathonstub listening", "addr", ln.Addr().String())
	return serve.Run(ctx, srv, ln, 5*time.Second)
}

func handler(m *marathontest.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stub/apps", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxApps))
		if err != nil {
			http.Error(w, fmt.Sprintf("read apps: %v", err), http.StatusBadRequest)
			return
		}
		var apps struct {
			Apps []json.RawMessage `json:"apps"`
		}
		if err := json.Unmarshal(body, &apps); err != nil || apps.Apps == nil {
			http.Error(w, fmt.Sprintf(`want {"apps":[...]}: %v`, err), http.StatusBadRequest)
			return
		}
		m.SetAppsJSON(body)
		m.PushEvent("status_update_event")
		slog.Info("apps replaced", "apps", len(apps.Apps))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", m)
	return mux
}
