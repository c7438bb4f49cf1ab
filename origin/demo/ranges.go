package demo

import (
	"strings"
)

// maxRangeSpecs bounds how many ranges one Range header may list; more is
// treated as malformed (a cheap defence against range-based amplification).
const maxRangeSpecs = 64

// byteRange is the half-open interval [start, end) of a body.
type byteRange struct{ start, end int64 }

func (r byteRange) length() int64 { return r.end - r.start }

// rangeResult says how to answer a request's Range header for a body of a
// given size.
type rangeResult int

const (
	rangeNone          rangeResult = iota // no usable Range: answer 200 with the full body
	rangeSingle                           // answer 206 with one range
	rangeUnsatisfiable                    // answer 416 with Content-Range: bytes */size
)

// parseRange interprets a Range header value for a body of size bytes
// (RFC 9110 section 14.2). A header that is not a syntactically valid
// "bytes=" ranges-specifier is ignored (rangeNone), as the RFC allows.
// Several satisfiable ranges are answered with the full body (rangeNone)
// rather than multipart/byteranges, which the RFC also allows; when none of
// the listed ranges is satisfiable the answer is 416.
func parseRange(h string, size int64) (byteRange, rangeResult) {
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return byteRange{}, rangeNone
	}
	var (
		first       byteRange
		satisfiable int
		specs       int
	)
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			// RFC 9110 allows empty list elements ("bytes=0-1,,2-3"), but
			// a list of nothing but empties is malformed.
			continue
		}
		specs++
		if specs > maxRangeSpecs {
			return byteRange{}, rangeNone
		}
		r, sat, valid := parseRangeSpec(spec, size)
		if !valid {
			return byteRange{}, rangeNone
		}
		if sat {
			if satisfiable == 0 {
				first = r
			}
			satisfiable++
		}
	}
	switch {
	case specs == 0:
		return byteRange{}, rangeNone
	case satisfiable == 0:
		return byteRange{}, rangeUnsatisfiable
	case satisfiable > 1:
		return byteRange{}, rangeNone
	}
	return first, rangeSingle
}

// parseRangeSpec parses "first-last", "first-" or "-suffix". valid is false
// for bad syntax; satisfiable is false for a valid range that selects no
// byte of the body.
func parseRangeSpec(spec string, size int64) (r byteRange, satisfiable, valid bool) {
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return r, false, false
	}
	if a == "" { // suffix range: the last b bytes
		n, ok := parseDigits(b)
		if !ok {
			return r, false, false
		}
		if n == 0 || size == 0 {
			return r, false, true
		}
		if n > size {
			n = size
		}
		return byteRange{size - n, size}, true, true
	}
	start, ok := parseDigits(a)
	if !ok {
		return r, false, false
	}
	end := size // exclusive
	if b != "" {
		last, ok := parseDigits(b)
		if !ok || last < start {
			return r, false, false
		}
		if last < size {
			end = last + 1
		}
	}
	if start >= size {
		return r, false, true
	}
	return byteRange{start, end}, true, true
}

// parseDigits parses a non-empty run of decimal digits that fits in int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 { // 18 digits always fit in int64
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
