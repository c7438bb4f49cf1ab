package edge

// Range requests (RFC 9110 sec. 14).

// rangeResult is what a Range header asks of a representation of a known
// size.
type rangeResult int

const (
	// rangeNone: no Range, or one to ignore (malformed, another unit, or
	// more than one range): serve 200 with the whole representation, as
	// RFC 9110 sec. 14.2 allows.
	rangeNone rangeResult = iota
	// rangeOK: serve 206 with bytes [start, end).
	rangeOK
	// rangeUnsatisfiable: serve 416 with "Content-Range: bytes */size".
	rangeUnsatisfiable
)

// maxRangeSpecs bounds the ranges of one header that are examined; a longer
// list is ignored (200), which keeps a hostile header cheap.
const maxRangeSpecs = 64

// parseRange interprets the Range header value h against a representation
// of size bytes (size >= 0). A single satisfiable range gives rangeOK with
// the byte interval [start, end). Several ranges are answered with the whole
// representation (rangeNone) unless none of them is satisfiable
// (rangeUnsatisfiable).
func parseRange(h []byte, size int64) (res rangeResult, start, end int64) {
	h = trimOWS(h)
	if len(h) < 6 || !equalFoldASCII(h[:5], "bytes") {
		return rangeNone, 0, 0
	}
	h = trimOWS(h[5:])
	if len(h) == 0 || h[0] != '=' {
		return rangeNone, 0, 0
	}
	h = h[1:]
	specs := 0
	satisfiable := 0
	for len(h) > 0 {
		var spec []byte
		spec, h, _ = cut(h, ',')
		spec = trimOWS(spec)
		if len(spec) == 0 {
			continue // RFC 9110 list syntax allows empty elements
		}
		specs++
		if specs > maxRangeSpecs {
			return rangeNone, 0, 0
		}
		first, last, ok := cut(spec, '-')
		if !ok {
			return rangeNone, 0, 0
		}
		var s, e int64 // e exclusive
		switch {
		case len(first) == 0: // suffix-range "-N"
			n, ok := parseDigits(last)
			if !ok {
				return rangeNone, 0, 0
			}
			if n == 0 || size == 0 {
				continue // unsatisfiable
			}
			s, e = max(size-n, 0), size
		default:
			f, ok := parseDigits(first)
			if !ok {
				return rangeNone, 0, 0
			}
			if len(last) == 0 {
				e = size
			} else {
				l, ok := parseDigits(last)
				if !ok || l < f {
					return rangeNone, 0, 0 // invalid: the whole header is ignored
				}
				e = min(l, size-1) + 1
			}
			if f >= size {
				continue // unsatisfiable
			}
			s = f
		}
		satisfiable++
		start, end = s, e
	}
	switch {
	case specs == 0:
		return rangeNone, 0, 0
	case satisfiable == 0:
		return rangeUnsatisfiable, 0, 0
	case specs == 1:
		return rangeOK, start, end
	default:
		return rangeNone, 0, 0
	}
}

// parseDigits parses a non-empty run of ASCII digits, saturating at a value
// larger than any representation (so "bytes=99999999999999999999-" is
// unsatisfiable rather than malformed).
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const limit = 1 << 62
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if d := int64(c - '0'); n <= (limit-d)/10 {
			n = n*10 + d
		} else {
			n = limit
		}
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFoldASCII compares b with the lower-case ASCII string s, ignoring
// case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
