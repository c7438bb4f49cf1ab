package edge

import (
	"errors"
	"slices"
)

// A request target (RFC 9110 origin-form: path and optional query) is
// normalized once per request, and the one normalized form is used for site
// routing, the cache key and the request sent to the origin. Using the same
// bytes for all three is what keeps the cache consistent: two requests that
// map to one key are also the same request for the origin.
//
// Normalization (RFC 3986 sec. 6.2.2):
//   - percent-encoding: %XX of an unreserved character is decoded, other %XX
//     get upper-case hex digits, bytes that may not appear unencoded are
//     encoded; a '%' not followed by two hex digits is an error;
//   - the path: dot segments removed ("/a/./b/../c" is "/a/c", also when
//     written "%2E%2E"), so a request can never climb out of a site's path
//     prefix; an empty path is "/";
//   - the query: empty parameters dropped, the peer-assist parameters
//     (SessionParam, UrgentParam) removed and remembered, the rest sorted by
//     name (stable: repeated names keep their order, which some origins
//     depend on). "a" and "a=" stay different.

// Errors of parseTarget, answered with 400.
var (
	errTargetNotOrigin = errors.New("request target must be a path starting with /")
	errTargetPercent   = errors.New("malformed percent-encoding in request target")
	errTargetParams    = errors.New("too many query parameters")
)

// maxQueryParams bounds the parameters of one query (each costs a sort
// entry); more is an error rather than quadratic work.
const maxQueryParams = 256

// target is a normalized request target. Its zero value is ready to use and
// it is reused across requests (reset by parse); it is not safe for
// concurrent use.
type target struct {
	buf        []byte // normalized path, then "?" and the query if any
	pathLen    int    // len of the path in buf
	session    []byte // decoded value of SessionParam
	hasSession bool   // SessionParam was present
	urgent     bool   // UrgentParam was "1"

	scratch []byte // percent-normalized query before sorting
	params  []span // parameters of scratch
	segs    []int  // segment starts while removing dot segments
}

type span struct{ start, end, nameEnd int }

// path returns the normalized path.
func (t *target) path() []byte { return t.buf[:t.pathLen] }

// query returns the normalized query without "?", or nil.
func (t *target) query() []byte {
	if len(t.buf) > t.pathLen {
		return t.buf[t.pathLen+1:]
	}
	return nil
}

// pathQuery returns path and query as one origin-form target.
func (t *target) pathQuery() []byte { return t.buf }

// parse normalizes raw, a request target as it appeared on the request line.
func (t *target) parse(raw []byte) error {
	t.buf = t.buf[:0]
	t.pathLen = 0
	t.session = t.session[:0]
	t.hasSession = false
	t.urgent = false
	if len(raw) == 0 || raw[0] != '/' {
		return errTargetNotOrigin
	}
	rawPath, rawQuery, hasQuery := cut(raw, '?')
	// A fragment is never part of a request target; a client that sends
	// one gets it encoded like any other disallowed byte.
	var err error
	if t.buf, err = appendNormalizedPart(t.buf, rawPath, partPath); err != nil {
		return err
	}
	t.buf = t.removeDotSegments(t.buf)
	t.pathLen = len(t.buf)
	if hasQuery {
		if err := t.normalizeQuery(rawQuery); err != nil {
			t.buf = t.buf[:t.pathLen]
			return err
		}
	}
	return nil
}

func cut(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// normalizeQuery appends "?" and the normalized query to t.buf (nothing if
// no parameter is left).
func (t *target) normalizeQuery(raw []byte) error {
	t.scratch = t.scratch[:0]
	t.params = t.params[:0]
	for len(raw) > 0 {
		var p []byte
		p, raw, _ = cut(raw, '&')
		if len(p) == 0 {
			continue
		}
		if len(t.params) == maxQueryParams {
			return errTargetParams
		}
		name, value, hasValue := cut(p, '=')
		start := len(t.scratch)
		var err error
		if t.scratch, err = appendNormalizedPart(t.scratch, name, partQuery); err != nil {
			return err
		}
		nameEnd := len(t.scratch)
		if hasValue {
			t.scratch = append(t.scratch, '=')
			if t.scratch, err = appendNormalizedPart(t.scratch, value, partQuery); err != nil {
				return err
			}
		}
		n := t.scratch[start:nameEnd]
		switch {
		case string(n) == SessionParam:
			t.session = appendUnescaped(t.session[:0], t.scratch[min(nameEnd+1, len(t.scratch)):])
			t.hasSession = true
			t.scratch = t.scratch[:start]
			continue
		case string(n) == UrgentParam:
			t.urgent = string(t.scratch[min(nameEnd+1, len(t.scratch)):]) == "1"
			t.scratch = t.scratch[:start]
			continue
		}
		t.params = append(t.params, span{start: start, end: len(t.scratch), nameEnd: nameEnd})
	}
	if len(t.params) == 0 {
		return nil
	}
	t.sortParams()
	t.buf = append(t.buf, '?')
	for i, p := range t.params {
		if i > 0 {
			t.buf = append(t.buf, '&')
		}
		t.buf = append(t.buf, t.scratch[p.start:p.end]...)
	}
	return nil
}

// sortParams sorts t.params by name, keeping the order of equal names.
func (t *target) sortParams() {
	less := func(a, b span) int {
		return compareBytes(t.scratch[a.start:a.nameEnd], t.scratch[b.start:b.nameEnd])
	}
	if len(t.params) > 16 {
		slices.SortStableFunc(t.params, less)
		return
	}
	// Insertion sort: stable and allocation free for the usual few params.
	for i := 1; i < len(t.params); i++ {
		for j := i; j > 0 && less(t.params[j-1], t.params[j]) > 0; j-- {
			t.params[j-1], t.params[j] = t.params[j], t.params[j-1]
		}
	}
}

func compareBytes(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

type part int

const (
	partPath part = iota
	partQuery
)

// byteClass tables: which bytes may appear unencoded.
var (
	unreservedChars [256]bool
	pathChars       [256]bool // unreserved, sub-delims, ":", "@", "/"
	queryChars      [256]bool // pchar, "/", "?" minus the separators "&" and "="
)

func init() {
	for c := 'a'; c <= 'z'; c++ {
		unreservedChars[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		unreservedChars[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		unreservedChars[c] = true
	}
	for _, c := range "-._~" {
		unreservedChars[c] = true
	}
	for i := range 256 {
		pathChars[i] = unreservedChars[i]
		queryChars[i] = unreservedChars[i]
	}
	for _, c := range "!$&'()*+,;=:@/" {
		pathChars[c] = true
	}
	for _, c := range "!$'()*+,;:@/?" {
		queryChars[c] = true
	}
	// '=' is allowed unencoded inside a value ("a=b=c" is a with "b=c");
	// appendNormalizedPart only sees names and values, so permit it and let
	// the first '=' of a parameter be the separator.
	queryChars['='] = true
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendNormalizedPart appends src with its percent-encoding normalized.
func appendNormalizedPart(dst, src []byte, p part) ([]byte, error) {
	allowed := &pathChars
	if p == partQuery {
		allowed = &queryChars
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '%' {
			if i+2 >= len(src) {
				return dst, errTargetPercent
			}
			hi, ok1 := unhex(src[i+1])
			lo, ok2 := unhex(src[i+2])
			if !ok1 || !ok2 {
				return dst, errTargetPercent
			}
			d := hi<<4 | lo
			if unreservedChars[d] {
				dst = append(dst, d)
			} else {
				dst = append(dst, '%', upperHex[d>>4], upperHex[d&15])
			}
			i += 2
			continue
		}
		if allowed[c] {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst, nil
}

// appendUnescaped appends src with every %XX decoded. src is already
// normalized, so every '%' starts a valid escape.
func appendUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		if src[i] == '%' && i+2 < len(src) {
			hi, _ := unhex(src[i+1])
			lo, _ := unhex(src[i+2])
			dst = append(dst, hi<<4|lo)
			i += 2
			continue
		}
		dst = append(dst, src[i])
	}
	return dst
}

// removeDotSegments removes "." and ".." segments from the path in b (RFC
// 3986 sec. 5.2.4) in place and returns it. b starts with "/".
func (t *target) removeDotSegments(b []byte) []byte {
	if len(b) == 0 {
		return append(b, '/')
	}
	if !hasDotSegment(b) {
		return b
	}
	// Walk the segments of b (each "/seg"), writing kept ones to out, which
	// never overtakes the read position.
	out := b[:0]
	t.segs = t.segs[:0] // starts of the segments written to out
	for i := 0; i < len(b); {
		j := i + 1
		for j < len(b) && b[j] != '/' {
			j++
		}
		seg := b[i+1 : j]
		last := j == len(b)
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				out = append(out, '/')
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if n := len(t.segs); n > 0 {
				out = out[:t.segs[n-1]]
				t.segs = t.segs[:n-1]
			}
			if last {
				out = append(out, '/')
			}
		default:
			t.segs = append(t.segs, len(out))
			out = append(out, b[i:j]...)
		}
		i = j
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out
}

func hasDotSegment(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '/' {
			continue
		}
		j := i + 1
		for j < len(b) && b[j] == '.' {
			j++
		}
		if n := j - i - 1; (n == 1 || n == 2) && (j == len(b) || b[j] == '/') {
			return true
		}
	}
	return false
}
