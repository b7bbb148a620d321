package services

import (
	"bytes"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// parseCanonical reads the subset of YAML that Encode writes, about fifty
// times faster than the general YAML decoder: the reload agent parses the
// whole file on every change, and at 10,000 services yaml.v3 alone costs
// half a second. It accepts only well-formed, valid documents in block style
// with the canonical indentation; on anything else (flow style, comments
// after values, escapes, unknown fields, an invalid value) it gives up and
// Parse falls back to the general decoder, so both paths always agree. The
// fuzz test holds them to that.
func parseCanonical(data []byte) (*Decoded, bool) {
	return parseCanonicalSplit(data, parallelParseMin)
}

// parseCanonicalSplit is parseCanonical splitting documents from splitMin
// bytes on (the fuzz test splits every document, to hold the halves to the
// whole).
func parseCanonicalSplit(data []byte, splitMin int) (*Decoded, bool) {
	// Encode writes printable ASCII only; leave the rest (UTF-8, control
	// characters, tabs, CR) to YAML's own rules.
	for _, c := range data {
		if (c < 0x20 && c != '\n') || c > 0x7e {
			return nil, false
		}
	}
	p := canonParser{data: data, splitMin: splitMin}
	f, ok := p.file()
	if !ok {
		return nil, false
	}
	valid, rejected := f.Split()
	if len(rejected) > 0 {
		return nil, false
	}
	f.Services = valid
	return &Decoded{File: f}, true
}

type canonParser struct {
	data []byte
	line int    // number of the current line, 1-based
	cur  []byte // the current line, without its newline
	eof  bool
	buf  []byte

	splitMin int // size from which file() reads the services in two halves
	// servers is one array for every service's servers, sized from the
	// document: one allocation instead of a growing slice per service
	// (at 40,000 servers the growth alone was 2 MB of extra fresh memory).
	servers []Server
	// hosts shares the strings of repeated host names (a cluster has far
	// fewer agents than tasks); bounded, so hostile input cannot grow it.
	hosts map[string]string
}

// maxHostCache bounds canonParser.hosts.
const maxHostCache = 4096

// addServer appends srv to the servers of the service whose first server is
// at start, and returns where they now start: when the array is full they
// move, together, to a new one, so a service's servers stay contiguous.
func (p *canonParser) addServer(start int, srv Server) int {
	if len(p.servers) == cap(p.servers) {
		n := len(p.servers) - start
		next := make([]Server, n, max(1024, 2*n))
		copy(next, p.servers[start:])
		p.servers, start = next, 0
	}
	p.servers = append(p.servers, srv)
	return start
}

func (p *canonParser) host(b []byte) (string, bool) {
	if h, ok := p.hosts[string(b)]; ok {
		return h, true
	}
	h, ok := scalar(b)
	if ok && len(p.hosts) < maxHostCache {
		if p.hosts == nil {
			p.hosts = make(map[string]string)
		}
		p.hosts[h] = h
	}
	return h, ok
}

// undash replaces the list item's "- " at column i by spaces, in a copy: the
// caller's data is never written to.
func (p *canonParser) undash(i int) {
	p.buf = append(p.buf[:0], p.cur...)
	p.buf[i] = ' '
	p.cur = p.buf
}

// next advances to the next line that is not a full-line comment or blank.
func (p *canonParser) next() {
	for {
		if len(p.data) == 0 {
			p.eof, p.cur = true, nil
			return
		}
		i := bytes.IndexByte(p.data, '\n')
		if i < 0 {
			p.cur, p.data = p.data, nil
		} else {
			p.cur, p.data = p.data[:i], p.data[i+1:]
		}
		p.line++
		t := bytes.TrimLeft(p.cur, " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		return
	}
}

// field splits the current line, which must start with exactly indent
// spaces, into key and value.
func (p *canonParser) field(indent string) (key string, val []byte, ok bool) {
	if p.eof || len(p.cur) <= len(indent) || string(p.cur[:len(indent)]) != indent || p.cur[len(indent)] == ' ' {
		return "", nil, false
	}
	rest := p.cur[len(indent):]
	i := bytes.IndexByte(rest, ':')
	if i <= 0 {
		return "", nil, false
	}
	key, val = intern(rest[:i]), rest[i+1:]
	if len(val) == 0 {
		return key, nil, true
	}
	if val[0] != ' ' || len(val) < 2 || val[1] == ' ' {
		return "", nil, false
	}
	return key, val[1:], true
}

// keySet remembers which of a mapping's keys were seen, to refuse duplicates
// (unknown keys are refused by the caller's switch).
type keySet struct{ keys [8]string }

func (k *keySet) add(key string) bool {
	for i, s := range k.keys {
		if s == key {
			return false
		}
		if s == "" {
			k.keys[i] = key
			return true
		}
	}
	return false
}

// parseIPv4 reads the dotted quad Encode writes (no leading zeros, as
// netip) without the allocation netip.ParseAddr's string costs per server.
// Anything else reports false and goes to netip.ParseAddr.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	for i := range a {
		if i > 0 {
			if len(b) == 0 || b[0] != '.' {
				return netip.Addr{}, false
			}
			b = b[1:]
		}
		n, d := 0, 0
		for d < len(b) && d < 3 && b[d] >= '0' && b[d] <= '9' {
			n = n*10 + int(b[d]-'0')
			d++
		}
		if d == 0 || n > 255 || (d > 1 && b[0] == '0') {
			return netip.Addr{}, false
		}
		a[i], b = byte(n), b[d:]
	}
	return netip.AddrFrom4(a), len(b) == 0
}

// intern returns the known keys and values without allocating.
func intern(b []byte) string {
	// A switch on the string compiles to a length-then-value search and
	// does not allocate; a loop over the list cost ~13% of a parse.
	switch string(b) {
	case "name":
		return "name"
	case "port":
		return "port"
	case "protocol":
		return "protocol"
	case "mode":
		return "mode"
	case "source":
		return "source"
	case "healthCheck":
		return "healthCheck"
	case "path":
		return "path"
	case "interval":
		return "interval"
	case "timeout":
		return "timeout"
	case "failures":
		return "failures"
	case "timeouts":
		return "timeouts"
	case "client":
		return "client"
	case "server":
		return "server"
	case "servers":
		return "servers"
	case "host":
		return "host"
	case "ip":
		return "ip"
	case "weight":
		return "weight"
	case "maxconn":
		return "maxconn"
	case "version":
		return "version"
	case "services":
		return "services"
	case "tcp":
		return "tcp"
	case "udp":
		return "udp"
	case "http":
		return "http"
	case "marathon":
		return "marathon"
	case "registrator":
		return "registrator"
	}
	return string(b)
}

// scalar decodes a value: plain, or double-quoted without escapes.
func scalar(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	v := intern(b)
	if v == "" || v == "~" || v == "null" || v == "Null" || v == "NULL" {
		return "", false
	}
	if v[0] == '"' {
		if len(v) < 2 || v[len(v)-1] != '"' || strings.ContainsAny(v[1:len(v)-1], "\\\"") {
			return "", false
		}
		return v[1 : len(v)-1], true
	}
	if strings.ContainsAny(v[:1], "[]{},&*!|>'%@`-?:") || strings.Contains(v, " #") || strings.Contains(v, ": ") ||
		strings.HasSuffix(v, ":") || strings.HasSuffix(v, " ") || strings.ContainsAny(v, "\t\r") {
		return "", false
	}
	return v, true
}

// integer accepts only plain decimal, the form Encode writes; YAML's other
// spellings (0x10, +1, 1_000) go to the general decoder.
func integer(b []byte) (int, bool) {
	v := string(b) // does not escape: no allocation
	if v == "" || len(v) > 9 || (len(v) > 1 && v[0] == '0') {
		if v == "0" {
			return 0, true
		}
		neg := len(v) > 1 && v[0] == '-' && v[1] != '0'
		if !neg || len(v) > 10 {
			return 0, false
		}
	}
	n, start := 0, 0
	if v[0] == '-' {
		start = 1
	}
	for i := start; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if start == 1 {
		n = -n
	}
	return n, true
}

func (p *canonParser) file() (File, bool) {
	f := File{Version: Version}
	p.next()
	if k, v, ok := p.field(""); !ok || k != "version" || string(v) != "1" {
		return f, false
	}
	p.next()
	k, v, ok := p.field("")
	if !ok || k != "services" {
		return f, false
	}
	p.next()
	if string(v) == "[]" {
		return f, p.eof
	}
	if len(v) != 0 {
		return f, false
	}
	// p.cur is the first service's line, p.data the rest of the document.
	rest := p.data
	mid := -1
	if len(rest) >= p.splitMin {
		if j := bytes.Index(rest[len(rest)/2:], []byte("\n- ")); j >= 0 {
			mid = len(rest)/2 + j + 1
		}
	}
	if mid < 0 {
		f.Services = make([]Service, 0, bytes.Count(rest, []byte("\n- "))+1)
		return f, p.items(&f.Services)
	}
	// A large file is read in two halves at once, split where a service
	// starts; each half fills its own part of one services array.
	n1 := bytes.Count(rest[:mid], []byte("\n- ")) + 1
	n2 := bytes.Count(rest[mid:], []byte("\n- ")) + 1
	all := make([]Service, 0, n1+n2)
	first, second := all[:0:n1], all[n1:n1:n1+n2]
	tail := canonParser{data: rest[mid:], line: p.line + bytes.Count(rest[:mid], []byte("\n"))}
	tail.next()
	p.data = rest[:mid]
	var ok2 bool
	var fault any
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The document may be a mapped file (see ReadFile): a fault
		// reading it here is handed to the calling goroutine, whose
		// caller recovers it, instead of ending the process.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { fault = recover() }()
		ok2 = tail.items(&second)
	}()
	ok1 := p.items(&first)
	<-done
	if fault != nil {
		panic(fault)
	}
	if !ok1 || !ok2 {
		return f, false
	}
	if len(first) == n1 && (len(second) == 0 || &second[0] == &all[:n1+1][n1]) {
		f.Services = all[:n1+len(second)]
	} else { // the counts were off (not canonical after all): join by copying
		f.Services = append(slices.Clip(first), second...)
	}
	return f, true
}

// parallelParseMin is the size from which a document is parsed in two
// halves concurrently: at 10,000 services (4 MB) that halves the reload
// agent's parse on two cores; a small file is not worth a goroutine.
const parallelParseMin = 256 << 10

// items reads services from the current line to the end of p.data,
// appending them to *out.
func (p *canonParser) items(out *[]Service) bool {
	p.servers = make([]Server, 0, bytes.Count(p.data, []byte("\n  - "))+1)
	for !p.eof {
		s, ok := p.service()
		if !ok {
			return false
		}
		*out = append(*out, s)
	}
	return true
}

func (p *canonParser) service() (Service, bool) {
	s := Service{Line: p.line, Protocol: TCP, Mode: ModeTCP}
	if !bytes.HasPrefix(p.cur, []byte("- ")) {
		return s, false
	}
	p.undash(0) // the first field of the item reads like the others
	var seen keySet
	var hasName, hasPort bool
	for {
		key, val, ok := p.field("  ")
		if !ok {
			break
		}
		if !seen.add(key) {
			return s, false
		}
		switch key {
		case "name":
			s.Name, hasName = scalar(val)
		case "port":
			s.Port, hasPort = integer(val)
		case "protocol":
			v, ok := scalar(val)
			if !ok {
				return s, false
			}
			s.Protocol = Protocol(v)
		case "mode":
			v, ok := scalar(val)
			if !ok {
				return s, false
			}
			s.Mode = Mode(v)
		case "source":
			v, ok := scalar(val)
			if !ok {
				return s, false
			}
			s.Source = Source(v)
		case "healthCheck":
			if len(val) != 0 {
				return s, false
			}
			p.next()
			k, v, ok := p.field("    ")
			path, ok2 := scalar(v)
			if !ok || k != "path" || !ok2 {
				return s, false
			}
			hc := &HealthCheck{Path: path}
			// The optional fields, each at most once; their ranges are
			// checked by Split, which sends a bad value to the YAML path.
			for {
				p.next()
				k, v, ok := p.field("    ")
				if !ok {
					break
				}
				switch {
				case (k == "interval" && hc.Interval == 0) || (k == "timeout" && hc.Timeout == 0):
					d, err := time.ParseDuration(string(v))
					if err != nil || d <= 0 {
						return s, false
					}
					if k == "interval" {
						hc.Interval = d
					} else {
						hc.Timeout = d
					}
				case k == "failures" && hc.Failures == 0:
					n, ok := integer(v)
					if !ok || n < 1 {
						return s, false
					}
					hc.Failures = n
				default:
					return s, false
				}
			}
			s.HealthCheck = hc
			continue // already on the next line
		case "timeouts":
			if len(val) != 0 {
				return s, false
			}
			t := &Timeouts{}
			for {
				p.next()
				k, v, ok := p.field("    ")
				if !ok {
					break
				}
				d, err := time.ParseDuration(string(v))
				if err != nil || d <= 0 {
					return s, false
				}
				switch {
				case k == "client" && t.Client == 0:
					t.Client = d
				case k == "server" && t.Server == 0:
					t.Server = d
				default:
					return s, false
				}
			}
			if *t == (Timeouts{}) {
				return s, false
			}
			s.Timeouts = t
			continue // already on the next line
		case "servers":
			if string(val) == "[]" {
				s.Servers = []Server{}
				break
			}
			if len(val) != 0 {
				return s, false
			}
			p.next()
			start := len(p.servers)
			for !p.eof && bytes.HasPrefix(p.cur, []byte("  - ")) {
				srv, ok := p.server()
				if !ok {
					return s, false
				}
				start = p.addServer(start, srv)
			}
			if n := len(p.servers); n > start {
				// Capped, so that appending to one service's servers can
				// never write over the next one's.
				s.Servers = p.servers[start:n:n]
			}
			continue
		default:
			return s, false
		}
		if (key == "name" && !hasName) || (key == "port" && !hasPort) {
			return s, false
		}
		p.next()
	}
	if !hasName || !hasPort {
		return s, false
	}
	// The loop ends on a line that is not a field of this service: the next
	// item or the end. Anything else is not canonical.
	return s, p.eof || bytes.HasPrefix(p.cur, []byte("- "))
}

func (p *canonParser) server() (Server, bool) {
	srv := Server{Weight: DefaultWeight}
	p.undash(2)
	var hasIP, hasPort bool
	var seen keySet
	for {
		key, val, ok := p.field("    ")
		if !ok {
			break
		}
		if !seen.add(key) {
			return srv, false
		}
		switch key {
		case "host":
			srv.Host, ok = p.host(val)
		case "ip":
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			ip, isV4 := parseIPv4(val)
			ok = isV4
			if !isV4 {
				var err error
				ip, err = netip.ParseAddr(string(val))
				ok = err == nil && ip.Zone() == ""
			}
			srv.IP, hasIP = ip.Unmap(), ok
		case "port":
			srv.Port, ok = integer(val)
			hasPort = ok
		case "weight":
			srv.Weight, ok = integer(val)
		case "maxconn":
			srv.MaxConn, ok = integer(val)
			ok = ok && srv.MaxConn >= 1
		default:
			ok = false
		}
		if !ok {
			return srv, false
		}
		p.next()
	}
	return srv, hasIP && hasPort
}
