package services

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxNameLen is the longest service name or host accepted (a DNS name's limit).
const MaxNameLen = 253

// MaxPathLen bounds a health-check path.
const MaxPathLen = 1024

// MaxCheckDuration bounds healthCheck.interval and .timeout: a day, far
// below the 2,147,483,647 ms HAProxy's timers hold; longer is a typo, not
// an intent.
const MaxCheckDuration = 24 * time.Hour

// MaxFailures bounds healthCheck.failures: a server marked down only after
// more than a thousand failed checks is never marked down in practice.
const MaxFailures = 1000

// Problem is one thing wrong with one field of one service.
type Problem struct {
	Service string // the service's name, or "services[i]" when it has no valid name
	Line    int    // 0 when unknown
	Field   string // as spelled in the YAML, e.g. "servers[1].ip"
	Msg     string
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString("service ")
	b.WriteString(strconv.Quote(p.Service))
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	if p.Field != "" {
		b.WriteString(": ")
		b.WriteString(p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a document; it is the error Validate and
// Decode return, so a caller sees them all at once.
type Problems []Problem

func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// Rejected is a service that failed validation and why.
type Rejected struct {
	Service  Service
	Problems []Problem
}

// MaxLabelLen is the longest DNS label: one dot-separated part of a name.
const MaxLabelLen = 63

// ValidName reports whether s may be used as a service name or server host:
// lowercase [a-z0-9._-], starting with a letter or digit, and a DNS name by
// the label rules: no empty label (so no leading, trailing or doubled dot),
// at most 63 bytes a label and 253 in all. A name becomes a virtual host
// (<name>.<domain>) that nginx must accept, and nothing else may reach a
// proxy config, so a newline, space, ';', '{' or quote can never get
// through.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	label := 0 // length of the current label
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		case c == '.' && label > 0:
			label = 0
			continue
		default:
			return false
		}
		if label++; label > MaxLabelLen {
			return false
		}
	}
	return label > 0
}

// ASCIILower lower-cases the ASCII letters of s and nothing else. Every id,
// host and name proxymatic lowers goes through it: strings.ToLower is
// Unicode, and would turn a Kelvin sign (U+212A) into 'k' and so make a
// name that was never given pass as valid.
func ASCIILower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// ASCIIUpper is ASCIILower's counterpart (strings.ToUpper turns a long s,
// U+017F, into 'S').
func ASCIIUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// ValidPath reports whether p may be used as an HTTP health-check path: it
// starts with '/' and holds only unreserved URL characters, '/', '%' and a
// query's '?', '=', '&', '+', ':', '@' and ','. Spaces, quotes, '#', ';' and
// braces are config syntax in one proxy or another and are refused.
func ValidPath(p string) bool {
	if len(p) == 0 || len(p) > MaxPathLen || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~/%?=&+:@,", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// label names a service in problems: its name when valid, its index otherwise.
func label(s *Service, i int) string {
	if ValidName(s.Name) {
		return s.Name
	}
	return fmt.Sprintf("services[%d]", i)
}

// check appends the problems of one service on its own (not the uniqueness of
// its key, which needs the whole file).
func (s *Service) check(i int, out []Problem) []Problem {
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Service: label(s, i), Line: s.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if !ValidName(s.Name) {
		add("name", "%q is not a valid name: want lowercase [a-z0-9._-], starting with a letter or digit, dot-separated labels of 1 to %d characters, at most %d in all", clip(s.Name), MaxLabelLen, MaxNameLen)
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port", "%d is out of range 1..65535", s.Port)
	}
	switch s.Protocol {
	case TCP, UDP:
	default:
		add("protocol", "%q is not tcp or udp", clip(string(s.Protocol)))
	}
	switch s.Mode {
	case ModeTCP:
	case ModeHTTP:
		if s.Protocol == UDP {
			add("mode", "http needs protocol tcp")
		}
	default:
		add("mode", "%q is not tcp or http", clip(string(s.Mode)))
	}
	switch s.Source {
	case "", SourceMarathon, SourceRegistrator:
	default:
		add("source", "%q is not marathon or registrator", clip(string(s.Source)))
	}
	if hc := s.HealthCheck; hc != nil {
		if !ValidPath(hc.Path) {
			add("healthCheck.path", "%q is not a valid path: want '/' then URL characters, no spaces, quotes, ';' or '#'", clip(hc.Path))
		}
		// Zero is "absent" in memory; a written 0 is refused by the decoder.
		if hc.Interval < 0 || hc.Interval > MaxCheckDuration {
			add("healthCheck.interval", "%s is out of range: want a positive duration up to %s", hc.Interval, MaxCheckDuration)
		}
		if hc.Timeout < 0 || hc.Timeout > MaxCheckDuration {
			add("healthCheck.timeout", "%s is out of range: want a positive duration up to %s", hc.Timeout, MaxCheckDuration)
		}
		if hc.Failures < 0 || hc.Failures > MaxFailures {
			add("healthCheck.failures", "%d is out of range 1..%d", hc.Failures, MaxFailures)
		}
	}
	if s.Timeouts != nil {
		if s.Timeouts.Client < 0 {
			add("timeouts.client", "%s is negative", s.Timeouts.Client)
		}
		if s.Timeouts.Server < 0 {
			add("timeouts.server", "%s is negative", s.Timeouts.Server)
		}
	}
	type addrKey struct {
		ip   netip.Addr
		port int
	}
	seen := make(map[addrKey]bool, len(s.Servers))
	for j, srv := range s.Servers {
		f := func(name string) string { return fmt.Sprintf("servers[%d].%s", j, name) }
		if srv.Host != "" && !ValidName(srv.Host) {
			add(f("host"), "%q is not a valid host: want lowercase [a-z0-9._-], starting with a letter or digit, dot-separated labels of 1 to %d characters", clip(srv.Host), MaxLabelLen)
		}
		if !srv.IP.IsValid() || srv.IP.Zone() != "" {
			add(f("ip"), "want an IPv4 or IPv6 address without zone")
		} else if why := NeverService(srv.IP); why != "" {
			add(f("ip"), "%s is %s", srv.IP, why)
		}
		if srv.Port < 1 || srv.Port > 65535 {
			add(f("port"), "%d is out of range 1..65535", srv.Port)
		}
		if srv.Weight < 0 || srv.Weight > MaxWeight {
			add(f("weight"), "%d is out of range 0..%d", srv.Weight, MaxWeight)
		}
		if srv.MaxConn < 0 {
			add(f("maxconn"), "%d is not >= 1", srv.MaxConn)
		}
		k := addrKey{srv.IP, srv.Port}
		if seen[k] {
			add(f("ip"), "%s is listed twice", srv.Address())
		}
		seen[k] = true
	}
	s.checkLimits(add)
	return out
}

// Validate returns nil or a Problems error listing every problem in the
// file: each service's fields and any (port, protocol) used twice.
func (f *File) Validate() error {
	_, rejected := f.Split()
	if len(rejected) == 0 {
		return nil
	}
	var ps Problems
	for _, r := range rejected {
		ps = append(ps, r.Problems...)
	}
	return ps
}

// Split divides the file into its valid services and the rejected ones, so
// that one bad entry never blocks the rest. When several services share a
// (port, protocol), the first in file order is kept and the others are
// rejected: a file that sync wrote never has duplicates, so this only meets
// hand-edited files, and keeping the first is the predictable choice.
//
// When nothing is rejected, valid is f.Services itself, not a copy.
func (f *File) Split() (valid []Service, rejected []Rejected) {
	if f.sortedAndValid() {
		return f.Services, nil
	}
	valid = make([]Service, 0, len(f.Services))
	firstLine := make(map[Key]int, len(f.Services))
	for i := range f.Services {
		s := &f.Services[i]
		ps := s.check(i, nil)
		if len(ps) == 0 {
			if line, dup := firstLine[s.Key()]; dup {
				msg := fmt.Sprintf("%s is already used by an earlier service", s.Key())
				if line > 0 {
					msg = fmt.Sprintf("%s is already used by the service on line %d", s.Key(), line)
				}
				ps = append(ps, Problem{Service: label(s, i), Line: s.Line, Field: "port", Msg: msg})
			} else {
				firstLine[s.Key()] = s.Line
			}
		}
		if len(ps) > 0 {
			rejected = append(rejected, Rejected{Service: *s, Problems: ps})
			continue
		}
		valid = append(valid, *s)
	}
	return valid, rejected
}

// sortedAndValid is Split's fast path for the file sync writes and every
// reload reads: each service valid and the keys strictly increasing, so no
// key can repeat. It needs no map and no copy, which at 10,000 services is
// a few megabytes of fresh memory per check (and Split runs on every parse,
// merge and render). Anything else takes the full path.
func (f *File) sortedAndValid() bool {
	for i := range f.Services {
		s := &f.Services[i]
		if i > 0 && f.Services[i-1].Key().Compare(s.Key()) >= 0 {
			return false
		}
		if len(s.check(i, nil)) > 0 {
			return false
		}
	}
	return true
}

// clip keeps hostile values short in log lines and error messages.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

func itoa(i int) string { return strconv.Itoa(i) }

// Validate checks one service on its own (everything but the uniqueness of
// its key, which needs the whole file) and returns nil or a Problems error.
// Renderers use it as their last guard, per service, without the cost of
// splitting a whole file again.
func (s *Service) Validate() error {
	if ps := s.check(0, nil); len(ps) > 0 {
		return Problems(ps)
	}
	return nil
}

// MaxFilePathLen bounds the run-dir paths written into proxy configs (unix
// socket paths are limited to 108 bytes with the file name).
const MaxFilePathLen = 200

// SafeFilePath reports whether p may be written into a proxy config
// unquoted: an absolute, clean path of [A-Za-z0-9._/-], at most 200 bytes.
// The run dir, sockets, pid files and temp paths all go through it.
func SafeFilePath(p string) bool {
	if p == "" || p[0] != '/' || filepath.Clean(p) != p || len(p) > MaxFilePathLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == '/':
		default:
			return false
		}
	}
	return true
}
