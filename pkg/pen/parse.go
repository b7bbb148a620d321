package pen

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// settings are the pen global commands a config (an overriding template's,
// say) may hold, with their number of numeric arguments. pen ignores
// anything it does not know without a word, so anything else is refused
// here rather than silently doing nothing.
var settings = map[string]int{
	"blacklist": 1, "tracking": 1, "timeout": 1, "idle_timeout": 1, "pending_max": 1,
	"weight": 0, "no weight": 0, "prio": 0, "no prio": 0, "hash": 0, "no hash": 0,
	"roundrobin": 0, "no roundrobin": 0, "stubborn": 0, "no stubborn": 0,
	"http": 0, "no http": 0, "tcp_nodelay": 0, "no tcp_nodelay": 0,
}

// maxNumber is the largest number pen reads correctly: it parses them
// with atoi into a C int. It must not be lower than any value the contract
// lets through (services.MaxServerConns is a server's max and hard).
const maxNumber = math.MaxInt32

func parse(data []byte) error {
	seen := map[int]int{}
	line := 0
	for len(data) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		if err := parseLine(string(raw), line, seen); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return nil
}

func parseLine(l string, line int, seen map[int]int) error {
	if len(l) > 512 {
		return fmt.Errorf("longer than 512 bytes")
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c < ' ' || c > '~' {
			return fmt.Errorf("control or non-ASCII byte %q", c)
		}
	}
	if l == "" || l[0] == '#' {
		return nil
	}
	f := strings.Split(l, " ")
	for _, w := range f {
		if w == "" {
			return fmt.Errorf("want words separated by single spaces: %q", l)
		}
	}
	if f[0] != "server" {
		name, args := f[0], f[1:]
		if name == "no" && len(f) > 1 {
			name, args = "no "+f[1], f[2:]
		}
		n, ok := settings[name]
		if !ok {
			return fmt.Errorf("unknown or unsupported command %q", clip(name))
		}
		if len(args) != n {
			return fmt.Errorf("%s takes %d arguments", name, n)
		}
		for _, a := range args {
			if _, err := number(a); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	if len(f) < 2 || len(f)%2 != 0 {
		return fmt.Errorf("want server N followed by keyword value pairs: %q", clip(l))
	}
	n, err := number(f[1])
	if err != nil || n >= MaxSlots {
		return fmt.Errorf("server number %q: want 0..%d", clip(f[1]), MaxSlots-1)
	}
	if prev, dup := seen[n]; dup {
		return fmt.Errorf("server %d is already set on line %d", n, prev)
	}
	seen[n] = line
	var addr netip.Addr
	port := -1
	got := map[string]bool{}
	for i := 2; i < len(f); i += 2 {
		k, v := f[i], f[i+1]
		if got[k] {
			return fmt.Errorf("server %d: %s given twice", n, k)
		}
		got[k] = true
		switch k {
		case "address":
			// Only literal addresses: pen would resolve a name once, at
			// (re)load, and keep a stale answer.
			a, err := netip.ParseAddr(v)
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("server %d: address %q is not an IP address", n, clip(v))
			}
			addr = a
		case "port":
			p, err := number(v)
			if err != nil || p > 65535 {
				return fmt.Errorf("server %d: port %q: want 0..65535", n, clip(v))
			}
			port = p
		case "weight", "max", "hard", "prio":
			if _, err := number(v); err != nil {
				return fmt.Errorf("server %d: %s: %w", n, k, err)
			}
		default:
			return fmt.Errorf("server %d: unknown or unsupported keyword %q", n, clip(k))
		}
	}
	if !addr.IsValid() || port < 0 {
		return fmt.Errorf("server %d: address and port are required", n)
	}
	if port == 0 && !addr.IsUnspecified() {
		return fmt.Errorf("server %d: port 0 is only for a free slot (address 0.0.0.0)", n)
	}
	return nil
}

// number parses a plain decimal: no sign, no leading zeros, bounded.
func number(s string) (int, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a number", clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", clip(s))
		}
	}
	n, _ := strconv.Atoi(s)
	if n > maxNumber {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
