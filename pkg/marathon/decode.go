package marathon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// app holds only the fields of a Marathon app that the compile rules use;
// everything else in the (large) response is skipped by the decoder.
type app struct {
	ID              string            `json:"id"`
	Labels          map[string]string `json:"labels"`
	Ports           []int             `json:"ports"`
	PortDefinitions []portDef         `json:"portDefinitions"`
	Container       *container        `json:"container"`
	HealthChecks    []healthCheck     `json:"healthChecks"`
	Tasks           []task            `json:"tasks"`
	// Version and VersionInfo tell which tasks run the current definition
	// (see versions.go).
	Version     string      `json:"version"`
	VersionInfo versionInfo `json:"versionInfo"`

	// malformed lists the values of this app that were not of the type
	// Marathon gives them (see "Malformed apps" in README.md); skip is set
	// when one of them takes the whole app out.
	malformed []malformed
	dropped   int // malformed values past maxMalformed: counted, not described
	skip      bool
	pos       int // index in the body's apps, to name an app without a usable id
}

type versionInfo struct {
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
}

// scope is what a malformed value takes out of the compile.
type scope uint8

const (
	scopeField scope = iota // only that value (a label)
	scopeTask               // the task that holds it
	scopeApp                // the whole app
)

func (sc scope) String() string {
	return [...]string{"field", "task", "app"}[sc]
}

// malformed is one value that could not be used: of an unexpected JSON
// type, a used field given twice in one object, or longer than maxValue.
// The decoder consumes it and goes on, so one bad app or task never fails
// the whole body; only broken JSON does.
type malformed struct {
	path  string // where, e.g. `tasks[2].host`, `labels."com.example.x"`
	msg   string // what, e.g. "want string, got number"
	scope scope
}

type container struct {
	Docker       *docker       `json:"docker"`
	PortMappings []portMapping `json:"portMappings"` // Marathon 1.5+
}

type docker struct {
	PortMappings []portMapping `json:"portMappings"`
}

type portMapping struct {
	ServicePort int    `json:"servicePort"`
	Protocol    string `json:"protocol"`
}

type portDef struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type healthCheck struct {
	Protocol               string `json:"protocol"`
	Path                   string `json:"path"`
	PortIndex              *int   `json:"portIndex"`
	IntervalSeconds        int    `json:"intervalSeconds"`
	TimeoutSeconds         int    `json:"timeoutSeconds"`
	MaxConsecutiveFailures int    `json:"maxConsecutiveFailures"`
}

type task struct {
	// ID is what encoding/json (the tests' reference) fills; the scanner
	// keeps the id in idb instead, reusing its bytes from task to task: an
	// id is only compared and, at debug level, logged, and a string per
	// task was 40,000 allocations (2.5 MB) per refresh at 10,000 apps.
	ID                 string `json:"id"`
	idb                []byte
	Host               string     `json:"host"`
	State              *string    `json:"state"`
	Ports              []int      `json:"ports"`
	HealthCheckResults []hcResult `json:"healthCheckResults"`
	Version            string     `json:"version"` // the app version it was started with

	skip bool // a value of the task is malformed: it is not served
}

// id is the task's id, for log lines.
func (t *task) id() string {
	if t.ID != "" {
		return t.ID
	}
	return string(t.idb)
}

// compareIDs orders tasks by id, whichever field holds it.
func compareIDs(x, y *task) int {
	if x.ID != "" || y.ID != "" {
		return strings.Compare(x.id(), y.id())
	}
	return bytes.Compare(x.idb, y.idb)
}

type hcResult struct {
	Alive            bool   `json:"alive"`
	LastFailureCause string `json:"lastFailureCause"`
}

// maxDepth is encoding/json's nesting limit, so a hostile body cannot make
// the skipper's stack grow without bound.
const maxDepth = 10000

// maxValue bounds a string or number the decoder keeps (ids, hosts, label
// keys and values), counted as the bytes between the quotes: a longer one
// is a malformed value (see malformed), consumed without being held. Real
// values are far shorter (a Marathon id or label is at most a few KiB), so
// 1 MiB is generous; with it every buffer of the decoder is bounded: the
// read buffer (a token never needs more than ~2 MiB of it), the unescape
// and key buffers (maxValue each) and the intern tables (entry count and
// entry length). Values of skipped fields are scanned without being held,
// whatever their length; the body's size is capped by the client.
const maxValue = 1 << 20

// maxIntern is the longest string the intern tables keep.
const maxIntern = 256

// maxMalformed bounds the malformed values described per app (a value can
// be a few bytes of JSON, its description far more): the ones past it are
// only counted (app.dropped), and still take out what they decide.
const maxMalformed = 32

// decodeApps reads the response {"apps": [...]} as a stream and decodes only
// the fields in app, skipping (but validating) everything else, so the 30 MB
// document of a large cluster is never held whole, neither as bytes nor as a
// generic tree.
//
// It is a hand-written scanner rather than encoding/json because decoding
// took ~85 % of a refresh with encoding/json (see docs/performance.md). It
// keeps encoding/json's rules for the values it keeps: field names match
// case-insensitively, null leaves a value unset, numbers for int fields must
// be integers, invalid UTF-8 becomes U+FFFD, data after the top-level object
// is an error; FuzzDecodeMatchesEncodingJSON holds it to that. Where
// encoding/json would fail the whole body on a value of the wrong type (or
// merge a used field given twice), the scanner records the value as
// malformed on its app and goes on: the compile rules then skip that label,
// task or app (README.md, "Malformed apps"). Label values that are JSON
// numbers are read as the original's Python str() of them.
func decodeApps(r io.Reader) ([]app, error) {
	var apps []app
	err := decodeAppStream(r, func() *app {
		apps = append(apps, app{})
		return &apps[len(apps)-1]
	}, func(*app) error { return nil })
	if err != nil {
		return nil, err
	}
	return apps, nil
}

// decodeAppStream decodes like decodeApps but hands each app over as soon as
// it is read, so a caller can compile while the rest of the body is still
// arriving and never hold all apps at once. next returns the app to decode
// into: a zero app, or one given back to reuse whose slices and label map
// keep their capacity (the decoder resets every field it owns, so nothing
// from the previous app shows through). done receives it once complete;
// the app is the caller's again from then on.
func decodeAppStream(r io.Reader, next func() *app, done func(*app) error) error {
	s := &scanner{r: r, buf: make([]byte, 64<<10)}
	return s.document(next, done)
}

// reset clears a for reuse, keeping the capacity of the slices the decoder
// fills most (tasks with their ports and health results, labels).
func (a *app) reset() {
	clear(a.Labels)
	*a = app{Labels: a.Labels, Ports: a.Ports[:0], PortDefinitions: a.PortDefinitions[:0], Tasks: a.Tasks[:0], malformed: a.malformed[:0]}
}

func (t *task) reset() {
	*t = task{idb: t.idb[:0], Ports: t.Ports[:0], HealthCheckResults: t.HealthCheckResults[:0]}
}

// scanner is a JSON reader over an io.Reader with one fixed-size buffer
// (grown only for a single kept token longer than it, up to about
// 2*maxValue). buf[pos:end] is unread;
// whatever starts at pos survives a refill, so a token is scanned from pos
// and pos is moved past it only once it is complete.
type scanner struct {
	r       io.Reader
	buf     []byte
	pos     int
	end     int
	off     int64 // input offset of buf[0], for error messages
	rerr    error // sticky read error; io.EOF at the end of the body
	depth   int
	stack   []byte // open containers while skipping
	scratch []byte // unescaped string
	keyBuf  []byte // a key kept across a refill
	keyLong bool   // the last key read was longer than maxValue (not kept)
	intern  map[string]string
	states  map[string]*string // one *string per distinct task state
	bad     []malformed        // of the app being read, up to maxMalformed
	nbad    int                // all of them, described or not
	appSkip bool               // one of them, described or not, skips the app
}

// mark is where the malformed values of the app being read stood: readers
// compare with it to see whether a value they read was malformed.
type mark struct{ idx, n int }

func (s *scanner) mark() mark { return mark{len(s.bad), s.nbad} }

// since reports whether a malformed value was met after m.
func (s *scanner) since(m mark) bool { return s.nbad > m.n }

// lastIsApp makes the malformed value just met (after m) skip the app.
func (s *scanner) lastIsApp(m mark) {
	if !s.since(m) {
		return
	}
	s.appSkip = true
	if len(s.bad) > m.idx {
		s.bad[len(s.bad)-1].scope = scopeApp
	}
}

// syntaxError carries the input offset, as encoding/json's does.
type syntaxError struct {
	msg    string
	offset int64
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.offset) }

func (s *scanner) errorf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...), offset: s.off + int64(s.pos)}
}

// more reads more input, keeping buf[pos:end]. It reports false at the end
// of the input or on a read error (kept in rerr).
func (s *scanner) more() bool {
	if s.rerr != nil {
		return false
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.off += int64(s.pos)
		s.pos, s.end = 0, n
	}
	if s.end == len(s.buf) {
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.rerr = io.ErrNoProgress
	return false
}

// eof is the error for input that ended early: the read error if there was
// one, else io.ErrUnexpectedEOF.
func (s *scanner) eof() error {
	if s.rerr != nil && s.rerr != io.EOF {
		return s.rerr
	}
	return io.ErrUnexpectedEOF
}

// ensure makes buf[i:i+k] readable, where i >= pos; it returns i adjusted
// for a refill that moved the buffer.
func (s *scanner) ensure(i, k int) (int, bool) {
	for s.end-i < k {
		rel := i - s.pos
		if !s.more() {
			return s.pos + rel, false
		}
		i = s.pos + rel
	}
	return i, true
}

// peek skips whitespace and returns the next byte without consuming it.
func (s *scanner) peek() (byte, error) {
	for {
		for s.pos < s.end {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, nil
			}
		}
		if !s.more() {
			return 0, s.eof()
		}
	}
}

func (s *scanner) expect(want byte, what string) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != want {
		return s.errorf("want %s, got %s", what, describe(c))
	}
	s.pos++
	return nil
}

func describe(c byte) string {
	switch {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return strconv.QuoteRune(rune(c))
}

// null consumes a null if one is next.
func (s *scanner) null() (bool, error) {
	c, err := s.peek()
	if err != nil || c != 'n' {
		return false, err
	}
	return true, s.literal("null")
}

func (s *scanner) literal(lit string) error {
	i, ok := s.ensure(s.pos, len(lit))
	if !ok {
		if s.end > i && !strings.HasPrefix(lit, string(s.buf[i:s.end])) {
			return s.errorf("invalid literal")
		}
		return s.eof()
	}
	if string(s.buf[i:i+len(lit)]) != lit {
		return s.errorf("invalid literal")
	}
	s.pos = i + len(lit)
	return nil
}

// object reads an object, calling field for each member with the key
// (valid only during the call; s.keyLong when it was too long to keep)
// positioned at the member's value. A null object calls nothing; callers
// that care check null first. Any other value is consumed and recorded as
// malformed.
func (s *scanner) object(field func(key []byte) error) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		return s.literal("null")
	case '{':
		s.pos++
	default:
		return s.wrong("object", c)
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("exceeded max depth")
	}
	c, err = s.peek()
	if err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		key, err := s.key(true)
		if err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		c, err := s.peek()
		if err != nil {
			return err
		}
		s.pos++
		switch c {
		case ',':
			continue
		case '}':
			s.depth--
			return nil
		}
		s.pos--
		return s.errorf("want ',' or '}' in object, got %s", describe(c))
	}
}

// key reads a member name and its colon. Unless keep, the name is only
// validated (skipped objects); a kept name longer than maxValue is not kept
// either, and sets s.keyLong.
func (s *scanner) key(keep bool) ([]byte, error) {
	c, err := s.peek()
	if err != nil {
		return nil, err
	}
	if c != '"' {
		return nil, s.errorf("want object key, got %s", describe(c))
	}
	raw, plain, err := s.stringToken(keep)
	s.keyLong = err == errTooLong
	if err != nil && !s.keyLong {
		return nil, err
	}
	if !plain && raw != nil {
		raw = s.unquote(raw)
	}
	if s.pos < s.end && s.buf[s.pos] == ':' {
		s.pos++
		return raw, nil
	}
	// Finding the colon may refill and move the buffer: keep the key.
	s.keyBuf = append(s.keyBuf[:0], raw...)
	return s.keyBuf, s.expect(':', "':' after object key")
}

// array reads an array, calling elem for each element. A null array calls
// nothing; any other value is consumed and recorded as malformed.
func (s *scanner) array(elem func() error) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		return s.literal("null")
	case '[':
		s.pos++
	default:
		return s.wrong("array", c)
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("exceeded max depth")
	}
	c, err = s.peek()
	if err != nil {
		return err
	}
	if c == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		c, err := s.peek()
		if err != nil {
			return err
		}
		s.pos++
		switch c {
		case ',':
			continue
		case ']':
			s.depth--
			return nil
		}
		s.pos--
		return s.errorf("want ',' or ']' in array, got %s", describe(c))
	}
}

// strClass marks the bytes that end the fast scan of a string: the quote,
// the backslash, control characters (invalid) and non-ASCII (UTF-8 to check).
var strClass = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80
	}
	return t
}()

// plainRun returns the index of the first byte at or after i that strClass
// marks, or len(b). Eight bytes are tested at a time (most of a Marathon
// document is string content: task ids, timestamps, image names), then the
// table finishes the word that holds the byte.
func plainRun(b []byte, i int) int {
	for i+8 <= len(b) && specialIn(binary.LittleEndian.Uint64(b[i:])) == 0 {
		i += 8
	}
	for i < len(b) && !strClass[b[i]] {
		i++
	}
	return i
}

// specialIn is non-zero when one of the eight bytes of w is one strClass
// marks. Each test is the classic exact "has a byte that is zero / less
// than n" word trick: it never misses such a byte; what it flags beyond the
// first one does not matter, since the table looks at the bytes after.
func specialIn(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	return (quote-ones)&^quote&highs |
		(backslash-ones)&^backslash&highs |
		(w-ones*0x20)&^w&highs |
		w&highs
}

// errTooLong is a kept string or number longer than maxValue: consumed, not
// kept.
var errTooLong = fmt.Errorf("longer than %d bytes", maxValue)

// stringToken scans the string at pos (which holds its opening quote) and
// consumes it. raw is the content between the quotes, escapes untouched,
// valid until the next read; plain means raw is valid UTF-8 without escapes.
// Unless keep, the string is only validated: what is scanned is let go at
// each refill, so its length costs no memory, and raw is nil. A kept string
// longer than maxValue is let go the same way and gives errTooLong.
func (s *scanner) stringToken(keep bool) (raw []byte, plain bool, err error) {
	escaped, nonASCII, long := false, false, false
	i := s.pos + 1
	for {
		i = plainRun(s.buf[:s.end], i)
		if i == s.end {
			if keep && i-s.pos-1 > maxValue {
				keep, long = false, true
			}
			if !keep {
				s.pos = i // at a clean point: never inside an escape
			}
			var ok bool
			if i, ok = s.ensure(i, 1); !ok {
				return nil, false, s.eof()
			}
			continue
		}
		switch c := s.buf[i]; {
		case c == '"':
			if keep && i-s.pos-1 > maxValue {
				keep, long = false, true
			}
			if !keep {
				s.pos = i + 1
				if long {
					return nil, false, errTooLong
				}
				return nil, false, nil
			}
			raw = s.buf[s.pos+1 : i]
			s.pos = i + 1
			return raw, !escaped && (!nonASCII || utf8.Valid(raw)), nil
		case c == '\\':
			escaped = true
			var ok bool
			if i, ok = s.ensure(i, 2); !ok {
				return nil, false, s.eof()
			}
			switch s.buf[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i, ok = s.ensure(i, 6); !ok {
					return nil, false, s.eof()
				}
				for _, h := range s.buf[i+2 : i+6] {
					if !isHex(h) {
						return nil, false, s.errorAt(i, "invalid \\u escape in string")
					}
				}
				i += 6
			default:
				return nil, false, s.errorAt(i, "invalid escape in string")
			}
		case c < 0x20:
			return nil, false, s.errorAt(i, "control character in string")
		default: // non-ASCII: checked as a whole at the end
			nonASCII = true
			i++
		}
	}
}

func (s *scanner) errorAt(i int, msg string) error {
	return &syntaxError{msg: msg, offset: s.off + int64(i)}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes escapes and replaces invalid UTF-8 with U+FFFD, as
// encoding/json does, into scratch. raw has been validated by stringToken.
func (s *scanner) unquote(raw []byte) []byte {
	out := s.scratch[:0]
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			switch e := raw[r+1]; e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := hex4(raw[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(raw) && raw[r] == '\\' && raw[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(raw[r+2:])); dec != unicode.ReplacementChar {
							out = utf8.AppendRune(out, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // " \ /
				out = append(out, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			out = utf8.AppendRune(out, rr)
			r += size
		}
	}
	s.scratch = out
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// str reads a string value; null (or a malformed value) leaves *dst as it
// is.
func (s *scanner) str(dst *string, intern bool) error {
	raw, ok, err := s.stringValue()
	if err != nil || !ok {
		return err
	}
	if intern {
		*dst = s.internBytes(raw)
	} else {
		*dst = string(raw)
	}
	return nil
}

// bytesInto is str into a byte slice, reusing its array.
func (s *scanner) bytesInto(dst *[]byte) error {
	raw, ok, err := s.stringValue()
	if err != nil || !ok {
		return err
	}
	*dst = append((*dst)[:0], raw...)
	return nil
}

// stringValue reads a string; raw, unescaped, is valid until the next read.
// ok is false for null, and for a value of another type or too long, which
// is consumed and recorded as malformed.
func (s *scanner) stringValue() (raw []byte, ok bool, err error) {
	c, err := s.peek()
	if err != nil {
		return nil, false, err
	}
	if c == 'n' {
		return nil, false, s.literal("null")
	}
	if c != '"' {
		return nil, false, s.wrong("string", c)
	}
	raw, plain, err := s.stringToken(true)
	if err == errTooLong {
		s.malformed(errTooLong.Error())
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !plain {
		raw = s.unquote(raw)
	}
	return raw, true, nil
}

// wrong consumes (and validates) a value of the wrong type at pos and
// records it as malformed; c is its first byte.
func (s *scanner) wrong(want string, c byte) error {
	if err := s.skip(); err != nil {
		return err
	}
	s.malformed("want " + want + ", got " + describe(c))
	return nil
}

// malformed records a malformed value of the app being read; the readers
// above it say where (within).
func (s *scanner) malformed(msg string) {
	s.nbad++
	if len(s.bad) < maxMalformed {
		s.bad = append(s.bad, malformed{msg: msg})
	}
}

// within places the malformed values met since m under name (a field name
// or "[i]"), and raises their scope to at least sc.
func (s *scanner) within(m mark, name string, sc scope) {
	if sc == scopeApp && s.since(m) {
		s.appSkip = true
	}
	for j := m.idx; j < len(s.bad); j++ {
		m := &s.bad[j]
		switch {
		case m.path == "":
			m.path = name
		case m.path[0] == '[':
			m.path = name + m.path
		default:
			m.path = name + "." + m.path
		}
		m.scope = max(m.scope, sc)
	}
}

// internBytes returns b as a string, one copy per distinct value: hosts,
// protocols, states and label keys repeat across thousands of apps and
// tasks. The table is bounded (entries and their length) so hostile input
// cannot grow it without end.
func (s *scanner) internBytes(b []byte) string {
	if v, ok := s.intern[string(b)]; ok {
		return v
	}
	v := string(b)
	if s.intern == nil {
		s.intern = make(map[string]string)
	}
	if len(s.intern) < 1<<16 && len(v) <= maxIntern {
		s.intern[v] = v
	}
	return v
}

// number scans a number token at pos and consumes it. Unless keep, it is
// only validated (and let go at each refill: its length costs no memory),
// and tok is nil; a kept number longer than maxValue is let go the same way
// and gives errTooLong.
func (s *scanner) number(keep bool) (tok []byte, err error) {
	i := s.pos
	long := false
	get := func() (byte, bool) {
		if i == s.end {
			if keep && i-s.pos > maxValue {
				keep, long = false, true
			}
			if !keep {
				s.pos = i
			}
		}
		var ok bool
		if i, ok = s.ensure(i, 1); !ok {
			return 0, false
		}
		return s.buf[i], true
	}
	digits := func() int {
		n := 0
		for {
			c, ok := get()
			if !ok || c < '0' || c > '9' {
				return n
			}
			i++
			n++
		}
	}
	bad := func() error {
		if s.rerr != nil && i >= s.end {
			return s.eof()
		}
		return s.errorAt(i, "invalid number")
	}
	if c, ok := get(); ok && c == '-' {
		i++
	}
	c, ok := get()
	switch {
	case !ok:
		return nil, bad()
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		digits()
	default:
		return nil, bad()
	}
	if c, ok := get(); ok && c == '.' {
		i++
		if digits() == 0 {
			return nil, bad()
		}
	}
	if c, ok := get(); ok && (c == 'e' || c == 'E') {
		i++
		if c, ok := get(); ok && (c == '+' || c == '-') {
			i++
		}
		if digits() == 0 {
			return nil, bad()
		}
	}
	if keep && i-s.pos > maxValue {
		keep, long = false, true
	}
	if !keep {
		s.pos = i
		if long {
			return nil, errTooLong
		}
		return nil, nil
	}
	tok = s.buf[s.pos:i]
	s.pos = i
	return tok, nil
}

// integer reads a number into an int as encoding/json does; null leaves
// *dst as it is. Fractions, exponents, overflow (encoding/json's
// UnmarshalTypeError) and other types are malformed values.
func (s *scanner) integer(dst *int) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == 'n' {
		return s.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return s.wrong("number", c)
	}
	tok, err := s.number(true)
	if err == errTooLong {
		s.malformed("number " + errTooLong.Error())
		return nil
	}
	if err != nil {
		return err
	}
	if n := len(tok); n > 0 && n < 19 {
		neg := tok[0] == '-'
		d := tok
		if neg {
			d = d[1:]
		}
		v, ok := 0, true
		for _, c := range d {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			v = v*10 + int(c-'0')
		}
		if ok {
			if neg {
				v = -v
			}
			*dst = v
			return nil
		}
	}
	v, err := strconv.ParseInt(string(tok), 10, strconv.IntSize)
	if err != nil {
		s.malformed("number " + clip(string(tok)) + " is not an int")
		return nil
	}
	*dst = int(v)
	return nil
}

func (s *scanner) boolean(dst *bool) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		return s.literal("null")
	case 't':
		*dst = true
		return s.literal("true")
	case 'f':
		*dst = false
		return s.literal("false")
	}
	return s.wrong("bool", c)
}

// skip reads and validates one value of any kind without keeping it,
// iteratively so that nesting costs no call stack.
func (s *scanner) skip() error {
	s.stack = s.stack[:0]
	for {
		// A value.
		c, err := s.peek()
		if err != nil {
			return err
		}
		switch {
		case c == '{' || c == '[':
			s.pos++
			s.stack = append(s.stack, c)
			if s.depth+len(s.stack) > maxDepth {
				return s.errorf("exceeded max depth")
			}
			next, err := s.peek()
			if err != nil {
				return err
			}
			if c == '{' && next == '}' || c == '[' && next == ']' {
				s.pos++
				s.stack = s.stack[:len(s.stack)-1]
				break
			}
			if c == '{' {
				if _, err := s.key(false); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if _, _, err := s.stringToken(false); err != nil {
				return err
			}
		case c == 't':
			err = s.literal("true")
		case c == 'f':
			err = s.literal("false")
		case c == 'n':
			err = s.literal("null")
		case c == '-' || c >= '0' && c <= '9':
			_, err = s.number(false)
		default:
			return s.errorf("invalid character %s looking for a value", describe(c))
		}
		if err != nil {
			return err
		}
		// After a value: close containers, or go on to the next member.
		for {
			if len(s.stack) == 0 {
				return nil
			}
			c, err := s.peek()
			if err != nil {
				return err
			}
			top := s.stack[len(s.stack)-1]
			if c == ',' {
				s.pos++
				if top == '{' {
					if _, err := s.key(false); err != nil {
						return err
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.pos++
				s.stack = s.stack[:len(s.stack)-1]
				continue
			}
			return s.errorf("invalid character %s after a value", describe(c))
		}
	}
}

// fields tracks which used fields an object has given: a used field given
// twice is malformed (encoding/json v1 merged them; v2 refuses them; real
// Marathon never sends them, and guessing which one was meant is unsafe).
// match maps a key to its field index, exact or (as encoding/json)
// case-insensitive, or -1 for a field the decoder skips.
type fields uint32

// first reports whether field i is given for the first time in the object;
// if not, it consumes the value and records it as malformed.
func (f *fields) first(s *scanner, i int) (bool, error) {
	if *f&(1<<i) == 0 {
		*f |= 1 << i
		return true, nil
	}
	if err := s.skip(); err != nil {
		return false, err
	}
	s.malformed("given twice")
	return false, nil
}

func match(key []byte, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	// Each rune of key matches one byte of a name, and only a non-ASCII
	// rune takes more than one byte: a key shorter than a name, or longer
	// but all ASCII, cannot fold to it. Most keys of an app are skipped
	// fields, so this spares foldEqual on nearly every key.
	nonASCII := false
	for _, c := range key {
		if c >= utf8.RuneSelf {
			nonASCII = true
			break
		}
	}
	for i, n := range names {
		if len(key) < len(n) || (len(key) > len(n) && !nonASCII) {
			continue
		}
		if foldEqual(key, n) {
			return i
		}
	}
	return -1
}

// foldEqual is encoding/json's case-insensitive name match (bytes.EqualFold
// semantics: so "ſtate" matches "state" but "ıd" not "id"); name is ASCII.
func foldEqual(key []byte, name string) bool {
	j := 0
	for i := 0; i < len(key); j++ {
		var r rune
		if c := key[i]; c < utf8.RuneSelf {
			r = rune(upper(c))
			i++
		} else {
			rr, n := utf8.DecodeRune(key[i:])
			r = foldRune(rr)
			i += n
		}
		if j >= len(name) || r != rune(upper(name[j])) {
			return false
		}
	}
	return j == len(name)
}

// foldRune is the smallest rune of r's fold set, as encoding/json folds.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// document reads {"apps": [...]}; other top-level members are skipped.
// Like encoding/json, anything but white space after the object is an
// error.
func (s *scanner) document(next func() *app, done func(*app) error) error {
	if err := s.expect('{', "object"); err != nil {
		return err
	}
	n := 0
	found := false
	c, err := s.peek()
	if err != nil {
		return err
	}
	for c != '}' {
		key, err := s.key(true)
		if err != nil {
			return err
		}
		if string(key) != "apps" || s.keyLong {
			if err := s.skip(); err != nil {
				return err
			}
		} else {
			if found {
				return errors.New(`"apps" given twice`)
			}
			found = true
			if err := s.expect('[', `"apps" array`); err != nil {
				return err
			}
			// Depth counts from each app, as encoding/json did decoding one
			// app at a time.
			s.depth = 0
			for {
				c, err := s.peek()
				if err != nil {
					return err
				}
				if c == ']' {
					s.pos++
					break
				}
				if n > 0 {
					if err := s.expect(',', "',' between apps"); err != nil {
						return err
					}
				}
				a := next()
				a.reset()
				a.pos = n
				if err := s.app(a); err != nil {
					return fmt.Errorf("apps[%d]: %w", n, err)
				}
				n++
				if err := done(a); err != nil {
					return err
				}
			}
		}
		if c, err = s.peek(); err != nil {
			return err
		}
		if c == ',' {
			s.pos++
			if c, err = s.peek(); err != nil {
				return err
			}
			if c == '}' {
				return s.errorf("want object key, got '}'")
			}
		} else if c != '}' {
			return s.errorf("want ',' or '}' in object, got %s", describe(c))
		}
	}
	s.pos++
	if !found {
		return errors.New(`no "apps" array in the response`)
	}
	if c, err := s.peek(); err == nil {
		return s.errorf("invalid character %s after top-level value", describe(c))
	} else if s.rerr != io.EOF {
		return err
	}
	return nil
}

var appFields = []string{"id", "labels", "ports", "portDefinitions", "container", "healthChecks", "tasks", "version", "versionInfo"}

// appFieldScope is what a malformed value in each app field takes out. The
// id names the service; the port declarations and health checks decide
// which ports are served and which tasks may serve them: without them
// whole, guessing could serve the wrong port or an unhealthy task, so the
// app is skipped. A bad label value only loses that label (labels decide
// per label), and a bad value in a task only that task (tasks decide it
// themselves); labels or tasks that are not an object or array at all
// skip the app (labels and tasks say so).
//
// A version that cannot be read counts as absent: every task is then taken
// to run the current definition, as before versions were read.
var appFieldScope = []scope{scopeApp, scopeField, scopeApp, scopeApp, scopeApp, scopeApp, scopeField, scopeField, scopeField}

func (s *scanner) app(a *app) error {
	s.bad, s.nbad, s.appSkip = s.bad[:0], 0, false
	var seen fields
	err := s.object(func(key []byte) error {
		i := match(key, appFields)
		if i < 0 || s.keyLong {
			return s.skip()
		}
		m := s.mark()
		defer func() {
			if s.since(m) {
				s.within(m, appFields[i], appFieldScope[i])
			}
		}()
		if first, err := seen.first(s, i); !first {
			s.lastIsApp(m)
			return err
		}
		var err error
		switch i {
		case 0:
			err = s.str(&a.ID, false)
		case 1:
			err = s.labels(&a.Labels)
		case 2:
			err = s.ints(&a.Ports)
		case 3:
			err = s.portDefs(&a.PortDefinitions)
		case 4:
			err = s.container(&a.Container)
		case 5:
			err = s.healthChecks(&a.HealthChecks)
		case 6:
			err = s.tasks(&a.Tasks)
		case 7:
			err = s.str(&a.Version, true)
		case 8:
			err = s.versionInfo(&a.VersionInfo)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", appFields[i], err)
		}
		return nil
	})
	if err != nil || s.nbad == 0 {
		return err
	}
	a.skip = s.appSkip
	for i := range s.bad {
		if s.bad[i].path == "" { // the app itself is not an object
			s.bad[i].scope = scopeApp
		}
		a.skip = a.skip || s.bad[i].scope == scopeApp
	}
	a.malformed = append(a.malformed, s.bad...)
	a.dropped = s.nbad - len(s.bad)
	return nil
}

// labels reads the labels object. A value that is a JSON number is read as
// the original proxymatic (Python) read it: str() of what json.loads gave,
// so 100 is "100" and 100.0 or 1e2 is "100.0" (see pyNumber). Any other
// value that is not a string (null, bool, object, array) loses that label.
// Labels that are not an object at all skip the app.
func (s *scanner) labels(dst *map[string]string) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		*dst = nil
		return s.literal("null")
	case '{':
	default:
		mk := s.mark()
		if err := s.wrong("object", c); err != nil {
			return err
		}
		s.lastIsApp(mk)
		return nil
	}
	m := *dst
	if m == nil {
		m = map[string]string{}
		*dst = m
	}
	return s.object(func(key []byte) error {
		if s.keyLong {
			if err := s.skip(); err != nil {
				return err
			}
			s.malformed("label key " + errTooLong.Error())
			return nil
		}
		k := s.internBytes(key)
		mark := s.mark()
		c, err := s.peek()
		if err != nil {
			return err
		}
		switch {
		case c == '"':
			var v string
			raw, ok, err := s.stringValue()
			if err != nil {
				return err
			}
			if ok {
				v = s.internBytes(raw)
				m[k] = v
			}
		case c == '-' || c >= '0' && c <= '9':
			tok, err := s.number(true)
			if err == errTooLong {
				s.malformed("number " + errTooLong.Error())
				break
			}
			if err != nil {
				return err
			}
			m[k] = pyNumber(tok)
		default:
			if err := s.wrong("string or number", c); err != nil {
				return err
			}
		}
		if s.since(mark) {
			s.within(mark, strconv.Quote(clip(k)), scopeField)
		}
		return nil
	})
}

// pyNumber is Python's str() of what json.loads makes of a JSON number tok:
// an int keeps its digits ("-0" is 0), a float (a fraction or an exponent)
// is printed by repr: the shortest digits that read back, positional from
// 1e-4 up to 1e16 with at least one decimal ("100.0", "0.0001"), else
// d.ddde±XX ("1e+16", "1.5e-05"); out of range is "inf" or "-inf".
func pyNumber(tok []byte) string {
	t := string(tok)
	if !strings.ContainsAny(t, ".eE") {
		if t == "-0" {
			return "0"
		}
		return t
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil { // out of range: Python's float() gives inf
		if f < 0 {
			return "-inf"
		}
		return "inf"
	}
	sign := ""
	if math.Signbit(f) {
		sign, f = "-", -f
	}
	if f == 0 {
		return sign + "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	point := x + 1 // digits[:point] are the integer part
	switch {
	case point > 16 || point < -3:
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if x < 0 {
			es, x = "-", -x
		}
		if x < 10 {
			es += "0"
		}
		return sign + m + "e" + es + strconv.Itoa(x)
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}

// slice reads an array into *dst (null: nil, [] : empty, as encoding/json).
// A non-nil *dst is reused: its backing array, and through reset the
// elements' own slices, are overwritten rather than allocated again. An
// element of the wrong type is left zero, in its place, as encoding/json
// does, so the indexes of the others (port index i) do not move.
func slice[T any](s *scanner, dst *[]T, elem func(*T) error) error {
	return sliceReuse(s, dst, elem, nil)
}

func sliceReuse[T any](s *scanner, dst *[]T, elem func(*T) error, reset func(*T)) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case 'n':
		*dst = nil
		return s.literal("null")
	case '[':
	default:
		return s.wrong("array", c) // *dst left as it is, as encoding/json does
	}
	out := (*dst)[:0]
	if out == nil {
		out = []T{}
	}
	err = s.array(func() error {
		if n := len(out); n < cap(out) && reset != nil {
			out = out[:n+1]
			reset(&out[n])
		} else {
			var zero T
			out = append(out, zero)
		}
		mark := s.mark()
		if err := elem(&out[len(out)-1]); err != nil {
			return fmt.Errorf("[%d]: %w", len(out)-1, err)
		}
		if s.since(mark) {
			s.within(mark, "["+strconv.Itoa(len(out)-1)+"]", scopeField)
		}
		return nil
	})
	*dst = out
	return err
}

func (s *scanner) ints(dst *[]int) error {
	return slice(s, dst, s.integer)
}

// member reads one used field of a nested object: a duplicate is consumed
// and recorded, and whatever is malformed in it is placed under name.
func (s *scanner) member(seen *fields, i int, name string, read func() error) error {
	mark := s.mark()
	first, err := seen.first(s, i)
	if first {
		err = read()
	}
	if s.since(mark) {
		s.within(mark, name, scopeField)
	}
	return err
}

var portDefFields = []string{"port", "protocol"}

func (s *scanner) portDefs(dst *[]portDef) error {
	return slice(s, dst, func(p *portDef) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, portDefFields)
			if i < 0 || s.keyLong {
				return s.skip()
			}
			return s.member(&seen, i, portDefFields[i], func() error {
				if i == 0 {
					return s.integer(&p.Port)
				}
				return s.str(&p.Protocol, true)
			})
		})
	})
}

var portMappingFields = []string{"servicePort", "protocol"}

func (s *scanner) portMappings(dst *[]portMapping) error {
	return slice(s, dst, func(p *portMapping) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, portMappingFields)
			if i < 0 || s.keyLong {
				return s.skip()
			}
			return s.member(&seen, i, portMappingFields[i], func() error {
				if i == 0 {
					return s.integer(&p.ServicePort)
				}
				return s.str(&p.Protocol, true)
			})
		})
	})
}

var containerFields = []string{"docker", "portMappings"}

func (s *scanner) container(dst **container) error {
	if null, err := s.null(); null || err != nil {
		*dst = nil
		return err
	}
	c := &container{}
	*dst = c
	var seen fields
	return s.object(func(key []byte) error {
		i := match(key, containerFields)
		if i < 0 || s.keyLong {
			return s.skip()
		}
		return s.member(&seen, i, containerFields[i], func() error {
			if i == 1 {
				return s.portMappings(&c.PortMappings)
			}
			if null, err := s.null(); null || err != nil {
				return err
			}
			d := &docker{}
			c.Docker = d
			var seenD fields
			return s.object(func(key []byte) error {
				if match(key, portMappingsName) < 0 || s.keyLong {
					return s.skip()
				}
				return s.member(&seenD, 0, "portMappings", func() error {
					return s.portMappings(&d.PortMappings)
				})
			})
		})
	})
}

var portMappingsName = []string{"portMappings"}

var versionInfoFields = []string{"lastConfigChangeAt"}

func (s *scanner) versionInfo(v *versionInfo) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	var seen fields
	return s.object(func(key []byte) error {
		i := match(key, versionInfoFields)
		if i < 0 || s.keyLong {
			return s.skip()
		}
		return s.member(&seen, i, versionInfoFields[i], func() error {
			return s.str(&v.LastConfigChangeAt, true)
		})
	})
}

var healthCheckFields = []string{"protocol", "path", "portIndex", "intervalSeconds", "timeoutSeconds", "maxConsecutiveFailures"}

func (s *scanner) healthChecks(dst *[]healthCheck) error {
	return slice(s, dst, func(h *healthCheck) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, healthCheckFields)
			if i < 0 || s.keyLong {
				return s.skip()
			}
			return s.member(&seen, i, healthCheckFields[i], func() error {
				switch i {
				case 0:
					return s.str(&h.Protocol, true)
				case 1:
					return s.str(&h.Path, true)
				case 3:
					return s.integer(&h.IntervalSeconds)
				case 4:
					return s.integer(&h.TimeoutSeconds)
				case 5:
					return s.integer(&h.MaxConsecutiveFailures)
				}
				if null, err := s.null(); null || err != nil {
					h.PortIndex = nil
					return err
				}
				n, mark := 0, s.mark()
				if err := s.integer(&n); err != nil || s.since(mark) {
					return err
				}
				h.PortIndex = &n
				return nil
			})
		})
	})
}

var taskFields = []string{"id", "host", "state", "ports", "healthCheckResults", "version"}

var hcResultFields = []string{"alive", "lastFailureCause"}

// tasks reads the tasks. A malformed value anywhere in a task (id, host,
// state, ports, health results) skips that task: each of them decides
// whether, where and as what it is served. Tasks that are not an array at
// all skip the app.
func (s *scanner) tasks(dst *[]task) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != '[' && c != 'n' {
		mk := s.mark()
		if err := s.wrong("array", c); err != nil {
			return err
		}
		s.lastIsApp(mk)
		return nil
	}
	return sliceReuse(s, dst, func(t *task) error {
		mark := s.mark()
		defer func() {
			if s.since(mark) {
				t.skip = true
				for j := mark.idx; j < len(s.bad); j++ {
					s.bad[j].scope = max(s.bad[j].scope, scopeTask)
				}
			}
		}()
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, taskFields)
			if i < 0 || s.keyLong {
				return s.skip()
			}
			return s.member(&seen, i, taskFields[i], func() error {
				switch i {
				case 0:
					return s.bytesInto(&t.idb)
				case 1:
					return s.str(&t.Host, true)
				case 2:
					if null, err := s.null(); null || err != nil {
						t.State = nil
						return err
					}
					var st string
					mark := s.mark()
					if err := s.str(&st, true); err != nil || s.since(mark) {
						return err
					}
					t.State = s.statePtr(st)
					return nil
				case 3:
					return s.ints(&t.Ports)
				case 5:
					return s.str(&t.Version, true)
				}
				return slice(s, &t.HealthCheckResults, func(r *hcResult) error {
					var seen fields
					return s.object(func(key []byte) error {
						i := match(key, hcResultFields)
						if i < 0 || s.keyLong {
							return s.skip()
						}
						return s.member(&seen, i, hcResultFields[i], func() error {
							if i == 0 {
								return s.boolean(&r.Alive)
							}
							return s.str(&r.LastFailureCause, true)
						})
					})
				})
			})
		})
	}, (*task).reset)
}

// statePtr shares one *string per distinct state (st is interned): 40,000
// tasks need a handful of them, not one allocation each. Nothing writes
// through the pointer.
func (s *scanner) statePtr(st string) *string {
	if p, ok := s.states[st]; ok {
		return p
	}
	p := &st
	if s.states == nil {
		s.states = make(map[string]*string)
	}
	if len(s.states) < 1<<10 && len(st) <= maxIntern {
		s.states[st] = p
	}
	return p
}
