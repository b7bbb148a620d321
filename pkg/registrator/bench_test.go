package registrator

import (
	"context"
	"fmt"
	"testing"

	"github.com/meltwater/proxymatic/pkg/resolve"
)

// BenchmarkRebuild measures one publish's worth of work for a large
// registrator keyspace: 2,000 registrations over 200 services.
func BenchmarkRebuild(b *testing.B) {
	st := newState("/services", quiet(), resolve.New(resolve.Options{Logger: quiet()}))
	kv := map[string]string{}
	for i := 0; i < 2000; i++ {
		kv[fmt.Sprintf("/services/svc%d/host%d:c%d:%d", i%200, i, i, 8000+i%200)] = fmt.Sprintf("10.%d.%d.%d:31000", i/65536, i/256%256, i%256+0)
	}
	st.replace(kv)
	b.ReportAllocs()
	for b.Loop() {
		if len(st.services(context.Background())) != 200 {
			b.Fatal("wrong service count")
		}
	}
}

func BenchmarkParseKey(b *testing.B) {
	for b.Loop() {
		if _, err := ParseKey("web@8080/host-1.example.com:web_1:80:udp", "[2001:db8::1]:31000"); err != nil {
			b.Fatal(err)
		}
	}
}
