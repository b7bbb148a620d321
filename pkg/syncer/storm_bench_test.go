package syncer

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// BenchmarkTaskEventAt10k is one task's health event through the daemon
// in this process (so that -cpuprofile sees it) at 10,000 apps × 4 tasks:
// event → state → services.yaml renamed. bench/ measures the binary.
func BenchmarkTaskEventAt10k(b *testing.B) {
	apps := marathontest.Generate(10000, 4)
	for i, a := range apps {
		for j, t := range a.Tasks {
			agent := (i*4 + j) % 200
			t.Host = fmt.Sprintf("10.2.%d.%d", agent/256, agent%256)
		}
	}
	m := marathontest.New(b)
	m.SetApps(apps...)
	out := filepath.Join(b.TempDir(), "services.yaml")
	fw := watchFile(b, out)
	runMain(b, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, HealthCacheSize: 100000, Output: out}, io.Discard)
	fw.waitFor(b, contains("service9999."))
	waitSubscribed(b, m)
	time.Sleep(time.Second)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a := apps[(i*7919)%len(apps)]
		alive := (i/len(apps))%2 == 1
		m.SetHealth(a.ID, a.Tasks[0].ID, alive)
		gone := "port: " + strconv.Itoa(a.Tasks[0].Ports[0]) + "\n"
		fw.waitFor(b, func(data []byte) bool { return fileShows(data, a.ID, gone, alive) })
	}
}

// fileShows reports whether the service of app id serves (alive) or does
// not serve the server line gone.
func fileShows(data []byte, id, gone string, alive bool) bool {
	name := serviceNameOf(id)
	i := indexOf(data, "- name: "+name+"\n")
	if i < 0 {
		return false
	}
	blk := data[i:]
	if j := indexOf(blk[1:], "\n- name: "); j >= 0 {
		blk = blk[:j+1]
	}
	return (indexOf(blk, gone) >= 0) == alive
}

func serviceNameOf(id string) string {
	parts := splitPath(id)
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += "."
		}
		out += p
	}
	return out
}

func splitPath(id string) []string {
	var parts []string
	cur := ""
	for _, c := range id {
		if c == '/' {
			if cur != "" {
				parts = append(parts, cur)
			}
			cur = ""
			continue
		}
		cur += string(c)
	}
	if cur != "" {
		parts = append(parts, cur)
	}
	return parts
}

func indexOf(b []byte, s string) int { return bytes.Index(b, []byte(s)) }
