package marathon

import (
	"bytes"
	"hash/fnv"
	"log/slog"
	"net/netip"
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
	f.Fuzz(func(t *testing.T, data []byte, exposeHost bool, group uint8) {
		apps, err := decodeApps(bytes.NewReader(data))
		if err != nil {
			return
		}
		addrs := map[string]netip.Addr{}
		for _, h := range taskHosts(apps) {
			if a, err := netip.ParseAddr(h); err == nil {
				if a.Zone() == "" {
					addrs[h] = a.Unmap()
				}
				continue
			}
			// Any name "resolves" to a stable address, so the fuzzer reaches the server rules.
			sum := fnv.New32a()
			sum.Write([]byte(h))
			v := sum.Sum32()
			addrs[h] = netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
		}
		c := compiler{exposeHost: exposeHost, groupSize: int(group), log: slog.New(slog.DiscardHandler), addrs: addrs}
		out := c.compile(apps)
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
