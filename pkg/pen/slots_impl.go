package pen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/meltwater/proxymatic/pkg/atomicfile"
	"github.com/meltwater/proxymatic/pkg/services"
)

// table is one service's slots: the address (ip:port) in each, "" when free.
type table struct {
	slots   []netip.AddrPort
	dropped int
}

func newSlots(size int) *Slots {
	return &Slots{size: size, byKey: map[services.Key]*table{}, free: freeLines(size)}
}

func keyOf(srv services.Server) netip.AddrPort {
	return netip.AddrPortFrom(srv.IP.Unmap(), uint16(srv.Port))
}

// assign gives every listed server a slot: servers that hold one keep it,
// the slots of servers no longer listed are freed, and new servers take the
// lowest free slots in the service's (canonical) server order. It returns
// the server in each slot, nil for a free one.
func (s *Slots) assign(svc services.Service) []*services.Server {
	t := s.byKey[svc.Key()]
	if t == nil {
		t = &table{slots: make([]netip.AddrPort, s.size)}
		s.byKey[svc.Key()] = t
	}
	out := make([]*services.Server, s.size)
	find := t.finder()
	var pending []int
	for i := range svc.Servers {
		if slot := find(keyOf(svc.Servers[i])); slot >= 0 {
			out[slot] = &svc.Servers[i]
			continue
		}
		pending = append(pending, i)
	}
	for i := range t.slots {
		if out[i] == nil {
			t.slots[i] = netip.AddrPort{}
		}
	}
	t.dropped = 0
	free := 0
	for _, i := range pending {
		for free < s.size && out[free] != nil {
			free++
		}
		if free == s.size {
			t.dropped++
			continue
		}
		out[free] = &svc.Servers[i]
		t.slots[free] = keyOf(svc.Servers[i])
	}
	return out
}

// finder returns a lookup of an address's slot (-1 when it has none). A
// scan beats a map (hashing, allocation) for the usual few dozen slots.
func (t *table) finder() func(netip.AddrPort) int {
	if len(t.slots) <= 64 {
		return func(a netip.AddrPort) int {
			for i := range t.slots {
				if t.slots[i] == a {
					return i
				}
			}
			return -1
		}
	}
	where := make(map[netip.AddrPort]int, len(t.slots))
	for i, a := range t.slots {
		if a.IsValid() {
			where[a] = i
		}
	}
	return func(a netip.AddrPort) int {
		if i, ok := where[a]; ok {
			return i
		}
		return -1
	}
}

func (s *Slots) dropped(k services.Key) int {
	if t := s.byKey[k]; t != nil {
		return t.dropped
	}
	return 0
}

func (s *Slots) retain(keep []services.Key) {
	set := make(map[services.Key]bool, len(keep))
	for _, k := range keep {
		set[k] = true
	}
	for k := range s.byKey {
		if !set[k] {
			delete(s.byKey, k)
		}
	}
}

// slotsFile is the saved form: per service key ("10001/tcp"), the address
// in each slot ("" when free).
type slotsFile struct {
	Version  int                 `json:"version"`
	Services map[string][]string `json:"services"`
}

func (s *Slots) save(path string) error {
	f := slotsFile{Version: 1, Services: make(map[string][]string, len(s.byKey))}
	for k, t := range s.byKey {
		row := make([]string, len(t.slots))
		for i, a := range t.slots {
			if a.IsValid() {
				row[i] = a.String()
			}
		}
		// Trailing free slots carry no information.
		for len(row) > 0 && row[len(row)-1] == "" {
			row = row[:len(row)-1]
		}
		f.Services[k.String()] = row
	}
	data, err := json.Marshal(f) // map keys are sorted: same state, same bytes
	if err != nil {
		return fmt.Errorf("pen slots: %w", err)
	}
	if _, err := atomicfile.New(path, 0o640).Write(append(data, '\n')); err != nil {
		return fmt.Errorf("pen slots: %w", err)
	}
	return nil
}

func loadSlots(path string, size int) (*Slots, error) {
	if size < 1 || size > MaxSlots {
		return nil, fmt.Errorf("pen slots: %d slots: want 1..%d", size, MaxSlots)
	}
	s := newSlots(size)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("pen slots: %w", err)
	}
	var f slotsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return s, fmt.Errorf("pen slots %s: %w", path, err)
	}
	if f.Version != 1 {
		return s, fmt.Errorf("pen slots %s: version %d is not 1", path, f.Version)
	}
	for key, row := range f.Services {
		k, err := parseKey(key)
		if err != nil {
			return newSlots(size), fmt.Errorf("pen slots %s: %w", path, err)
		}
		t := &table{slots: make([]netip.AddrPort, size)}
		seen := make(map[netip.AddrPort]bool, len(row))
		for i, a := range row {
			if a == "" {
				continue
			}
			ap, err := netip.ParseAddrPort(a)
			if err != nil || seen[ap] {
				return newSlots(size), fmt.Errorf("pen slots %s: service %s slot %d: bad or repeated address %q", path, key, i, a)
			}
			seen[ap] = true
			// With fewer slots than when saved, servers beyond the end
			// lose theirs and are placed again like new servers.
			if i < size {
				t.slots[i] = ap
			}
		}
		s.byKey[k] = t
	}
	return s, nil
}

func parseKey(s string) (services.Key, error) {
	port, proto, ok := strings.Cut(s, "/")
	p, err := strconv.Atoi(port)
	k := services.Key{Port: p, Protocol: services.Protocol(proto)}
	if !ok || err != nil || p < 1 || p > 65535 || !slices.Contains([]services.Protocol{services.TCP, services.UDP}, k.Protocol) {
		return services.Key{}, fmt.Errorf("bad service key %q", s)
	}
	return k, nil
}
