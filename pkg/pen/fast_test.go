package pen

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/meltwater/proxymatic/pkg/services"
)

// The hand-written writer must render byte for byte what the embedded
// template renders, free and used slots, IPv4 and IPv6, with and without
// a connection limit; and what it renders must parse.
func TestWriteDefaultMatchesTemplate(t *testing.T) {
	ip := netip.MustParseAddr
	s := services.Service{Name: "x", Port: 53, Protocol: services.UDP, Mode: services.ModeTCP, Servers: []services.Server{
		{IP: ip("10.0.0.1"), Port: 80, Weight: 1000, MaxConn: 7}, {IP: ip("2001:db8::1"), Port: 81}, {IP: ip("10.0.0.2"), Port: 82, Weight: 5},
	}}
	for size := 1; size <= 6; size++ {
		if size == 6 { // and a mode http service
			s.Protocol, s.Mode = services.TCP, services.ModeHTTP
		}
		slots := NewSlots(size)
		assigned := slots.assign(s)
		v := view{Name: s.Name, Port: s.Port, Protocol: string(s.Protocol), HTTP: s.Mode == services.ModeHTTP, Slots: make([]slotView, size)}
		for i, srv := range assigned {
			v.Slots[i] = slotView{N: i, srv: srv, Free: srv == nil}
		}
		var want bytes.Buffer
		if err := defaultTemplate.Execute(&want, v); err != nil {
			t.Fatal(err)
		}
		got := writeDefault(nil, &v)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d slots: writer and template differ\nwriter:\n%s\ntemplate:\n%s", size, got, want.Bytes())
		}
		if err := parse(got); err != nil {
			t.Fatal(err)
		}
		// With the ready-made free lines the output is the same.
		if fast := writeSlots(nil, v.Name, v.Port, v.Protocol, v.HTTP, func(i int) *services.Server { return assigned[i] }, size, slots.free); !bytes.Equal(fast, got) {
			t.Fatalf("%d slots: free-line cache changes the output:\n%s", size, fast)
		}
	}
}
