package edge

// Cache-Control (RFC 9111 sec. 5.2) as a shared cache reads it.

// cacheControl holds the response directives a shared cache acts on.
// Durations are in seconds; -1 means absent.
type cacheControl struct {
	maxAge, sMaxAge     int64
	staleWhileReval     int64 // stale-while-revalidate (RFC 5861)
	staleIfError        int64 // stale-if-error (RFC 5861)
	noStore, noCache    bool
	private, public     bool
	mustRevalidate      bool // must-revalidate
	proxyRevalidate     bool // proxy-revalidate
	invalidFreshnessArg bool // max-age or s-maxage with an unusable value
}

func newCacheControl() cacheControl {
	return cacheControl{maxAge: -1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1}
}

// parse adds the directives of one Cache-Control field value. Call it for
// every field line: directives of several lines combine. When a directive
// repeats, the first occurrence wins (RFC 9111 sec. 4.2.1).
//
// Qualified no-cache="field" and private="field" are treated as their
// unqualified forms: more restrictive than required, never less.
func (cc *cacheControl) parse(v []byte) {
	for len(v) > 0 {
		var d []byte
		d, v = nextDirective(v)
		d = trimOWS(d)
		if len(d) == 0 {
			continue
		}
		name, arg, hasArg := cut(d, '=')
		name = trimOWS(name)
		arg = unquote(trimOWS(arg))
		switch {
		case equalFoldASCII(name, "max-age"):
			cc.setSeconds(&cc.maxAge, arg, hasArg, true)
		case equalFoldASCII(name, "s-maxage"):
			cc.setSeconds(&cc.sMaxAge, arg, hasArg, true)
		case equalFoldASCII(name, "stale-while-revalidate"):
			cc.setSeconds(&cc.staleWhileReval, arg, hasArg, false)
		case equalFoldASCII(name, "stale-if-error"):
			cc.setSeconds(&cc.staleIfError, arg, hasArg, false)
		case equalFoldASCII(name, "no-store"):
			cc.noStore = true
		case equalFoldASCII(name, "no-cache"):
			cc.noCache = true
		case equalFoldASCII(name, "private"):
			cc.private = true
		case equalFoldASCII(name, "public"):
			cc.public = true
		case equalFoldASCII(name, "must-revalidate"):
			cc.mustRevalidate = true
		case equalFoldASCII(name, "proxy-revalidate"):
			cc.proxyRevalidate = true
		}
	}
}

// setSeconds records a delta-seconds argument. An unusable max-age or
// s-maxage makes the response stale (RFC 9111 sec. 4.2.1: "considered
// stale"); an unusable stale-* extension is ignored.
func (cc *cacheControl) setSeconds(dst *int64, arg []byte, hasArg, freshness bool) {
	if *dst >= 0 {
		return // first occurrence wins
	}
	n, ok := parseDigits(arg)
	if !hasArg || !ok {
		if freshness {
			cc.invalidFreshnessArg = true
		}
		return
	}
	// delta-seconds larger than 2^31 are "2147483648" (RFC 9111 sec. 1.2.2).
	*dst = min(n, 1<<31)
}

// nextDirective splits the first directive off a Cache-Control value,
// honoring quoted strings (which may contain commas).
func nextDirective(v []byte) (d, rest []byte) {
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return v[:i], v[i+1:]
		}
	}
	return v, nil
}

func unquote(b []byte) []byte {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return b[1 : len(b)-1]
	}
	return b
}
