package services

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds what Parse reads. A services.yaml for 10,000 services
// with 40,000 servers is about 5 MiB; anything much larger is not ours.
const MaxFileSize = 64 << 20

// Decoded is a parsed document split into what can be used and what cannot.
type Decoded struct {
	File     File       // the valid services, in file order
	Rejected []Rejected // services with any problem, in file order
	// Warnings name the fields this version does not know (ignored, so
	// newer writers stay readable): one line per field name, with a count.
	Warnings []string
}

// ErrTooLarge is returned for a document over MaxFileSize.
var ErrTooLarge = fmt.Errorf("services.yaml is larger than %d bytes", MaxFileSize)

// ReadFile reads at most MaxFileSize bytes of a file and parses it. A large
// regular file is mapped rather than copied (see readMapped).
func ReadFile(r io.Reader) (*Decoded, error) {
	if f, ok := r.(*os.File); ok {
		if d, mapped, err := readMapped(f, nil); mapped {
			return d, err
		}
	}
	var buf bytes.Buffer
	// Size the buffer from the file when we can: io.ReadAll's doubling
	// copied and zeroed a 4 MB file a dozen times (a third of a reload dry
	// run at 10,000 services).
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() <= MaxFileSize {
			buf.Grow(int(st.Size()) + bytes.MinRead)
		}
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, MaxFileSize+1)); err != nil {
		return nil, err
	}
	return Parse(buf.Bytes())
}

// Parse decodes a document leniently: an error means the document as a whole
// is unusable (not YAML, wrong version, too large, aliases); a bad service is
// listed in Rejected and the others are kept.
func Parse(data []byte) (*Decoded, error) {
	if len(data) > MaxFileSize {
		return nil, ErrTooLarge
	}
	if d, ok := parseCanonical(data); ok {
		return d, nil
	}
	return parseYAML(data)
}

// parseYAML is the general decoder, for anything parseCanonical declines.
func parseYAML(data []byte) (*Decoded, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("services.yaml is empty: want a document with version: 1")
		}
		return nil, fmt.Errorf("services.yaml is not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("line %d: services.yaml holds more than one YAML document", extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	// Aliases are refused outright: sync never writes them, and expanding
	// them is how an alias bomb turns kilobytes into gigabytes.
	if n := findAlias(root); n != nil {
		return nil, fmt.Errorf("line %d: YAML anchors and aliases are not allowed in services.yaml", n.Line)
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: services.yaml must be a mapping with version and services", root.Line)
	}

	out := &Decoded{}
	unknown := &unknownFields{}
	var version, list *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			if k.Value == "version" || k.Value == "services" {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			return nil, fmt.Errorf("line %d: duplicate key", k.Line)
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
			version = v
		case "services":
			list = v
		default:
			unknown.add(k.Value, k.Line)
		}
	}
	// Until the version says this is a services file, nothing read from it
	// is echoed: pointed at some other file (a secret, a config), the
	// error must not copy its keys or values into a log.
	if version == nil {
		return nil, errors.New("services.yaml: version is missing: want version: 1")
	}
	if version.Kind != yaml.ScalarNode || version.Value != strconv.Itoa(Version) {
		if version.Kind == yaml.ScalarNode && isSmallNumber(version.Value) {
			return nil, fmt.Errorf("line %d: version %s is not supported: want %d", version.Line, version.Value, Version)
		}
		return nil, fmt.Errorf("line %d: version is not supported: want %d", version.Line, Version)
	}
	out.File.Version = Version
	if list == nil || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		out.Warnings = unknown.warnings()
		return out, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: services must be a list", list.Line)
	}

	decoded := File{Version: Version, Services: make([]Service, 0, len(list.Content))}
	var early []Rejected
	for i, n := range list.Content {
		s, ps := decodeService(n, i, unknown)
		if len(ps) > 0 {
			early = append(early, Rejected{Service: s, Problems: withFieldChecks(&s, i, ps)})
			continue
		}
		decoded.Services = append(decoded.Services, s)
	}
	out.Warnings = unknown.warnings()
	valid, rejected := decoded.Split()
	out.File.Services = valid
	out.Rejected = append(early, rejected...)
	slices.SortStableFunc(out.Rejected, func(a, b Rejected) int { return a.Service.Line - b.Service.Line })
	return out, nil
}

// Decode is the strict form of Parse: any rejected service makes it fail with
// a Problems error listing all of them. Unknown fields are not errors.
func Decode(data []byte) (*File, []string, error) {
	d, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	if len(d.Rejected) > 0 {
		var ps Problems
		for _, r := range d.Rejected {
			ps = append(ps, r.Problems...)
		}
		return nil, d.Warnings, ps
	}
	return &d.File, d.Warnings, nil
}

// withFieldChecks adds the field rules' problems to a service that already
// failed to decode, so that one pass reports everything wrong with it; a field
// that failed to decode is not reported twice.
func withFieldChecks(s *Service, i int, decodeProblems []Problem) []Problem {
	named := make(map[string]bool, len(decodeProblems))
	for _, p := range decodeProblems {
		named[p.Field] = true
	}
	out := decodeProblems
	for _, p := range s.check(i, nil) {
		if !named[p.Field] {
			out = append(out, p)
		}
	}
	return out
}

func findAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n
	}
	for _, c := range n.Content {
		if a := findAlias(c); a != nil {
			return a
		}
	}
	return nil
}

// fieldDecoder collects the problems of one service while its fields are read.
type fieldDecoder struct {
	svc      *Service
	index    int
	problems []Problem
	unknown  *unknownFields
}

func (d *fieldDecoder) problem(n *yaml.Node, field, format string, args ...any) {
	line := d.svc.Line
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Service: label(d.svc, d.index), Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping walks a mapping node, refusing duplicate keys and warning about
// unknown ones; fields maps each known key to its handler.
func (d *fieldDecoder) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, strings.TrimSuffix(path, "."), "want a mapping")
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			d.problem(k, path+k.Value, "duplicate key")
			continue
		}
		seen[k.Value] = true
		if h, ok := fields[k.Value]; ok {
			h(v)
			continue
		}
		d.unknown.add(path+k.Value, k.Line)
	}
}

func (d *fieldDecoder) str(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.problem(n, field, "want a string")
		return ""
	}
	return n.Value
}

func (d *fieldDecoder) int(n *yaml.Node, field string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.problem(n, field, "%q is not a whole number", clip(n.Value))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 32)
	if err != nil {
		d.problem(n, field, "%q is not a whole number", clip(n.Value))
		return 0, false
	}
	return int(v), true
}

func (d *fieldDecoder) duration(n *yaml.Node, field string) time.Duration {
	s := d.str(n, field)
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		d.problem(n, field, "%q is not a positive Go duration such as 30s", clip(s))
		return 0
	}
	return v
}

func decodeService(n *yaml.Node, index int, unknown *unknownFields) (Service, []Problem) {
	s := Service{Line: n.Line, Protocol: TCP, Mode: ModeTCP}
	d := &fieldDecoder{svc: &s, index: index, unknown: unknown}
	var hasName, hasPort bool
	d.mapping(n, "", map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) { s.Name, hasName = d.str(v, "name"), true },
		"port": func(v *yaml.Node) { s.Port, hasPort = d.int(v, "port") },
		"protocol": func(v *yaml.Node) {
			s.Protocol = Protocol(d.str(v, "protocol"))
		},
		"mode":   func(v *yaml.Node) { s.Mode = Mode(d.str(v, "mode")) },
		"source": func(v *yaml.Node) { s.Source = Source(d.str(v, "source")) },
		"healthCheck": func(v *yaml.Node) {
			hc := &HealthCheck{}
			d.mapping(v, "healthCheck.", map[string]func(*yaml.Node){
				"path":     func(v *yaml.Node) { hc.Path = d.str(v, "healthCheck.path") },
				"interval": func(v *yaml.Node) { hc.Interval = d.duration(v, "healthCheck.interval") },
				"timeout":  func(v *yaml.Node) { hc.Timeout = d.duration(v, "healthCheck.timeout") },
				"failures": func(v *yaml.Node) {
					if n, ok := d.int(v, "healthCheck.failures"); ok {
						if n < 1 {
							// 0 would read as "absent": say so rather than drop it.
							d.problem(v, "healthCheck.failures", "%d is out of range 1..%d", n, MaxFailures)
						}
						hc.Failures = n
					}
				},
			})
			if hc.Path == "" {
				d.problem(v, "healthCheck.path", "is missing")
			}
			s.HealthCheck = hc
		},
		"timeouts": func(v *yaml.Node) {
			t := &Timeouts{}
			d.mapping(v, "timeouts.", map[string]func(*yaml.Node){
				"client": func(v *yaml.Node) { t.Client = d.duration(v, "timeouts.client") },
				"server": func(v *yaml.Node) { t.Server = d.duration(v, "timeouts.server") },
			})
			if t.Client != 0 || t.Server != 0 {
				s.Timeouts = t
			}
		},
		"servers": func(v *yaml.Node) {
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return
			}
			if v.Kind != yaml.SequenceNode {
				d.problem(v, "servers", "want a list")
				return
			}
			s.Servers = make([]Server, 0, len(v.Content))
			for j, sn := range v.Content {
				s.Servers = append(s.Servers, d.server(sn, j))
			}
		},
	})
	if !hasName {
		d.problem(nil, "name", "is missing")
	}
	if !hasPort {
		d.problem(nil, "port", "is missing")
	}
	return s, d.problems
}

func (d *fieldDecoder) server(n *yaml.Node, j int) Server {
	srv := Server{Weight: DefaultWeight}
	p := fmt.Sprintf("servers[%d].", j)
	var hasIP, hasPort bool
	d.mapping(n, p, map[string]func(*yaml.Node){
		"host": func(v *yaml.Node) { srv.Host = d.str(v, p+"host") },
		"ip": func(v *yaml.Node) {
			hasIP = true
			s := d.str(v, p+"ip")
			ip, err := netip.ParseAddr(s)
			if err != nil || ip.Zone() != "" {
				if s != "" {
					d.problem(v, p+"ip", "%q is not an IPv4 or IPv6 address", clip(s))
				}
				return
			}
			srv.IP = ip.Unmap()
		},
		"port":   func(v *yaml.Node) { srv.Port, hasPort = d.int(v, p+"port") },
		"weight": func(v *yaml.Node) { srv.Weight, _ = d.int(v, p+"weight") },
		"maxconn": func(v *yaml.Node) {
			if m, ok := d.int(v, p+"maxconn"); ok {
				if m < 1 {
					d.problem(v, p+"maxconn", "%d is not >= 1", m)
				}
				srv.MaxConn = m
			}
		},
	})
	if !hasIP {
		d.problem(n, p+"ip", "is missing")
	}
	if !hasPort {
		d.problem(n, p+"port", "is missing")
	}
	return srv
}

// isSmallNumber admits a version worth echoing: a few digits, nothing that
// could be a secret.
func isSmallNumber(s string) bool {
	if s == "" || len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxUnknownNames bounds the warnings of one document: a file of 300,000
// distinct unknown keys is reported in a bounded number of lines.
const maxUnknownNames = 20

// unknownFields counts the unknown fields of a document by name (a list
// index does not make a new name: servers[3].x is servers[].x), so that a
// file repeating one unknown key on every service logs one line, not one
// per occurrence.
type unknownFields struct {
	order  []string
	byName map[string]*unknownField
	other  int // occurrences of names beyond maxUnknownNames
}

type unknownField struct {
	count, line int
}

func (u *unknownFields) add(path string, line int) {
	name := clip(stripIndexes(path))
	if f := u.byName[name]; f != nil {
		f.count++
		return
	}
	if len(u.order) == maxUnknownNames {
		u.other++
		return
	}
	if u.byName == nil {
		u.byName = map[string]*unknownField{}
	}
	u.byName[name] = &unknownField{count: 1, line: line}
	u.order = append(u.order, name)
}

func (u *unknownFields) warnings() []string {
	if len(u.order) == 0 {
		return nil
	}
	out := make([]string, 0, len(u.order)+1)
	for _, name := range u.order {
		f := u.byName[name]
		if f.count == 1 {
			out = append(out, fmt.Sprintf("line %d: unknown field %q ignored", f.line, name))
		} else {
			out = append(out, fmt.Sprintf("line %d: unknown field %q ignored (%d times in the file)", f.line, name, f.count))
		}
	}
	if u.other > 0 {
		out = append(out, fmt.Sprintf("%d more unknown fields ignored, under names not listed (only the first %d names are)", u.other, maxUnknownNames))
	}
	return out
}

// stripIndexes turns "servers[12].x" into "servers[].x".
func stripIndexes(path string) string {
	if strings.IndexByte(path, '[') < 0 {
		return path
	}
	var b strings.Builder
	skip := false
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '[':
			skip = true
			b.WriteByte(c)
		case c == ']':
			skip = false
			b.WriteByte(c)
		case !skip:
			b.WriteByte(c)
		}
	}
	return b.String()
}
