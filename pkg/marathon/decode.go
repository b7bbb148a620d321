package marathon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
}

type versionInfo struct {
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
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

// errDuplicate is a field the decoder uses given twice in one object. Real
// Marathon never does that; refusing is simpler and safer than guessing
// which one was meant (encoding/json v1 merged them, v2 refuses too).
var errDuplicate = errors.New("field given twice")

// maxDepth is encoding/json's nesting limit, so a hostile body cannot make
// the skipper's stack grow without bound.
const maxDepth = 10000

// decodeApps reads the response {"apps": [...]} as a stream and decodes only
// the fields in app, skipping (but validating) everything else, so the 30 MB
// document of a large cluster is never held whole, neither as bytes nor as a
// generic tree.
//
// It is a hand-written scanner rather than encoding/json because decoding
// took ~85 % of a refresh with encoding/json (see docs/performance.md). It
// keeps encoding/json's rules for the values it keeps: field names match
// case-insensitively, null leaves a value unset, numbers for int fields must
// be integers, invalid UTF-8 becomes U+FFFD; FuzzDecodeMatchesEncodingJSON
// holds it to that. The one difference: a used field given twice in one
// object is an error (errDuplicate).
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
	*a = app{Labels: a.Labels, Ports: a.Ports[:0], PortDefinitions: a.PortDefinitions[:0], Tasks: a.Tasks[:0]}
}

func (t *task) reset() {
	*t = task{idb: t.idb[:0], Ports: t.Ports[:0], HealthCheckResults: t.HealthCheckResults[:0]}
}

// scanner is a JSON reader over an io.Reader with one fixed-size buffer
// (grown only for a single token longer than it). buf[pos:end] is unread;
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
	intern  map[string]string
	states  map[string]*string // one *string per distinct task state
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
// (valid only during the call) positioned at the member's value. A null
// object calls nothing; callers that care check null first.
func (s *scanner) object(field func(key []byte) error) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if err := s.expect('{', "object"); err != nil {
		return err
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("exceeded max depth")
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		key, err := s.key()
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

// key reads a member name and its colon.
func (s *scanner) key() ([]byte, error) {
	c, err := s.peek()
	if err != nil {
		return nil, err
	}
	if c != '"' {
		return nil, s.errorf("want object key, got %s", describe(c))
	}
	raw, plain, err := s.stringToken()
	if err != nil {
		return nil, err
	}
	if !plain {
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
// nothing.
func (s *scanner) array(elem func() error) error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if err := s.expect('[', "array"); err != nil {
		return err
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("exceeded max depth")
	}
	c, err := s.peek()
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

// stringToken scans the string at pos (which holds its opening quote) and
// consumes it. raw is the content between the quotes, escapes untouched,
// valid until the next read; plain means raw is valid UTF-8 without escapes.
func (s *scanner) stringToken() (raw []byte, plain bool, err error) {
	escaped, nonASCII := false, false
	i := s.pos + 1
	for {
		i = plainRun(s.buf[:s.end], i)
		if i == s.end {
			var ok bool
			if i, ok = s.ensure(i, 1); !ok {
				return nil, false, s.eof()
			}
			continue
		}
		switch c := s.buf[i]; {
		case c == '"':
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

// str reads a string value; null leaves *dst as it is.
func (s *scanner) str(dst *string, intern bool) error {
	raw, null, err := s.stringValue()
	if err != nil || null {
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
	raw, null, err := s.stringValue()
	if err != nil || null {
		return err
	}
	*dst = append((*dst)[:0], raw...)
	return nil
}

// stringValue reads a string or null; raw, unescaped, is valid until the
// next read.
func (s *scanner) stringValue() (raw []byte, null bool, err error) {
	c, err := s.peek()
	if err != nil {
		return nil, false, err
	}
	if c == 'n' {
		return nil, true, s.literal("null")
	}
	if c != '"' {
		return nil, false, s.errorf("want string, got %s", describe(c))
	}
	raw, plain, err := s.stringToken()
	if err != nil {
		return nil, false, err
	}
	if !plain {
		raw = s.unquote(raw)
	}
	return raw, false, nil
}

// internBytes returns b as a string, one copy per distinct value: hosts,
// protocols, states and label keys repeat across thousands of apps and
// tasks. The table is bounded so hostile input cannot grow it without end.
func (s *scanner) internBytes(b []byte) string {
	if v, ok := s.intern[string(b)]; ok {
		return v
	}
	v := string(b)
	if s.intern == nil {
		s.intern = make(map[string]string)
	}
	if len(s.intern) < 1<<16 {
		s.intern[v] = v
	}
	return v
}

// number scans a number token at pos and consumes it.
func (s *scanner) number() ([]byte, error) {
	i := s.pos
	get := func() (byte, bool) {
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
	tok := s.buf[s.pos:i]
	s.pos = i
	return tok, nil
}

// integer reads a number into an int as encoding/json does: fractions,
// exponents and overflow are errors; null leaves *dst as it is.
func (s *scanner) integer(dst *int) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == 'n' {
		return s.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return s.errorf("want number, got %s", describe(c))
	}
	tok, err := s.number()
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
		return s.errorf("number %s is not an int", tok)
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
	return s.errorf("want bool, got %s", describe(c))
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
				if _, err := s.key(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if _, _, err := s.stringToken(); err != nil {
				return err
			}
		case c == 't':
			err = s.literal("true")
		case c == 'f':
			err = s.literal("false")
		case c == 'n':
			err = s.literal("null")
		case c == '-' || c >= '0' && c <= '9':
			_, err = s.number()
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
					if _, err := s.key(); err != nil {
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

// fields tracks which used fields an object has given, to refuse
// duplicates; match maps a key to its field index, exact or (as
// encoding/json) case-insensitive, or -1 for a field the decoder skips.
type fields uint32

func (f *fields) see(i int, name string) error {
	if *f&(1<<i) != 0 {
		return fmt.Errorf("%q: %w", name, errDuplicate)
	}
	*f |= 1 << i
	return nil
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
		key, err := s.key()
		if err != nil {
			return err
		}
		if string(key) != "apps" {
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
	if !found {
		return errors.New(`no "apps" array in the response`)
	}
	return nil
}

var appFields = []string{"id", "labels", "ports", "portDefinitions", "container", "healthChecks", "tasks", "version", "versionInfo"}

func (s *scanner) app(a *app) error {
	var seen fields
	return s.object(func(key []byte) error {
		i := match(key, appFields)
		if i < 0 {
			return s.skip()
		}
		if err := seen.see(i, appFields[i]); err != nil {
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
}

func (s *scanner) labels(dst *map[string]string) error {
	if null, err := s.null(); null || err != nil {
		*dst = nil
		return err
	}
	m := *dst
	if m == nil {
		m = map[string]string{}
		*dst = m
	}
	return s.object(func(key []byte) error {
		k := s.internBytes(key)
		var v string
		if err := s.str(&v, true); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		m[k] = v
		return nil
	})
}

// slice reads an array into *dst (null: nil, [] : empty, as encoding/json).
// A non-nil *dst is reused: its backing array, and through reset the
// elements' own slices, are overwritten rather than allocated again.
func slice[T any](s *scanner, dst *[]T, elem func(*T) error) error {
	return sliceReuse(s, dst, elem, nil)
}

func sliceReuse[T any](s *scanner, dst *[]T, elem func(*T) error, reset func(*T)) error {
	if null, err := s.null(); null || err != nil {
		*dst = nil
		return err
	}
	out := (*dst)[:0]
	if out == nil {
		out = []T{}
	}
	err := s.array(func() error {
		if n := len(out); n < cap(out) && reset != nil {
			out = out[:n+1]
			reset(&out[n])
		} else {
			var zero T
			out = append(out, zero)
		}
		if err := elem(&out[len(out)-1]); err != nil {
			return fmt.Errorf("[%d]: %w", len(out)-1, err)
		}
		return nil
	})
	*dst = out
	return err
}

func (s *scanner) ints(dst *[]int) error {
	return slice(s, dst, s.integer)
}

var portDefFields = []string{"port", "protocol"}

func (s *scanner) portDefs(dst *[]portDef) error {
	return slice(s, dst, func(p *portDef) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, portDefFields)
			if i < 0 {
				return s.skip()
			}
			if err := seen.see(i, portDefFields[i]); err != nil {
				return err
			}
			if i == 0 {
				return s.integer(&p.Port)
			}
			return s.str(&p.Protocol, true)
		})
	})
}

var portMappingFields = []string{"servicePort", "protocol"}

func (s *scanner) portMappings(dst *[]portMapping) error {
	return slice(s, dst, func(p *portMapping) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, portMappingFields)
			if i < 0 {
				return s.skip()
			}
			if err := seen.see(i, portMappingFields[i]); err != nil {
				return err
			}
			if i == 0 {
				return s.integer(&p.ServicePort)
			}
			return s.str(&p.Protocol, true)
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
		if i < 0 {
			return s.skip()
		}
		if err := seen.see(i, containerFields[i]); err != nil {
			return err
		}
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
			if match(key, portMappingsName) < 0 {
				return s.skip()
			}
			if err := seenD.see(0, "portMappings"); err != nil {
				return err
			}
			return s.portMappings(&d.PortMappings)
		})
	})
}

var portMappingsName = []string{"portMappings"}

var versionInfoFields = []string{"lastConfigChangeAt"}

func (s *scanner) versionInfo(v *versionInfo) error {
	var seen fields
	return s.object(func(key []byte) error {
		if match(key, versionInfoFields) < 0 {
			return s.skip()
		}
		if err := seen.see(0, versionInfoFields[0]); err != nil {
			return err
		}
		return s.str(&v.LastConfigChangeAt, true)
	})
}

var healthCheckFields = []string{"protocol", "path", "portIndex", "intervalSeconds", "timeoutSeconds", "maxConsecutiveFailures"}

func (s *scanner) healthChecks(dst *[]healthCheck) error {
	return slice(s, dst, func(h *healthCheck) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, healthCheckFields)
			if i < 0 {
				return s.skip()
			}
			if err := seen.see(i, healthCheckFields[i]); err != nil {
				return err
			}
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
			var n int
			if err := s.integer(&n); err != nil {
				return err
			}
			h.PortIndex = &n
			return nil
		})
	})
}

var taskFields = []string{"id", "host", "state", "ports", "healthCheckResults", "version"}

var hcResultFields = []string{"alive", "lastFailureCause"}

func (s *scanner) tasks(dst *[]task) error {
	return sliceReuse(s, dst, func(t *task) error {
		var seen fields
		return s.object(func(key []byte) error {
			i := match(key, taskFields)
			if i < 0 {
				return s.skip()
			}
			if err := seen.see(i, taskFields[i]); err != nil {
				return err
			}
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
				if err := s.str(&st, true); err != nil {
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
					if i < 0 {
						return s.skip()
					}
					if err := seen.see(i, hcResultFields[i]); err != nil {
						return err
					}
					if i == 0 {
						return s.boolean(&r.Alive)
					}
					return s.str(&r.LastFailureCause, true)
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
	if len(s.states) < 1<<10 {
		s.states[st] = p
	}
	return p
}
