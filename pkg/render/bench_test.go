package render_test

import (
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/haproxy"
	"github.com/meltwater/proxymatic/pkg/nginx"
	"github.com/meltwater/proxymatic/pkg/pen"
	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
)

// bigServices is 10,000 TCP services with 40,000 servers in all.
func bigServices() []services.Service {
	svcs := make([]services.Service, 10000)
	for i := range svcs {
		s := services.Service{Name: "service-" + strconv.Itoa(i) + ".team", Port: 10000 + i, Protocol: services.TCP, Mode: services.ModeTCP}
		if i%2 == 0 {
			s.Mode = services.ModeHTTP
			s.HealthCheck = &services.HealthCheck{Path: "/health"}
		}
		for j := 0; j < 4; j++ {
			s.Servers = append(s.Servers, services.Server{
				Host: "node-" + strconv.Itoa(j) + ".example.com",
				IP:   netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j + 1)}), Port: 31000 + j, Weight: 500, MaxConn: 100,
			})
		}
		svcs[i] = s
	}
	return svcs
}

func benchOptions(haproxy bool) render.Options {
	return render.Options{HAProxy: haproxy, VHostDomain: "apps.example.com", VHostPort: 80, MaxConnections: 8192,
		PenServers: 32, PenClients: 8192, RunDir: "/var/run/proxymatic"}
}

// BenchmarkRender renders 10,000 services / 40,000 servers: "all" is what
// the issue asks to stay under 50 ms — HAProxy serving the TCP services,
// nginx their vhosts, and pen serving them too (32 slots each) as it would
// without --haproxy. The others are each proxy alone.
func BenchmarkRender(b *testing.B) {
	svcs := bigServices()
	o := benchOptions(true)
	tpl, err := render.LoadTemplates("")
	if err != nil {
		b.Fatal(err)
	}
	plan := render.NewPlan(o, svcs)
	plan.Pen = plan.HAProxy
	slots := pen.NewSlots(o.PenServers)
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			if _, err := render.Render(o, tpl, plan, slots); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("haproxy", func(b *testing.B) {
		start := cpuTime()
		for b.Loop() {
			if _, err := haproxy.Render(haproxy.Params{RunDir: o.RunDir, MaxConnections: o.MaxConnections}, plan.HAProxy); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("nginx", func(b *testing.B) {
		start := cpuTime()
		for b.Loop() {
			if _, err := nginx.Render(nginx.Params{RunDir: o.RunDir, Port: 80, MaxConnections: o.MaxConnections}, plan.VHosts); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("pen", func(b *testing.B) {
		start := cpuTime()
		for b.Loop() {
			for _, s := range plan.Pen {
				if _, err := pen.Render(pen.Params{Servers: o.PenServers}, s, slots); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportCPU(b, start)
	})
}

// cpuTime is the process's user+system CPU time. The benchmark reports it
// per operation beside ns/op: on a machine shared with other work, wall time
// says more about the neighbours than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkPlanHeld is the running agent's plan of 10,000 services with
// virtual hosts, and the save of the holders it keeps in the run dir, for
// a file that changed no holder (nearly every apply).
func BenchmarkPlanHeld(b *testing.B) {
	svcs := bigServices()
	o := benchOptions(true)
	path := b.TempDir() + "/nginx-vhosts.json"
	held := &render.VHostClaims{}
	render.NewPlanHeld(o, svcs, held)
	if err := held.Save(path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		render.NewPlanHeld(o, svcs, held)
		if err := held.Save(path); err != nil {
			b.Fatal(err)
		}
	}
}
