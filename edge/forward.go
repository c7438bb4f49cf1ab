package edge

import (
	"github.com/valyala/fasthttp"
)

// viaValue identifies this edge in Via on requests to origins (RFC 9110
// sec. 7.6.3), which lets a misconfigured loop be seen.
const viaValue = "1.1 edgebox"

// originRequest builds the request sent to the origin for x. A fill
// (forFill) asks for the whole object as the cache stores it: no Range, no
// client conditionals or cache directives, Accept-Encoding normalized as in
// the cache key, and the stored validators when revalidating stale. A pass
// forwards the client's request as it came, minus hop-by-hop fields.
// Either way the target is the normalized one (peer-assist parameters
// removed, the site's prefix stripped when configured), so what is stored
// under a key is what the origin answers for exactly that key.
func (s *Server) originRequest(x *exchange, forFill bool, stale *storedObj) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	src := &x.ctx.Request.Header
	dst := &req.Header
	dst.DisableNormalizing()
	path := x.site.originPath(x.tgt.path())
	uri := append(x.uriBuf[:0], path...)
	if q := x.tgt.query(); q != nil {
		uri = append(uri, '?')
		uri = append(uri, q...)
	}
	req.SetRequestURIBytes(uri)
	x.uriBuf = uri[:0]
	if forFill || !x.head {
		dst.SetMethod(fasthttp.MethodGet)
	} else {
		dst.SetMethod(fasthttp.MethodHead)
	}
	dst.SetHostBytes(x.host)
	conn := requestConnectionTokens(src)
	var xff, via []byte
	for k, v := range src.AllInOrder() {
		switch {
		case isHopByHop(k), containsFold(conn, k),
			equalFoldASCII(k, "host"), equalFoldASCII(k, "content-length"),
			equalFoldASCII(k, "x-pa-session"), equalFoldASCII(k, "x-pa-urgent"),
			equalFoldASCII(k, "traceparent"), equalFoldASCII(k, "tracestate"):
			continue
		case equalFoldASCII(k, "x-forwarded-for"):
			xff = append(append(xff, v...), ", "...)
			continue
		case equalFoldASCII(k, "via"):
			via = append(append(via, v...), ", "...)
			continue
		}
		if forFill {
			switch {
			case equalFoldASCII(k, "range"), equalFoldASCII(k, "if-range"),
				equalFoldASCII(k, "if-match"), equalFoldASCII(k, "if-none-match"),
				equalFoldASCII(k, "if-modified-since"), equalFoldASCII(k, "if-unmodified-since"),
				equalFoldASCII(k, "cache-control"), equalFoldASCII(k, "pragma"),
				equalFoldASCII(k, "accept-encoding"), equalFoldASCII(k, "authorization"):
				continue
			}
		}
		dst.AddBytesKV(k, v)
	}
	if forFill {
		if ae := normalizedAcceptEncoding(src); ae != "" {
			dst.Set("Accept-Encoding", ae)
		}
		if stale != nil {
			if stale.meta.ETag != "" {
				dst.Set("If-None-Match", stale.meta.ETag)
			}
			if stale.meta.LastModified != "" {
				dst.Set("If-Modified-Since", stale.meta.LastModified)
			}
		}
	}
	xff = append(xff, x.ctx.RemoteIP().String()...)
	dst.SetBytesV("X-Forwarded-For", xff)
	dst.SetBytesV("Via", append(via, viaValue...))
	dst.SetBytesV("X-Forwarded-Host", x.host)
	if x.ctx.IsTLS() {
		dst.Set("X-Forwarded-Proto", "https")
	} else {
		dst.Set("X-Forwarded-Proto", "http")
	}
	return req
}

// requestConnectionTokens returns the field names a request's Connection
// header lists (hop-by-hop too).
func requestConnectionTokens(h *fasthttp.RequestHeader) []string {
	v := h.Peek("Connection")
	if len(v) == 0 {
		return nil
	}
	var names []string
	for len(v) > 0 {
		var t []byte
		t, v = nextDirective(v)
		if t = trimOWS(t); len(t) > 0 && !equalFoldASCII(t, "close") && !equalFoldASCII(t, "keep-alive") {
			names = append(names, string(t))
		}
	}
	return names
}
