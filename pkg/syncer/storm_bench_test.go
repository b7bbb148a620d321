package syncer

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
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
	parts := strings.Split(strings.Trim(id, "/"), "/")
	slices.Reverse(parts)
	i := bytes.Index(data, []byte("- name: "+strings.Join(parts, ".")+"\n"))
	if i < 0 {
		return false
	}
	blk := data[i:]
	if j := bytes.Index(blk[1:], []byte("\n- name: ")); j >= 0 {
		blk = blk[:j+1]
	}
	return bytes.Contains(blk, []byte(gone)) == alive
}

// BenchmarkKeyByKeyAt10k is the daemon's share of one changed service at
// 10,000 services: the change merged key by key, the service encoded again,
// the file's pieces handed to a sink that writes nothing.
func BenchmarkKeyByKeyAt10k(b *testing.B) {
	var all []services.Service
	for i := range 10000 {
		addrs := make([]string, 4)
		for j := range addrs {
			addrs[j] = fmt.Sprintf("10.2.%d.%d:%d", (i*4+j)%200/256, (i*4+j)%200%256, 31000+(i*4+j)%1000)
		}
		all = append(all, svc(fmt.Sprintf("service%d.system%d.product%d", i, i%7, i%50), 10000+i, services.SourceMarathon, addrs...))
	}
	sink := &nullSink{}
	d := &Daemon{Sources: []Source{newChangeSource("marathon")}, Sink: sink, Logger: discardLogger()}
	m := d.newMerger()
	m.set(0, cloneAll(all))
	if err := d.publish(m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := all[(i*7919)%len(all)].Clone()
		if i/len(all)%2 == 0 {
			s.Servers = s.Servers[1:]
		}
		keys := m.applyDelta(0, []services.Service{s}, nil)
		if err := d.publishKeys(m, keys); err != nil {
			b.Fatal(err)
		}
	}
	if sink.writes == 0 {
		b.Fatal("nothing written")
	}
}

// nullSink takes the file's pieces and writes nothing.
type nullSink struct{ writes, bytes int }

func (n *nullSink) Write(data []byte) (bool, error) {
	n.writes++
	n.bytes += len(data)
	return true, nil
}

func (n *nullSink) WriteBuffers(bufs [][]byte, _ bool) (bool, error) {
	n.writes++
	for _, b := range bufs {
		n.bytes += len(b)
	}
	return true, nil
}
