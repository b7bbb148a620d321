package syncer

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

func getPage(addr string) string {
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sourceState is the text of the marathon row's state badge.
func sourceState(page string) string {
	_, row, ok := strings.Cut(page, `data-source="marathon"`)
	if !ok {
		return ""
	}
	_, badge, _ := strings.Cut(row, `<span class="badge`)
	_, text, _ := strings.Cut(badge, ">")
	state, _, _ := strings.Cut(text, "<")
	return state
}

// The page's view of a source follows it: waiting, ok with its event
// stream, failing after a failed refresh; read while the daemon works
// (run with -race).
func TestStatusPageFollowsTheSource(t *testing.T) {
	m := marathontest.New(t)
	m.Fail(http.StatusServiceUnavailable)
	m.SetApps(marathontest.BridgeApp("/product/web", 10001).WithTask("10.0.0.1", 31001))
	addr := freePort(t)
	stop := runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: 60 * time.Second, GroupSize: 1,
		Output: filepath.Join(t.TempDir(), "services.yaml"), StatusEndpoint: addr}, io.Discard)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				getPage(addr)
			}
		}
	})
	defer func() { close(done); wg.Wait() }()

	waitPage := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			p := getPage(addr)
			if ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; last:\n%s", what, p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPage("marathon waiting", func(p string) bool { return sourceState(p) == "waiting for a first read" })
	m.Fail(0)
	// The source's read shows first; the service once the file is written.
	waitPage("marathon ok with its stream, and its service", func(p string) bool {
		return sourceState(p) == "ok" && strings.Contains(p, "event stream up") &&
			strings.Contains(p, `data-service="web.product"`) && strings.Contains(p, "10.0.0.1:31001")
	})
	m.Fail(http.StatusServiceUnavailable)
	m.PushEvent("status_update_event") // a refresh, which fails
	waitPage("marathon failing", func(p string) bool {
		return strings.HasPrefix(sourceState(p), "failing: ") && strings.Contains(sourceState(p), "since the last good read")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
