package registrator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/meltwater/proxymatic/pkg/explain"
	"github.com/meltwater/proxymatic/pkg/resolve"
	"github.com/meltwater/proxymatic/pkg/services"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStateBuild(t *testing.T) {
	st := newState("/services", quiet(), resolve.New(resolve.Options{Resolver: testDNS, Logger: quiet()}))
	changed := st.replace(map[string]string{
		"/services/web/h1:web_1:80":      "10.0.0.2:31000",
		"/services/web/h2:web_2:80":      "10.0.0.1:31000",
		"/services/web/h3:web_3:80":      "10.0.0.1:31000", // same address twice: one server
		"/services/web/h1:web_1:443":     "10.0.0.2:31443", // same name, other port: second service
		"/services/zeta/h1:z:80":         "10.0.0.9:1",     // merged into port 80's "web"
		"/services/web/h4:web_4:80":      "node-4:31000",   // a host name, resolved
		"/services/web/h5:web_5:80":      "gone.invalid:1", // one that does not resolve: left out
		"/services/dns/h1:dns:53:udp":    "10.0.0.3:31053",
		"/services/bad name/h1:x:81":     "10.0.0.3:1",
		"/services/web/h1:web_9:82":      "not-an-address",
		"/elsewhere/web/h1:web_1:80":     "10.0.0.7:1",
		"/services/web/h1:web_1:80/deep": "10.0.0.7:1",
	})
	if !changed {
		t.Fatal("first replace reported no change")
	}
	got := st.services(context.Background())
	want := []services.Service{
		{Name: "dns", Port: 53, Protocol: services.UDP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{srv("h1", "10.0.0.3", 31053)}},
		{Name: "web", Port: 80, Protocol: services.TCP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
			Servers: []services.Server{srv("h2", "10.0.0.1", 31000), srv("h1", "10.0.0.2", 31000), srv("h4", "10.0.0.4", 31000), srv("h1", "10.0.0.9", 1)}},
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
	got = st.services(context.Background())
	if len(got) != 2 || got[0].Name != "dns" || got[1].Name != "zeta" || len(got[1].Servers) != 1 {
		t.Errorf("after deleting /services/web: %+v", got)
	}
	if !st.replace(map[string]string{}) || len(st.services(context.Background())) != 0 {
		t.Error("replacing with nothing left services behind")
	}
}

// testDNS answers node-N with 10.0.0.N; anything else does not resolve.
var testDNS = dnsTable{"node-4": "10.0.0.4", "node-5": "10.0.0.5"}

type dnsTable map[string]string

func (d dnsTable) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := d[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, errors.New("no such host")
}

func srv(host, ip string, port int) services.Server {
	return services.Server{Host: host, IP: mustAddr(ip), Port: port, Weight: services.DefaultWeight}
}

// A value's host name that resolves to an address that is never a service
// (link-local: a cloud metadata endpoint; multicast; 0.0.0.0) is refused
// as the same address written literally is: that server is left out with
// its reason, and the other servers of the service stay.
func TestResolvedAddressNeverAService(t *testing.T) {
	dns := dnsTable{"node-1": "10.0.0.1", "metadata": "169.254.169.254", "group": "224.0.0.1", "zero": "0.0.0.0"}
	var logs bytes.Buffer
	st := newState("/services", slog.New(slog.NewTextHandler(&logs, nil)), resolve.New(resolve.Options{Resolver: dns, Logger: quiet()}))
	book := explain.NewBook(0, 0)
	st.why = newExplainer(book)
	st.replace(map[string]string{
		"/services/web/h1:web_1:80": "node-1:31000",
		"/services/web/h2:web_2:80": "metadata:80",
		"/services/web/h3:web_3:80": "group:80",
		"/services/web/h4:web_4:80": "zero:80",
		"/services/web/h5:web_5:80": "10.0.0.5:31000",
	})
	got := st.services(context.Background())
	want := []services.Service{{Name: "web", Port: 80, Protocol: services.TCP, Mode: services.ModeTCP, Source: services.SourceRegistrator,
		Servers: []services.Server{srv("h1", "10.0.0.1", 31000), srv("h5", "10.0.0.5", 31000)}}}
	if !equalServices(got, want) {
		t.Fatalf("services:\n got %+v\nwant %+v", got, want)
	}
	entries, _ := book.Entries(explain.Filter{App: "/services/web/h2:web_2:80"})
	if len(entries) != 1 || entries[0].Reason != explain.InvalidAddress || !strings.Contains(entries[0].Detail, "169.254.169.254") {
		t.Errorf("explained as %+v, want invalid-address naming 169.254.169.254", entries)
	}
	// Logged when it starts, not again on the next build.
	st.apply([]change{{key: "/services/web/h6:web_6:80", value: "10.0.0.6:31000"}})
	st.services(context.Background())
	if n := strings.Count(logs.String(), "169.254.169.254"); n != 1 {
		t.Errorf("the metadata address logged %d times over two builds, want 1:\n%s", n, logs.String())
	}
}

// Two names on one port are merged; the merge is logged when it starts, not
// on every build of the state (one per change anywhere in the keyspace).
func TestMergeLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	st := newState("/services", slog.New(slog.NewTextHandler(&logs, nil)), resolve.New(resolve.Options{Resolver: testDNS, Logger: quiet()}))
	st.replace(map[string]string{
		"/services/web/h1:web_1:80":   "10.0.0.1:31000",
		"/services/zeta/h1:zeta:80":   "10.0.0.2:31000",
		"/services/other/h1:o_1:8080": "10.0.0.3:31000",
	})
	st.services(context.Background())
	for i := range 3 {
		st.apply([]change{{key: "/services/other/h1:o_1:8080", value: "10.0.0.3:" + strconv.Itoa(31001+i)}})
		if got := st.services(context.Background()); len(got) != 2 || len(got[0].Servers) != 2 || got[0].Name != "web" {
			t.Fatalf("services: %+v", got)
		}
	}
	if n := strings.Count(logs.String(), "merged under the lowest name"); n != 1 {
		t.Errorf("the merge logged %d times over 4 builds, want 1:\n%s", n, logs.String())
	}
	// Gone and back: logged again.
	st.apply([]change{{key: "/services/zeta/h1:zeta:80", deleted: true}})
	st.services(context.Background())
	st.apply([]change{{key: "/services/zeta/h1:zeta:80", value: "10.0.0.2:31000"}})
	st.services(context.Background())
	if n := strings.Count(logs.String(), "merged under the lowest name"); n != 2 {
		t.Errorf("a merge that went and came back logged %d times in all, want 2:\n%s", n, logs.String())
	}
}
