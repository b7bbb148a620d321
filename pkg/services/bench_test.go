package services

import (
	"net/netip"
	"strconv"
	"testing"
)

// large builds n services with k servers each, the size issue 8 measures
// (10,000 services, 40,000 servers).
func large(n, k int) File {
	f := File{Version: Version, Services: make([]Service, n)}
	for i := range f.Services {
		s := Service{Name: "service" + strconv.Itoa(i) + ".system.product", Port: 10000 + i, Protocol: TCP, Mode: ModeTCP, Source: SourceMarathon}
		if i%3 == 0 {
			s.Mode = ModeHTTP
			s.HealthCheck = &HealthCheck{Path: "/health"}
		}
		for j := 0; j < k; j++ {
			s.Servers = append(s.Servers, Server{Host: "node-" + strconv.Itoa(j) + ".example.com",
				IP: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), Port: 31000 + j, Weight: DefaultWeight})
		}
		f.Services[i] = s
	}
	f.Normalize()
	return f
}

func BenchmarkEncode10k(b *testing.B) {
	f := large(10000, 4)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		size = len(f.Encode())
	}
	b.SetBytes(int64(size))
}

func BenchmarkNormalize10k(b *testing.B) {
	f := large(10000, 4)
	b.ReportAllocs()
	for b.Loop() {
		f.Normalize()
	}
}

func BenchmarkParse10k(b *testing.B) {
	f := large(10000, 4)
	data := f.Encode()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Parse(data)
		if err != nil || len(res.File.Services) != 10000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1k(b *testing.B) {
	f := large(1000, 4)
	data := f.Encode()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
