package services

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// randomService draws a valid service with key port p.
func randomService(r *rand.Rand, p int, proto Protocol) Service {
	names := []string{"web.prod", "true", "1e3", "a-b_c.d", "null", "x"}
	s := Service{Name: names[r.IntN(len(names))], Port: p, Protocol: proto, Mode: ModeTCP, Source: []Source{SourceMarathon, SourceRegistrator, ""}[r.IntN(3)]}
	if proto == TCP && r.IntN(2) == 0 {
		s.Mode = ModeHTTP
		if r.IntN(2) == 0 {
			s.HealthCheck = &HealthCheck{Path: []string{"/", "/health?x=1", "/a:b"}[r.IntN(3)]}
		}
	}
	if r.IntN(3) == 0 {
		s.Timeouts = &Timeouts{Client: time.Duration(r.IntN(3)) * time.Second, Server: time.Duration(r.IntN(90)) * time.Second}
	}
	for j := range r.IntN(4) {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(3)), byte(j)})
		if r.IntN(4) == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("fd00::%x", j+1))
		}
		srv := Server{IP: ip, Port: 31000 + r.IntN(3), Weight: r.IntN(MaxWeight + 1)}
		if r.IntN(2) == 0 {
			srv.Host = []string{"agent-1", "10.0.0.1", "yes"}[r.IntN(3)]
		}
		if r.IntN(3) == 0 {
			srv.MaxConn = 1 + r.IntN(100)
		}
		s.Servers = append(s.Servers, srv)
	}
	return s
}

// sameAsEncode fails unless e's bytes are what Encode gives for svcs.
func sameAsEncode(t *testing.T, e *Encoded, svcs map[Key]Service) {
	t.Helper()
	f := File{}
	for _, s := range svcs {
		f.Services = append(f.Services, s)
	}
	f.Normalize()
	want := f.Encode()
	got := bytes.Join(e.Buffers(), nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encoded\n%s\nEncode\n%s", got, want)
	}
	if e.Len() != len(want) || e.Services() != len(f.Services) {
		t.Fatalf("Len %d Services %d, want %d and %d", e.Len(), e.Services(), len(want), len(f.Services))
	}
	var buf bytes.Buffer
	if n, err := e.WriteTo(&buf); err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteTo wrote %d bytes, %v", n, err)
	}
}

// applyOps runs a sequence of sets and deletes drawn from ops on both an
// Encoded and a plain map of services.
func applyOps(t *testing.T, ops []byte) {
	r := rand.New(rand.NewPCG(uint64(len(ops)), 7))
	var e Encoded
	svcs := map[Key]Service{}
	for i := 0; i+1 < len(ops); i += 2 {
		k := Key{Port: 1 + int(ops[i]%16), Protocol: []Protocol{TCP, UDP}[ops[i]>>4&1]}
		switch ops[i+1] % 5 {
		case 0:
			e.Delete(k)
			delete(svcs, k)
		case 1:
			all := make([]Service, 0, len(svcs))
			for _, s := range svcs {
				all = append(all, s)
			}
			slices.SortFunc(all, func(a, b Service) int { return a.Key().Compare(b.Key()) })
			f := File{Services: all}
			f.Normalize()
			e.Reset(f.Services)
		default:
			s := randomService(r, k.Port, k.Protocol)
			f := File{Services: []Service{s}}
			f.Normalize()
			e.Set(&f.Services[0])
			svcs[k] = f.Services[0]
		}
		sameAsEncode(t, &e, svcs)
	}
}

func TestEncodedMatchesEncode(t *testing.T) {
	var e Encoded
	sameAsEncode(t, &e, nil) // the empty file
	for seed := range 50 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		ops := make([]byte, 60)
		for i := range ops {
			ops[i] = byte(r.IntN(256))
		}
		applyOps(t, ops)
	}
}

// FuzzEncodedMatchesEncode: whatever the sequence of changes, the pieces
// are the canonical encoding of the services they hold.
func FuzzEncodedMatchesEncode(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 1, 0, 5, 2, 0x11, 3})
	f.Add([]byte{0, 2, 0, 0, 0, 1, 0xff, 2})
	f.Add([]byte("non-canonical: delete what is not there, reset an empty file, set twice"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			return
		}
		applyOps(t, ops)
	})
}
