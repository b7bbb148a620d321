package registrator

import (
	"io"
	"log/slog"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStateBuild(t *testing.T) {
	st := newState("/services", quiet())
	changed := st.replace(map[string]string{
		"/services/web/h1:web_1:80":      "10.0.0.2:31000",
		"/services/web/h2:web_2:80":      "10.0.0.1:31000",
		"/services/web/h3:web_3:80":      "10.0.0.1:31000", // same address twice: one server
		"/services/web/h1:web_1:443":     "10.0.0.2:31443", // same name, other port: second service
		"/services/zeta/h1:z:80":         "10.0.0.9:1",     // loses port 80 to "web"
		"/services/dns/h1:dns:53:udp":    "10.0.0.3:31053",
		"/services/bad name/h1:x:81":     "10.0.0.3:1",
		"/services/web/h1:web_9:82":      "not-an-address",
		"/elsewhere/web/h1:web_1:80":     "10.0.0.7:1",
		"/services/web/h1:web_1:80/deep": "10.0.0.7:1",
	})
	if !changed {
		t.Fatal("first replace reported no change")
	}
	got := st.services()
	want := []services.Service{
		{Name: "dns", Port: 53, Protocol: services.UDP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{srv("h1", "10.0.0.3", 31053)}},
		{Name: "web", Port: 80, Protocol: services.TCP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{srv("h2", "10.0.0.1", 31000), srv("h1", "10.0.0.2", 31000)}},
		{Name: "web", Port: 443, Protocol: services.TCP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{srv("h1", "10.0.0.2", 31443)}},
	}
	if !equalServices(got, want) {
		t.Fatalf("services:\n got %+v\nwant %+v", got, want)
	}

	// A TTL refresh re-writes the same values: no change.
	if st.apply([]change{{key: "/services/web/h1:web_1:80", value: "10.0.0.2:31000"}}) {
		t.Error("re-writing the same value reported a change")
	}
	// Deleting a v2 directory removes everything below it.
	if !st.apply([]change{{key: "/services/web", deleted: true, dir: true}}) {
		t.Error("directory delete reported no change")
	}
	got = st.services()
	if len(got) != 2 || got[0].Name != "dns" || got[1].Name != "zeta" {
		t.Errorf("after deleting /services/web: %+v", got)
	}
	if !st.replace(map[string]string{}) || len(st.services()) != 0 {
		t.Error("replacing with nothing left services behind")
	}
}

func srv(host, ip string, port int) services.Server {
	return services.Server{Host: host, IP: mustAddr(ip), Port: port, Weight: services.DefaultWeight}
}
