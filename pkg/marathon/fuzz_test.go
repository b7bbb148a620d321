package marathon

import (
	"bytes"
	"context"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
	"github.com/meltwater/proxymatic/pkg/services"
)

// FuzzCompile: whatever Marathon sends, every service compiled from it must
// pass the services contract and encode/decode unchanged. The seed corpus
// runs in every normal test run.
func FuzzCompile(f *testing.F) {
	const L = LabelPrefix
	canary := marathontest.BridgeApp("/web/canary", 10099).WithLabel(L+"0.servicePort", "10001").WithTask("10.0.0.2", 31001)
	hostile := marathontest.BridgeApp("/web/evil", 10002, 10003).
		WithLabel(L+"0.mode", "http\n  server x 1.2.3.4:1").WithLabel(L+"0.weight", "5;").
		WithLabel(L+"1.timeout.client", "1 0").WithLabel(L+"1.maxconn", "}").
		WithHealthCheck(marathontest.HealthCheck{Path: "/ok\r\nHost: x"})
	hostile.AddTask("EVIL HOST;", 31002, 31003)
	f.Add(marathontest.AppsJSON([]*marathontest.App{
		marathontest.BridgeApp("/web/main", 10001).WithLabel(L+"0.mode", "http").WithTask("10.0.0.1", 31001),
		canary, hostile,
		marathontest.HostApp("/h", 53).WithProtocol(0, "tcp,udp").WithTask("agent-1", 53),
	}), false, uint8(1))
	f.Add(marathontest.AppsJSON(marathontest.Generate(5, 3)), true, uint8(3))
	f.Add([]byte(`{"apps":[{"id":"/a","ports":[0,70000,-1,80],"tasks":[{"host":"::1","ports":[1,2,3,0]},{"host":"1.2.3.4","ports":[65536,1,1,1],"state":"TASK_RUNNING"}]}]}`), false, uint8(0))
	f.Add([]byte(`{"apps":[{"id":"/a","labels":{"com.meltwater.proxymatic.port.0.servicePort":"80"},"portDefinitions":[{"port":80,"protocol":"udp,tcp"}],"tasks":[{"host":"h","ports":[80]}]},{"id":"/b","container":{"portMappings":[{"servicePort":80,"protocol":"sctp"}]},"tasks":[{"host":"1.1.1.1","ports":[90]}]}]}`), true, uint8(200))
	f.Add([]byte(`{"apps":[{"id":"/","tasks":[]},{"id":"/A/../B","ports":[1]}]}`), false, uint8(1))
	// Rich apps then bare ones, more than the stream keeps in flight, so
	// reused slots would leak labels, ports, tasks or health checks.
	rich := func(id string) *marathontest.App {
		a := marathontest.BridgeApp(id, 10010, 10011).WithLabel(L+"0.weight", "7").WithLabel(L+"1.maxconn", "40").
			WithHealthCheck(marathontest.HealthCheck{Path: "/up"})
		a.AddTask("10.0.0.9", 31010, 31011).Unhealthy("down")
		a.AddTask("10.0.0.8", 31012, 31013)
		return a.WithTask("10.0.0.7", 31014)
	}
	f.Add(marathontest.AppsJSON([]*marathontest.App{
		rich("/r/a"), rich("/r/b"), rich("/r/c"), rich("/r/d"),
		marathontest.LegacyApp("/bare/a", 10020).WithTask("10.0.0.6", 31020),
		marathontest.HostApp("/bare/b", 10021),
		marathontest.ContainerApp("/bare/c", 10022).WithTask("10.0.0.5"),
		marathontest.LegacyApp("/bare/d", 10023).WithTask("10.0.0.4", 31023, 31024),
	}), false, uint8(2))
	f.Add([]byte(`{"apps":[{"id":"/a","ports":[80],"labels":{"com.meltwater.proxymatic.port.0.weight":100},"tasks":[{"host":"1.1.1.1","ports":[31000]},{"host":5,"ports":[31001]}]},{"id":{},"ports":[81],"tasks":[{"host":"1.1.1.2","ports":[31002]}]}]}`), false, uint8(1))
	f.Add([]byte(`{"apps":[{"id":"/a","labels":{"x":"1"},"ports":[1],"tasks":[{"id":"t","host":"1.1.1.1","ports":[5],"state":"TASK_RUNNING","healthCheckResults":[{"alive":false}]}]},{"id":"/b","labels":null,"ports":null,"tasks":null},{"id":"/c","labels":{},"ports":[],"tasks":[]},{"id":"/d","tasks":[{"host":"1.1.1.2"}]},{"id":"/e","ports":[2],"tasks":[{"host":"1.1.1.3","ports":[6],"healthCheckResults":null}]}]}`), true, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, exposeHost bool, group uint8) {
		apps, err := decodeApps(bytes.NewReader(data))
		if err != nil {
			return
		}
		addrs := fakeAddrs(taskHosts(apps))
		c := compiler{exposeHost: exposeHost, groupSize: int(group), log: slog.New(slog.DiscardHandler), addrs: addrs}
		out := c.compile(apps)
		// The reference decoder (encoding/json and the malformed rules
		// written again) must compile to the same services.
		ref, err := decodeAppsRef(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("scanner took what the reference refused: %v", err)
		}
		rc := compiler{exposeHost: exposeHost, groupSize: int(group), log: slog.New(slog.DiscardHandler), addrs: addrs}
		if got := rc.compile(ref); !reflect.DeepEqual(got, out) {
			t.Fatalf("reference compiled\n%v\nscanner\n%v", got, out)
		}
		// The streaming path (batches of one app, so every decoded app
		// reuses a slot another app left) must compile the same services
		// and collect the same hosts: nothing of a previous app shows through.
		sc := compiler{exposeHost: exposeHost, groupSize: int(group), log: slog.New(slog.DiscardHandler)}
		cm, err := sc.stream(context.Background(), bytes.NewReader(data), 1)
		if err != nil {
			t.Fatalf("decodeApps accepted what stream refused: %v", err)
		}
		if !slices.Equal(cm.hosts, taskHosts(apps)) {
			t.Fatalf("stream hosts %q, want %q", cm.hosts, taskHosts(apps))
		}
		sc.addrs = addrs
		if got := sc.merge(cm); !reflect.DeepEqual(got, out) {
			t.Fatalf("stream compiled\n%v\nwant\n%v", got, out)
		}
		file := services.File{Services: out}
		if err := file.Validate(); err != nil {
			t.Fatalf("compiled services do not validate: %v", err)
		}
		for _, s := range out {
			if s.Source != services.SourceMarathon {
				t.Fatalf("service %s has source %q", s.Name, s.Source)
			}
		}
		file.Normalize()
		enc := file.Encode()
		back, _, err := services.Decode(enc)
		if err != nil {
			t.Fatalf("encoding does not decode: %v\n%s", err, enc)
		}
		if again := back.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("encoding not stable:\n%s\n---\n%s", enc, again)
		}
	})
}

// fakeAddrs "resolves" hosts without DNS: an address literal is itself,
// any other name a stable address, so the fuzzer reaches the server rules.
func fakeAddrs(hosts []string) map[string]netip.Addr {
	addrs := map[string]netip.Addr{}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() == "" {
				addrs[h] = a.Unmap()
			}
			continue
		}
		sum := fnv.New32a()
		sum.Write([]byte(h))
		v := sum.Sum32()
		addrs[h] = netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return addrs
}

// plainRun's word-at-a-time scan must stop exactly where the byte table
// does, from any start.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte(`abcdefghijklmnop"rest`), 0)
	f.Add([]byte(`0123456789abcdef\\"`), 3)
	f.Add([]byte("ascii then \x7f\x80 and \x1f"), 1)
	f.Add([]byte(`"!#$%&'()*+,-./[]^_`+"`{|}~"), 1)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if i < 0 || i > len(b) {
			return
		}
		want := i
		for want < len(b) && !strClass[b[want]] {
			want++
		}
		if got := plainRun(b, i); got != want {
			t.Fatalf("plainRun(%q, %d) = %d, want %d", b, i, got, want)
		}
	})
}

// Every byte value at every position of a word, after every plain byte
// value: the word test may not miss one (the fuzzer rarely builds these).
func TestPlainRunEveryByte(t *testing.T) {
	for plain := range 256 {
		if strClass[plain] {
			continue
		}
		for c := range 256 {
			for pos := range 8 {
				b := bytes.Repeat([]byte{byte(plain)}, 16)
				b[pos] = byte(c)
				want := len(b)
				if strClass[c] {
					want = pos
				}
				if got := plainRun(b, 0); got != want {
					t.Fatalf("plain %#x, byte %#x at %d: plainRun = %d, want %d", plain, c, pos, got, want)
				}
			}
		}
	}
}
