package region

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/peerassist/edgebox/config"
)

// ClientAddr returns the address of the client behind a request whose TCP
// peer is remote. values returns every value of a request header, in
// order (fasthttp's RequestHeader.PeekAll; net/http callers can adapt
// Header.Values).
//
// The socket address is the answer unless remote is a configured trusted
// proxy. Then the configured header (X-Forwarded-For or Forwarded) is
// walked from right to left, skipping trusted proxies, and the first
// untrusted address is the client; when every hop is trusted, the
// leftmost one is. Anything a trusted proxy could not have written (an
// unparsable entry, "unknown" or an obfuscated node, a Forwarded element
// without for=) before the walk reaches the client means the chain cannot
// be believed, and the socket address is returned. Entries left of the
// client are never parsed: clients may write anything there.
func (l *Locator) ClientAddr(remote netip.Addr, values func(name string) [][]byte) netip.Addr {
	remote = remote.Unmap().WithZone("")
	t := l.table.Load()
	if t == nil || !remote.IsValid() || values == nil || !t.trusted.Lookup(remote) {
		return remote
	}
	hv := values(t.clientIPHeader)
	var (
		addr netip.Addr
		ok   bool
	)
	if t.clientIPHeader == config.HeaderForwarded {
		addr, ok = walkForwarded(hv, t.trusted.Lookup)
	} else {
		addr, ok = walkXFF(hv, t.trusted.Lookup)
	}
	if !ok {
		return remote
	}
	return addr
}

// walkXFF walks X-Forwarded-For values ("client, proxy1, proxy2"; several
// header lines count as one list) from right to left. ok is false when the
// header is absent or malformed before an untrusted address is found.
func walkXFF(values [][]byte, trusted func(netip.Addr) bool) (client netip.Addr, ok bool) {
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for len(v) > 0 {
			var entry []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, nil
			}
			entry = bytes.TrimSpace(entry)
			if len(entry) == 0 {
				continue // empty list elements are allowed
			}
			a, ok := parseNode(entry)
			if !ok {
				return netip.Addr{}, false
			}
			if !trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// walkForwarded walks RFC 7239 Forwarded values from right to left and
// returns the for= node of the first element that is not a trusted proxy.
func walkForwarded(values [][]byte, trusted func(netip.Addr) bool) (client netip.Addr, ok bool) {
	var elems [][]byte // for= value of each element, nil when it has none
	for _, v := range values {
		var good bool
		elems, good = parseForwarded(elems, v)
		if !good {
			// A malformed line makes element boundaries unreliable; only
			// lines after it (added later, by closer proxies) could be
			// believed, which the walk below would need anyway. Keep it
			// simple and safe: the chain is not believed.
			return netip.Addr{}, false
		}
	}
	var last netip.Addr
	for i := len(elems) - 1; i >= 0; i-- {
		if elems[i] == nil {
			return netip.Addr{}, false // a hop that did not say who it forwarded for
		}
		a, ok := parseNode(elems[i])
		if !ok {
			return netip.Addr{}, false // unknown, obfuscated or malformed
		}
		if !trusted(a) {
			return a, true
		}
		last = a
	}
	return last, last.IsValid()
}

// parseForwarded appends the for= value of each element of one Forwarded
// header value to dst (nil for an element without for=). Quoted values are
// unquoted. ok is false when the value does not follow RFC 7239's grammar
// (leniently: optional whitespace around ';', ',' and '=' is accepted).
func parseForwarded(dst [][]byte, v []byte) (_ [][]byte, ok bool) {
	const maxElements = 256 // far more hops than any real chain
	i := 0
	skipOWS := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	for {
		skipOWS()
		if i == len(v) {
			return dst, true
		}
		if v[i] == ',' { // empty list element
			i++
			continue
		}
		var forValue []byte
		hasFor := false
		// One element: pairs separated by ';'.
		for {
			skipOWS()
			if i < len(v) && v[i] != ',' && v[i] != ';' {
				start := i
				for i < len(v) && isTokenChar(v[i]) {
					i++
				}
				key := v[start:i]
				if len(key) == 0 {
					return dst, false
				}
				skipOWS()
				if i == len(v) || v[i] != '=' {
					return dst, false
				}
				i++
				skipOWS()
				var val []byte
				if i < len(v) && v[i] == '"' {
					var good bool
					val, i, good = parseQuoted(v, i)
					if !good {
						return dst, false
					}
				} else {
					start := i
					for i < len(v) && isTokenChar(v[i]) {
						i++
					}
					val = v[start:i]
					if len(val) == 0 {
						return dst, false
					}
				}
				if bytes.EqualFold(key, []byte("for")) {
					if hasFor {
						return dst, false // two for= in one element
					}
					hasFor, forValue = true, val
				}
				skipOWS()
			}
			if i < len(v) && v[i] == ';' {
				i++
				continue
			}
			break
		}
		if len(dst) >= maxElements {
			return dst, false
		}
		if hasFor {
			dst = append(dst, forValue)
		} else {
			dst = append(dst, nil)
		}
		skipOWS()
		if i == len(v) {
			return dst, true
		}
		if v[i] != ',' {
			return dst, false
		}
		i++
	}
}

// parseQuoted parses the quoted-string starting at v[i] == '"'. It returns
// the unescaped content (a sub-slice of v unless there were escapes) and
// the index after the closing quote.
func parseQuoted(v []byte, i int) (val []byte, next int, ok bool) {
	i++ // opening quote
	start := i
	var buf []byte
	for i < len(v) {
		switch c := v[i]; {
		case c == '"':
			if buf == nil {
				return v[start:i], i + 1, true
			}
			return buf, i + 1, true
		case c == '\\':
			if i+1 == len(v) {
				return nil, i, false
			}
			if buf == nil {
				buf = append([]byte(nil), v[start:i]...)
			}
			buf = append(buf, v[i+1])
			i += 2
		case c < 0x20 && c != '\t' || c == 0x7f:
			return nil, i, false
		default:
			if buf != nil {
				buf = append(buf, c)
			}
			i++
		}
	}
	return nil, i, false // unterminated
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// parseNode parses one hop: "192.0.2.1", "192.0.2.1:8080", "2001:db8::1",
// "[2001:db8::1]" or "[2001:db8::1]:8080" (RFC 7239 node syntax, which
// X-Forwarded-For writers also use). "unknown", obfuscated nodes ("_x"),
// zones and anything else are rejected. IPv4-mapped IPv6 is unmapped.
func parseNode(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(string(b[1:end]))
		if err != nil || !a.Is6() || a.Zone() != "" || !validPort(b[end+1:]) {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if a, err := netip.ParseAddr(string(b)); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	// IPv4 with a port.
	if j := bytes.IndexByte(b, ':'); j > 0 && bytes.IndexByte(b[j+1:], ':') < 0 {
		a, err := netip.ParseAddr(string(b[:j]))
		if err == nil && a.Is4() && validPort(b[j:]) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// validPort accepts "" or ":" followed by a port number (or an RFC 7239
// obfuscated port "_x").
func validPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) == 1 {
		return false
	}
	p := b[1:]
	if p[0] == '_' {
		for _, c := range p[1:] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return len(p) > 1
	}
	n, err := strconv.ParseUint(string(p), 10, 16)
	return err == nil && isDigits(p) && n <= 65535
}
