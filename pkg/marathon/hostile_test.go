package marathon

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// hostile is a replica that answers /v2/apps with handler and counts the
// requests it got.
func hostile(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/apps" {
			n.Add(1)
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// trickle writes b one byte at a time every d until the client goes away.
func trickle(w http.ResponseWriter, r *http.Request, head []byte, d time.Duration, b byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(head)
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(d):
		}
		if _, err := w.Write([]byte{b}); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// Every case fails the first replica within the request deadline (or its
// cap) and the healthy second one answers; the failed one is not asked
// first on the next refresh.
func TestHostileReplicaFailsOver(t *testing.T) {
	const deadline = 400 * time.Millisecond
	cases := map[string]func(w http.ResponseWriter, r *http.Request){
		// 200, then a body that never ends and never goes silent.
		"200 then endless body": func(w http.ResponseWriter, r *http.Request) {
			trickle(w, r, []byte(`{"apps":[`), time.Millisecond, ' ')
		},
		// One byte every 2 s: never idle long enough for the read timeout.
		"2 s per byte": func(w http.ResponseWriter, r *http.Request) {
			trickle(w, r, nil, 2*time.Second, ' ')
		},
		// Headers, then nothing.
		"headers then silence": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
		// More than the cap, plain.
		"over the cap": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"apps":[{"id":"/x","env":{"k":"`))
			w.Write(bytes.Repeat([]byte("a"), 3<<20))
			w.Write([]byte(`"}}]}`))
		},
		// A Content-Length over the cap is refused before the body is read.
		"declared over the cap": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1073741824")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"apps":[`))
		},
		// A small gzip body that expands past the cap.
		"gzip bomb": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write([]byte(`{"apps":[{"id":"/x","env":{"k":"`))
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range 64 {
				if _, err := zw.Write(chunk); err != nil {
					return
				}
			}
			zw.Close()
		},
	}
	for name, handler := range cases {
		t.Run(name, func(t *testing.T) {
			bad, asked := hostile(t, handler)
			good := marathontest.New(t)
			good.SetApps(webApp(31001))
			s, logs := newSource(t, Options{
				URLs:           []string{bad.URL, good.URL},
				RequestTimeout: deadline,
				MaxBody:        1 << 20,
				ReadTimeout:    time.Minute, // only the deadline may end the slow cases
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := s.Fetch(ctx)
			if err != nil || len(got) != 1 {
				t.Fatalf("%v %v\n%s", summary(got), err, logs)
			}
			if !strings.Contains(logs.String(), "replica failed, trying the next") {
				t.Errorf("no failover logged:\n%s", logs)
			}
			if _, err := s.Fetch(ctx); err != nil {
				t.Fatal(err)
			}
			if n := asked.Load(); n != 1 {
				t.Errorf("hostile replica asked %d times: it must not stay first", n)
			}
		})
	}
}

// What each failure says: the cap and the deadline name their flags.
func TestHostileReplicaErrors(t *testing.T) {
	big, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"apps":[{"id":"/x","env":{"k":"`))
		w.Write(bytes.Repeat([]byte("a"), 2<<20))
	})
	s, _ := newSource(t, Options{URLs: []string{big.URL}, MaxBody: 1 << 20})
	_, err := s.Fetch(context.Background())
	var tl *TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "--marathon-max-body") {
		t.Errorf("over the cap: %v", err)
	}

	slow, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		trickle(w, r, []byte(`{"apps":[`), 10*time.Millisecond, ' ')
	})
	s, _ = newSource(t, Options{URLs: []string{slow.URL}, RequestTimeout: 200 * time.Millisecond})
	_, err = s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--marathon-timeout") {
		t.Errorf("past the deadline: %v", err)
	}

	// A body of exactly the cap is read.
	body := marathontest.AppsJSON([]*marathontest.App{webApp(31001)})
	exact, _ := hostile(t, func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	s, _ = newSource(t, Options{URLs: []string{exact.URL}, MaxBody: int64(len(body))})
	if got, err := s.Fetch(context.Background()); err != nil || len(got) != 1 {
		t.Errorf("a body of exactly the cap: %v %v", summary(got), err)
	}
	s, _ = newSource(t, Options{URLs: []string{exact.URL}, MaxBody: int64(len(body) - 1)})
	if _, err := s.Fetch(context.Background()); !errors.As(err, &tl) {
		t.Errorf("one byte over the cap: %v", err)
	}
}
