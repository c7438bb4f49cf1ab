package region

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"go4.org/netipx"
)

// maxLineBytes bounds one TSV line; real iptoasn lines are under 200 bytes.
const maxLineBytes = 64 << 10

// maxFileErrors is how many malformed lines of one file are reported before
// giving up on it: enough to see a pattern, not a flood.
const maxFileErrors = 10

// ParseError is one malformed line of a source file.
type ParseError struct {
	File string // path as configured or resolved
	Line int    // 1-based
	Msg  string // what is wrong
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ErrNoRanges is returned for a source file that holds no routed range: an
// empty or truncated download must not silently empty the table.
var ErrNoRanges = errors.New("no routed ranges")

// dbRange is one routed range of an IP-to-ASN database.
type dbRange struct {
	From, To netip.Addr
	ASN      uint32
}

// readTSV reads an iptoasn.com TSV stream (plain or gzip) and calls fn for
// every routed range in file order, with the AS description (valid only
// during the call: copy it to keep it). Lines are
//
//	range_start<TAB>range_end<TAB>AS_number<TAB>country_code<TAB>AS_description
//
// with addresses in text form (v4, v6 or both: the -v4, -v6 and -combined
// files) or, for IPv4, as decimal integers (the -u32 file). AS 0 ("Not
// routed") lines are skipped. Blank lines and lines starting with '#' are
// ignored. file names the stream in errors. Every malformed line (up to
// maxFileErrors) is reported as a *ParseError; the caller must then discard
// what fn received.
func readTSV(r io.Reader, file string, fn func(r dbRange, desc []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: reading gzip header: %w", file, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var errs []error
	lineNo, routed := 0, 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		rec, desc, err := parseTSVLine(line)
		if err != nil {
			errs = append(errs, &ParseError{File: file, Line: lineNo, Msg: err.Error()})
			if len(errs) >= maxFileErrors {
				errs = append(errs, fmt.Errorf("%s: giving up after %d malformed lines", file, len(errs)))
				return errors.Join(errs...)
			}
			continue
		}
		if !rec.From.IsValid() || rec.ASN == 0 {
			continue // blank, comment, or not routed
		}
		routed++
		if len(errs) == 0 {
			fn(rec, desc)
		}
	}
	if err := sc.Err(); err != nil {
		// A read error (a truncated gzip stream) cuts the last line short:
		// its parse error would only hide the real cause.
		if pe, ok := lastParseError(errs); ok && pe.Line == lineNo && !errors.Is(err, bufio.ErrTooLong) {
			errs = errs[:len(errs)-1]
		}
		if errors.Is(err, bufio.ErrTooLong) {
			err = &ParseError{File: file, Line: lineNo + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
		} else {
			err = fmt.Errorf("%s: reading after line %d: %w", file, lineNo, err)
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if routed == 0 {
		return fmt.Errorf("%s: %w (%d lines)", file, ErrNoRanges, lineNo)
	}
	return nil
}

// lastParseError returns the last of errs if it is a *ParseError.
func lastParseError(errs []error) (*ParseError, bool) {
	if len(errs) == 0 {
		return nil, false
	}
	pe, ok := errs[len(errs)-1].(*ParseError)
	return pe, ok
}

// parseTSVLine parses one line. It returns a zero range for a blank or
// comment line, and the description bytes (a sub-slice of line) separately
// so that the caller can intern them.
func parseTSVLine(line []byte) (dbRange, []byte, error) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
		return dbRange{}, nil, nil
	}
	var fields [5][]byte
	n := 0
	for n < 4 {
		i := bytes.IndexByte(line, '\t')
		if i < 0 {
			break
		}
		fields[n], line = line[:i], line[i+1:]
		n++
	}
	fields[n] = line
	n++
	if n < 3 {
		return dbRange{}, nil, fmt.Errorf("want tab-separated range_start, range_end, AS_number[, country_code, AS_description], got %d field(s)", n)
	}
	from, err := parseTSVAddr(fields[0])
	if err != nil {
		return dbRange{}, nil, fmt.Errorf("range_start: %w", err)
	}
	to, err := parseTSVAddr(fields[1])
	if err != nil {
		return dbRange{}, nil, fmt.Errorf("range_end: %w", err)
	}
	if from.Is4() != to.Is4() {
		return dbRange{}, nil, fmt.Errorf("range %s - %s mixes IPv4 and IPv6", from, to)
	}
	if to.Less(from) {
		return dbRange{}, nil, fmt.Errorf("range_end %s is before range_start %s", to, from)
	}
	asn, err := parseASN(fields[2])
	if err != nil {
		return dbRange{}, nil, err
	}
	var desc []byte
	if n == 5 {
		desc = bytes.TrimSpace(fields[4])
	}
	return dbRange{From: from, To: to, ASN: asn}, desc, nil
}

// parseTSVAddr parses an address in text form or an IPv4 address as a
// decimal integer (iptoasn's -u32 files). IPv4-mapped IPv6 is unmapped.
func parseTSVAddr(b []byte) (netip.Addr, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return netip.Addr{}, errors.New("empty address")
	}
	if isDigits(b) && bytes.IndexByte(b, '.') < 0 {
		v, err := strconv.ParseUint(string(b), 10, 32)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address as a 32-bit integer", b)
		}
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
	}
	if a, ok := parseIPv4(b); ok {
		return a, nil
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", b)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", b)
	}
	return a.Unmap(), nil
}

// parseIPv4 parses a dotted quad without allocating (netip.ParseAddr
// needs a string); anything else is left to netip.ParseAddr. Like netip,
// it rejects leading zeros.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var out [4]byte
	field, val, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || field > 3 {
				return netip.Addr{}, false
			}
			out[field] = byte(val)
			field, val, digits = field+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (digits == 1 && val == 0) {
			return netip.Addr{}, false
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if field != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(out), true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseASN parses "13335" or "AS13335".
func parseASN(b []byte) (uint32, error) {
	b = bytes.TrimSpace(b)
	digits := b
	if len(digits) > 2 && (digits[0] == 'A' || digits[0] == 'a') && (digits[1] == 'S' || digits[1] == 's') {
		digits = digits[2:]
	}
	if len(digits) == 0 || !isDigits(digits) {
		return 0, fmt.Errorf("AS_number %q is not a number", b)
	}
	v, err := strconv.ParseUint(string(digits), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("AS_number %q is out of range (0..4294967295)", b)
	}
	return uint32(v), nil
}

// rangePrefixes appends the CIDR prefixes that exactly cover from..to
// (same family, from <= to) to dst, in address order.
func rangePrefixes(dst []netip.Prefix, from, to netip.Addr) []netip.Prefix {
	return netipx.IPRangeFrom(from, to).AppendPrefixes(dst)
}
