package signal

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Error is a malformed or invalid message. Its text is what the coordinator
// sends back as the "failure reason", in the style of bittorrent-tracker
// ("invalid info_hash: ...").
type Error struct {
	Field string // the offending field ("info_hash", "x_caps.upload_bps"); "" for the whole message
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "invalid message: " + e.Msg
	}
	return "invalid " + e.Field + ": " + e.Msg
}

func errorf(field, msg string) *Error { return &Error{Field: field, Msg: msg} }

// maxDepth bounds the nesting of values we skip or capture (offer and
// answer objects, unknown fields), so hostile input cannot exhaust the stack.
const maxDepth = 32

// lexer is a strict JSON reader over one message. It validates everything it
// consumes (grammar, UTF-8, escapes) and never allocates for ASCII strings
// without escapes. The zero value with data set is ready; it is not safe for
// concurrent use.
type lexer struct {
	data    []byte
	pos     int
	scratch []byte // decoded strings that needed unescaping
}

func (l *lexer) ws() {
	for l.pos < len(l.data) {
		switch l.data[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (l *lexer) peek() byte {
	l.ws()
	if l.pos < len(l.data) {
		return l.data[l.pos]
	}
	return 0
}

func (l *lexer) syntax(what string) *Error {
	if l.pos >= len(l.data) {
		return errorf("", "truncated JSON: expected "+what)
	}
	return errorf("", "malformed JSON at byte "+strconv.Itoa(l.pos)+": expected "+what)
}

func (l *lexer) expect(c byte, what string) error {
	if l.peek() != c {
		return l.syntax(what)
	}
	l.pos++
	return nil
}

// object iterates the members of an object, calling member with each key
// (valid until the next call) positioned before the value. member must
// consume the value.
func (l *lexer) object(field string, member func(key []byte) error) error {
	if l.peek() != '{' {
		if field == "" {
			return errorf("", "not a JSON object")
		}
		return errorf(field, "want an object")
	}
	l.pos++
	if l.peek() == '}' {
		l.pos++
		return nil
	}
	for {
		if l.peek() != '"' {
			return l.syntax("object key")
		}
		key, err := l.readString(field)
		if err != nil {
			return err
		}
		if err := l.expect(':', "':'"); err != nil {
			return err
		}
		l.ws()
		if err := member(key); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.pos++
		case '}':
			l.pos++
			return nil
		default:
			return l.syntax("',' or '}'")
		}
	}
}

// readString reads a JSON string and returns its UTF-8 bytes: a slice of the
// input when it holds no escapes, else of l.scratch (valid until the next
// readString).
func (l *lexer) readString(field string) ([]byte, error) {
	if l.peek() != '"' {
		return nil, errorf(field, "want a string")
	}
	l.pos++
	start := l.pos
	// Fast path: printable ASCII without escapes.
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		if c == '"' {
			l.pos++
			return l.data[start : l.pos-1], nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		l.pos++
	}
	l.scratch = append(l.scratch[:0], l.data[start:l.pos]...)
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		switch {
		case c == '"':
			l.pos++
			return l.scratch, nil
		case c < 0x20:
			return nil, errorf(field, "control character in string")
		case c == '\\':
			r, err := l.readEscape(field)
			if err != nil {
				return nil, err
			}
			l.scratch = utf8.AppendRune(l.scratch, r)
		case c < 0x80:
			l.scratch = append(l.scratch, c)
			l.pos++
		default:
			r, n := utf8.DecodeRune(l.data[l.pos:])
			if r == utf8.RuneError && n <= 1 {
				return nil, errorf(field, "invalid UTF-8")
			}
			l.scratch = append(l.scratch, l.data[l.pos:l.pos+n]...)
			l.pos += n
		}
	}
	return nil, errorf(field, "unterminated string")
}

// skipString validates and skips a string without decoding it: the hot
// path of relaying (SDP offers and answers are long strings). It checks
// eight bytes at a time for the bytes that need attention: the closing
// quote, backslashes, control characters and non-ASCII.
func (l *lexer) skipString(field string) error {
	d := l.data
	i := l.pos + 1 // past the opening quote
	for i < len(d) {
		for i+8 <= len(d) {
			m := special8(binary.LittleEndian.Uint64(d[i:]))
			if m == 0 {
				i += 8
				continue
			}
			// The lowest flagged byte is exact (borrows only propagate
			// upwards). The usual one, a short escape such as the \r\n
			// ending every SDP line, is stepped over here.
			i += bits.TrailingZeros64(m) >> 3
			if d[i] != '\\' || i+1 >= len(d) || shortEscape[d[i+1]] == 0 {
				break
			}
			i += 2
		}
		if i >= len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '"':
			l.pos = i + 1
			return nil
		case c == '\\':
			if i+1 < len(d) {
				switch d[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
					continue
				}
			}
			l.pos = i
			if _, err := l.readEscape(field); err != nil {
				return err
			}
			i = l.pos
		case c < 0x20:
			l.pos = i
			return errorf(field, "control character in string")
		case c < 0x80:
			i++
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n <= 1 {
				l.pos = i
				return errorf(field, "invalid UTF-8")
			}
			i += n
		}
	}
	l.pos = len(d)
	return errorf(field, "unterminated string")
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 returns a mask whose lowest set bit is the high bit of the first
// of the eight bytes of x (little endian) that is '"', '\\', below 0x20 or
// at least 0x80; 0 when there is none (classic SWAR byte tests).
func special8(x uint64) uint64 {
	q := x ^ ('"' * lsb)
	b := x ^ ('\\' * lsb)
	return (x | (x-0x20*lsb)&^x | (q-lsb)&^q | (b-lsb)&^b) & msb
}

// readEscape decodes the escape at l.pos (a backslash) into a rune, joining
// UTF-16 surrogate pairs. A lone surrogate becomes U+FFFD, as JavaScript's
// TextEncoder would write it.
func (l *lexer) readEscape(field string) (rune, error) {
	if l.pos+1 >= len(l.data) {
		return 0, errorf(field, "unterminated escape")
	}
	c := l.data[l.pos+1]
	l.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := l.hex4()
		if !ok {
			return 0, errorf(field, "invalid \\u escape")
		}
		if utf16.IsSurrogate(r) {
			if r < 0xDC00 && l.pos+1 < len(l.data) && l.data[l.pos] == '\\' && l.data[l.pos+1] == 'u' {
				save := l.pos
				l.pos += 2
				if r2, ok := l.hex4(); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						return d, nil
					}
				}
				l.pos = save
			}
			return utf8.RuneError, nil
		}
		return r, nil
	}
	return 0, errorf(field, "invalid escape \\"+string(rune(c)))
}

func (l *lexer) hex4() (rune, bool) {
	if l.pos+4 > len(l.data) {
		return 0, false
	}
	var r rune
	for _, c := range l.data[l.pos : l.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	l.pos += 4
	return r, true
}

// readID reads a 20-character binary string.
//
// IDs are random bytes (offer_ids always are), which clients write as
// JSON.stringify does: most bytes as two UTF-8 bytes (U+0080-U+00FF) or as
// an escape. The fast loop decodes those forms and printable ASCII; at
// anything else (an escaped surrogate, invalid UTF-8, a wrong length) it
// hands over to readIDSlow from the start of the string, which decides.
func (l *lexer) readID(field string) (ID, error) {
	var id ID
	if l.peek() != '"' {
		return id, badID(field)
	}
	d := l.data
	i := l.pos + 1
	for n := range IDLen {
		if i+1 >= len(d) {
			return l.readIDSlow(field)
		}
		c := d[i]
		switch idClass[c] {
		case idPlain:
			id[n] = c
			i++
		case idLead:
			c2 := d[i+1]
			if c2&0xC0 != 0x80 {
				return l.readIDSlow(field)
			}
			id[n] = c<<6 | c2&0x3F
			i += 2
		case idEscape:
			e := d[i+1]
			if v := shortEscape[e]; v != 0 {
				id[n] = v
				i += 2
				continue
			}
			if e != 'u' || i+5 >= len(d) || d[i+2] != '0' || d[i+3] != '0' {
				return l.readIDSlow(field)
			}
			hi, lo := hexVal[d[i+4]], hexVal[d[i+5]]
			if hi|lo > 0xF {
				return l.readIDSlow(field)
			}
			id[n] = hi<<4 | lo
			i += 6
		default:
			return l.readIDSlow(field)
		}
	}
	if i >= len(d) || d[i] != '"' {
		return l.readIDSlow(field)
	}
	l.pos = i + 1
	return id, nil
}

// Byte classes of readID's fast loop.
const (
	idSlow   = iota // '"', control characters, other non-ASCII: readIDSlow
	idPlain         // printable ASCII but '"' and '\\': the byte itself
	idLead          // 0xC2, 0xC3: the lead byte of U+0080-U+00FF
	idEscape        // '\\'
)

var idClass, shortEscape, hexVal = func() (class, short, hex [256]byte) {
	for c := 0x20; c < 0x80; c++ {
		class[c] = idPlain
	}
	class['"'], class['\\'] = idSlow, idEscape
	class[0xC2], class[0xC3] = idLead, idLead
	for e, v := range map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'} {
		short[e] = v
	}
	for c := range hex {
		hex[c] = 0xFF
	}
	for c := '0'; c <= '9'; c++ {
		hex[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		hex[c], hex[c-'a'+'A'] = byte(c-'a'+10), byte(c-'a'+10)
	}
	return
}()

// readIDSlow is readID for any input: it decodes every JSON string form and
// says what is wrong. l.pos is at the opening quote.
func (l *lexer) readIDSlow(field string) (ID, error) {
	var id ID
	l.pos++
	n := 0
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		var r rune
		switch {
		case c == '"':
			l.pos++
			if n != IDLen {
				return ID{}, badID(field)
			}
			return id, nil
		case c < 0x20:
			return ID{}, badID(field)
		case c == '\\':
			var err error
			if r, err = l.readEscape(field); err != nil {
				return ID{}, err
			}
		case c < 0x80:
			r = rune(c)
			l.pos++
		default:
			var size int
			r, size = utf8.DecodeRune(l.data[l.pos:])
			if r == utf8.RuneError && size <= 1 {
				return ID{}, errorf(field, "invalid UTF-8")
			}
			l.pos += size
		}
		if r > 0xFF || n == IDLen {
			return ID{}, badID(field)
		}
		id[n] = byte(r)
		n++
	}
	return ID{}, badID(field)
}

func badID(field string) error { return errorf(field, "want a 20-character binary string") }

// readNumber reads a JSON number as float64.
func (l *lexer) readNumber(field string) (float64, error) {
	l.ws()
	start := l.pos
	d := l.data
	i := l.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return 0, errorf(field, "want a number")
	}
	intEnd := i
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, errorf(field, "malformed number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, errorf(field, "malformed number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	l.pos = i
	// Fast path: a short plain integer.
	if intEnd == i && i-start <= 15 {
		neg := d[start] == '-'
		var v int64
		for _, c := range d[start:i] {
			if c != '-' {
				v = v*10 + int64(c-'0')
			}
		}
		if neg {
			v = -v
		}
		return float64(v), nil
	}
	f, err := strconv.ParseFloat(string(d[start:i]), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, errorf(field, "malformed number")
	}
	return f, nil
}

// readCount reads a non-negative integer (a byte count, a number of peers),
// or null (returned as -1). Fractions are truncated, as JavaScript clients
// may send computed floats; values beyond 2^53 are refused.
func (l *lexer) readCount(field string) (int64, error) {
	if l.isNull() {
		return -1, nil
	}
	f, err := l.readNumber(field)
	if err != nil {
		return 0, err
	}
	if f < 0 || f > 1<<53 || f != f {
		return 0, errorf(field, "want a non-negative integer")
	}
	return int64(f), nil
}

func (l *lexer) readBool(field string) (bool, error) {
	l.ws()
	switch {
	case l.literal("true"):
		return true, nil
	case l.literal("false"):
		return false, nil
	}
	return false, errorf(field, "want true or false")
}

// isNull consumes a null literal if one is next.
func (l *lexer) isNull() bool {
	l.ws()
	return l.literal("null")
}

func (l *lexer) literal(s string) bool {
	if len(l.data)-l.pos >= len(s) && string(l.data[l.pos:l.pos+len(s)]) == s {
		l.pos += len(s)
		return true
	}
	return false
}

// skip validates and skips one value, returning its raw bytes.
func (l *lexer) skip(field string) ([]byte, error) {
	l.ws()
	start := l.pos
	if err := l.skipValue(field, 0); err != nil {
		return nil, err
	}
	return l.data[start:l.pos], nil
}

func (l *lexer) skipValue(field string, depth int) error {
	if depth > maxDepth {
		return errorf(field, "nested too deeply")
	}
	switch c := l.peek(); {
	case c == '{':
		return l.object(field, func([]byte) error { return l.skipValue(field, depth+1) })
	case c == '[':
		return l.array(field, func(int) error { return l.skipValue(field, depth+1) })
	case c == '"':
		return l.skipString(field)
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := l.readNumber(field)
		return err
	case l.literal("true"), l.literal("false"), l.literal("null"):
		return nil
	default:
		return l.syntax("a value")
	}
}

// array iterates the elements of an array, calling elem positioned before
// each; elem must consume it.
func (l *lexer) array(field string, elem func(i int) error) error {
	if l.peek() != '[' {
		return errorf(field, "want an array")
	}
	l.pos++
	if l.peek() == ']' {
		l.pos++
		return nil
	}
	for i := 0; ; i++ {
		l.ws()
		if err := elem(i); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.pos++
		case ']':
			l.pos++
			return nil
		default:
			return l.syntax("',' or ']'")
		}
	}
}

// end checks that only white space follows the top-level value.
func (l *lexer) end() error {
	l.ws()
	if l.pos != len(l.data) {
		return errorf("", "trailing data after the JSON object")
	}
	return nil
}

// appendString appends s as a JSON string (escaping what JSON requires;
// invalid UTF-8 becomes U+FFFD so the result is always valid text).
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
