package edge

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// exchange is the state of one request, from the handler until its
// response body is written (body streams end it in Close). Exchanges are
// pooled; one is used by one request at a time and is not safe for
// concurrent use.
type exchange struct {
	s     *Server
	ctx   *fasthttp.RequestCtx
	tbl   *table
	site  *site
	tgt   target
	host  []byte // the Host the object is requested for
	head  bool
	now   int64 // request start, Unix ns
	start time.Time

	spanCtx context.Context
	span    trace.Span

	cs      cacheStatus
	primary string // cache key without Vary (see primaryKey)
	key     string // cache key of the variant looked up
	// keysBorrowed: primary (and key, when equal) share keyBuf's bytes.
	keysBorrowed bool
	session      string
	hasSess      bool
	urgent       bool
	bodySent     int64
	// streaming: a body stream will call finish when written.
	streaming bool
	// unreadable: answered by handleParseError; the request (its method
	// included) may not have been read.
	unreadable bool
	// noBlock: served on an event loop, where nothing may wait; wouldBlock:
	// it would have, and is to be resumed on a goroutine (serveInline).
	noBlock, wouldBlock bool
	// admitted: the session gate admitted the request (asked once only).
	admitted bool
	keyBuf   []byte
	hdrBuf   []byte
	uriBuf   []byte
	req      reqFields
}

// reqFields are the request header fields the edge reads, found in one
// pass over the header (Peek would normalize the name and scan the header
// once per field). The values alias the request and are valid while it is
// served. The zero value is ready to use.
type reqFields struct {
	authorization, traceparent, cacheControl, session, urgent []byte
	ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince  []byte
	rng, ifRange, accessControlRequestMethod                  []byte
}

func (f *reqFields) scan(h *fasthttp.RequestHeader) {
	*f = reqFields{}
	for k, v := range h.All() {
		var dst *[]byte
		switch len(k) {
		case 5:
			if equalFoldASCII(k, "range") {
				dst = &f.rng
			}
		case 8:
			switch {
			case equalFoldASCII(k, "if-match"):
				dst = &f.ifMatch
			case equalFoldASCII(k, "if-range"):
				dst = &f.ifRange
			}
		case 11:
			switch {
			case equalFoldASCII(k, "traceparent"):
				dst = &f.traceparent
			case equalFoldASCII(k, "x-pa-urgent"):
				dst = &f.urgent
			}
		case 12:
			if equalFoldASCII(k, "x-pa-session") {
				dst = &f.session
			}
		case 13:
			switch {
			case equalFoldASCII(k, "authorization"):
				dst = &f.authorization
			case equalFoldASCII(k, "if-none-match"):
				dst = &f.ifNoneMatch
			case equalFoldASCII(k, "cache-control"):
				dst = &f.cacheControl
			}
		case 17:
			if equalFoldASCII(k, "if-modified-since") {
				dst = &f.ifModifiedSince
			}
		case 19:
			if equalFoldASCII(k, "if-unmodified-since") {
				dst = &f.ifUnmodifiedSince
			}
		case 29:
			if equalFoldASCII(k, "access-control-request-method") {
				dst = &f.accessControlRequestMethod
			}
		}
		if dst != nil && *dst == nil {
			*dst = v
		}
	}
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func (s *Server) acquireExchange(ctx *fasthttp.RequestCtx) *exchange {
	x := exchangePool.Get().(*exchange)
	x.s, x.ctx = s, ctx
	x.start = ctx.Time()
	x.now = x.start.UnixNano()
	x.head = ctx.IsHead()
	return x
}

func (x *exchange) release() {
	tgt, keyBuf, hdrBuf, uriBuf := x.tgt, x.keyBuf[:0], x.hdrBuf[:0], x.uriBuf[:0]
	// x.req aliases the request being released: drop it with the rest.
	*x = exchange{tgt: tgt, keyBuf: keyBuf, hdrBuf: hdrBuf, uriBuf: uriBuf}
	exchangePool.Put(x)
}

// Cache-Status labels (the cache.status attribute of spans and metrics).
const (
	labelHit         = "hit"
	labelMiss        = "miss"
	labelStale       = "stale" // served stale (while revalidating, or on error)
	labelRevalidated = "revalidated"
	labelPass        = "pass"  // forwarded, not cacheable
	labelError       = "error" // origin failure, nothing to serve
	labelNone        = "none"  // not a cache request (routes, refusals)
)

// cacheStatus is the RFC 9211 Cache-Status member of this edge for one
// response, and the label it is counted under.
type cacheStatus struct {
	hit       bool
	fwd       string // RFC 9211 fwd: uri-miss, vary-miss, miss, stale, request, bypass, method
	fwdStatus int
	stored    bool
	collapsed bool
	ttl       int64 // seconds of freshness left (negative: stale); with hasTTL
	hasTTL    bool
	detail    string
	label     string
}

func (c *cacheStatus) appendTo(b []byte) []byte {
	b = append(b, "edge"...)
	if c.hit {
		b = append(b, "; hit"...)
	}
	if c.fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, c.fwd...)
	}
	if c.fwdStatus > 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(c.fwdStatus), 10)
	}
	if c.stored {
		b = append(b, "; stored"...)
	}
	if c.collapsed {
		b = append(b, "; collapsed"...)
	}
	if c.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, c.ttl, 10)
	}
	if c.detail != "" {
		b = append(b, "; detail="...)
		b = append(b, c.detail...)
	}
	return b
}

// Header names and values set on every response.
var (
	hdrCacheStatus   = []byte("Cache-Status")
	hdrAge           = []byte("Age")
	hdrAgeZero       = []byte("0")
	hdrACAO          = []byte("Access-Control-Allow-Origin")
	hdrACEH          = []byte("Access-Control-Expose-Headers")
	valStar          = []byte("*")
	valExposeHeaders = []byte("Content-Range, Content-Length, Content-Type, ETag, Last-Modified, Date, Cache-Status, Age, " +
		"Accept-Ranges, Retry-After, " + UsePeersHeader + ", X-PA-Reason")
	allowSite    = "GET, HEAD, OPTIONS"
	allowHeaders = "Range, If-None-Match, If-Modified-Since, If-Range, If-Match, If-Unmodified-Since, " +
		"Content-Type, " + SessionHeader + ", " + UrgentHeader + ", Traceparent, Tracestate"
)

// handle is the public request handler (fasthttp's).
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	// The request is read: no read timeout while handling it; the write
	// timeout runs once the handler returns (timeouts.go).
	conn := s.conns.entry(ctx.Conn())
	s.markPhase(conn, phaseHandling)
	x := s.acquireExchange(ctx)
	x.req.scan(&ctx.Request.Header)
	x.startSpan()
	s.run(x)
	s.markPhase(conn, phaseWriting)
}

// serveInline answers ctx on an event loop's goroutine, where nothing may
// wait (loop_linux.go): a hit in the memory tier, a refusal, a preflight.
// A request that would wait (for the origin, the disk, a fill) is left
// unanswered, with nothing written or counted, and its exchange returned:
// the loop hands it to a goroutine that runs it again (run), where it
// may wait.
func (s *Server) serveInline(ctx *fasthttp.RequestCtx) *exchange {
	x := s.acquireExchange(ctx)
	x.req.scan(&ctx.Request.Header)
	x.startSpan()
	x.noBlock = true
	if s.run(x) {
		x.noBlock, x.wouldBlock = false, false
		x.cs = cacheStatus{}
		return x
	}
	return nil
}

// wait reports whether x may not wait here (serveInline), marking it to be
// resumed on a goroutine: the caller returns before writing anything.
func (x *exchange) wait() bool {
	if x.noBlock {
		x.wouldBlock = true
		return true
	}
	return false
}

// run dispatches x and ends it, unless a body stream will (in its Close)
// or x would wait (serveInline); it reports the latter.
func (s *Server) run(x *exchange) (wouldBlock bool) {
	ctx := x.ctx
	defer func() {
		// A bug must cost one request, not the process and every
		// connection on it.
		if r := recover(); r != nil {
			wouldBlock = false
			s.log.Error("edge: panic serving a request", "panic", r, "target", string(ctx.Request.Header.RequestURI()),
				"stack", string(debug.Stack()))
			if x.streaming {
				// Closing the attached body stream ends the exchange.
				ctx.Response.ResetBody()
				ctx.Response.Reset()
				ctx.SetStatusCode(fasthttp.StatusInternalServerError)
				ctx.Response.Header.Set("Cache-Status", "edge; detail=internal-error")
				ctx.Response.Header.Set("Age", "0")
			} else {
				x.cs = cacheStatus{detail: "internal-error", label: labelError}
				x.writeError(fasthttp.StatusInternalServerError, "edge: internal error")
				x.finish(-1)
			}
			ctx.SetConnectionClose()
		}
	}()
	s.dispatch(x)
	if x.wouldBlock {
		return true
	}
	if !x.streaming {
		x.finish(-1)
	}
	return false
}

func (s *Server) dispatch(x *exchange) {
	ctx := x.ctx
	h := &ctx.Request.Header
	if h.IsConnect() {
		x.refuse(fasthttp.StatusMethodNotAllowed, "method-not-allowed", "CONNECT is not supported: this edge is not a forward proxy", allowSite)
		return
	}
	raw := h.RequestURI()
	if len(raw) == 0 || raw[0] != '/' {
		if h.IsOptions() && string(raw) == "*" {
			ctx.Response.Header.Set("Allow", allowSite)
			x.refuse(fasthttp.StatusNoContent, "", "", "")
			return
		}
		x.refuse(fasthttp.StatusBadRequest, "absolute-uri", "absolute-form and authority-form request targets are refused: this edge is not a forward proxy", "")
		return
	}
	if err := x.tgt.parse(raw); err != nil {
		x.refuse(fasthttp.StatusBadRequest, "bad-target", err.Error(), "")
		return
	}
	path := x.tgt.path()
	if string(path) == ManifestPath {
		if !x.wait() {
			s.serveManifest(x)
		}
		return
	}
	for i := range s.routes {
		if r := &s.routes[i]; routeMatches(r.Path, path) {
			if !x.wait() {
				s.serveRoute(x, r)
			}
			return
		}
	}
	x.tbl = s.tbl.Load()
	x.host = h.Host()
	site, hostKnown := x.tbl.route(x.host, path)
	switch {
	case !hostKnown:
		x.refuse(fasthttp.StatusMisdirectedRequest, "unknown-host", fmt.Sprintf("no site is configured for host %q", x.host), "")
		return
	case site == nil:
		x.refuse(fasthttp.StatusNotFound, "no-site", "no site serves this path", "")
		return
	}
	x.site = site
	switch {
	case h.IsGet(), h.IsHead():
	case h.IsOptions():
		x.preflight(allowSite)
		return
	default:
		x.refuse(fasthttp.StatusMethodNotAllowed, "method-not-allowed", fmt.Sprintf("method %s is not allowed: the edge serves GET and HEAD", h.Method()), allowSite)
		return
	}
	if !s.admitSession(x) {
		return
	}
	s.serveCache(x)
}

// routeMatches reports whether a route path serves path: exactly, or as a
// directory when it ends in "/".
func routeMatches(route string, path []byte) bool {
	if route[len(route)-1] == '/' {
		return bytes.HasPrefix(path, []byte(route))
	}
	return string(path) == route
}

// serveRoute runs a mounted route with CORS headers (peer-assist clients
// are browsers on other origins) and answers its preflights.
func (s *Server) serveRoute(x *exchange, r *Route) {
	x.cs = cacheStatus{fwd: "bypass", label: labelNone}
	if x.ctx.IsOptions() && len(x.req.accessControlRequestMethod) > 0 {
		x.preflight("GET, HEAD, POST, OPTIONS")
		return
	}
	x.setCommonHeaders()
	x.ctx.Response.Header.SetBytesKV(hdrAge, hdrAgeZero)
	r.Handler(x.ctx)
	// A handler that answered with ctx.Error reset the headers set above
	// (the coordinator's 426 to a plain GET, whoami's 405): set them again.
	if rh := &x.ctx.Response.Header; len(rh.PeekBytes(hdrCacheStatus)) == 0 {
		x.setCommonHeaders()
		rh.SetBytesKV(hdrAge, hdrAgeZero)
	}
}

// preflight answers OPTIONS: a CORS preflight or a plain capability query.
func (x *exchange) preflight(methods string) {
	rh := &x.ctx.Response.Header
	rh.Set("Allow", methods)
	if len(x.req.accessControlRequestMethod) > 0 {
		rh.Set("Access-Control-Allow-Methods", methods)
		rh.Set("Access-Control-Allow-Headers", allowHeaders)
		rh.Set("Access-Control-Max-Age", "600")
	}
	if x.cs.label == "" {
		x.cs = cacheStatus{fwd: "bypass", label: labelNone}
	}
	x.setCommonHeaders()
	rh.SetBytesKV(hdrAge, hdrAgeZero)
	x.ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// setCommonHeaders sets Cache-Status and the CORS response headers.
func (x *exchange) setCommonHeaders() {
	rh := &x.ctx.Response.Header
	x.hdrBuf = x.cs.appendTo(x.hdrBuf[:0])
	rh.SetCanonical(hdrCacheStatus, x.hdrBuf)
	rh.SetCanonical(hdrACAO, valStar)
	rh.SetCanonical(hdrACEH, valExposeHeaders)
}

// refuse answers a request the edge will not serve (or an error of its
// own) with status and a one-line text message. detail goes into
// Cache-Status; allow, if set, into Allow.
func (x *exchange) refuse(status int, detail, msg, allow string) {
	if x.cs.label == "" || detail != "" {
		x.cs = cacheStatus{fwd: "bypass", detail: detail, label: labelNone}
	}
	x.writeError(status, msg)
	if allow != "" {
		x.ctx.Response.Header.Set("Allow", allow)
	}
}

// writeError writes a generated response with x.cs as it stands.
func (x *exchange) writeError(status int, msg string) {
	resp := &x.ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	x.setCommonHeaders()
	resp.Header.SetBytesKV(hdrAge, hdrAgeZero)
	resp.Header.Set("Cache-Control", "no-store")
	if msg != "" {
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.SetBodyString(msg + "\n")
	}
}

// handleParseError answers requests fasthttp could not read: 431 for a
// header block over limits.max_header_bytes, 408 for a read timeout, 413
// for a body too large, 400 otherwise.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, "malformed request"
	switch e := err.(type) {
	case *fasthttp.ErrSmallBuffer:
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header fields too large"
	default:
		_ = e
		switch {
		case err == fasthttp.ErrBodyTooLarge:
			status, msg = fasthttp.StatusRequestEntityTooLarge, "request body too large"
		case isTimeout(err):
			status, msg = fasthttp.StatusRequestTimeout, "request not received in time"
		}
	}
	x := s.acquireExchange(ctx)
	// fasthttp's request time is the previous request's (or zero) when
	// no request was read: time the answer from the start of the
	// connection's phase (the first byte of the request, or the accept or
	// the previous answer when nothing came), else from now. The method
	// may not have been read either: it is counted as _OTHER.
	x.start = time.Now()
	x.now = x.start.UnixNano()
	if t, ok := s.phaseStart(s.conns.entry(ctx.Conn())); ok && t.Before(x.start) {
		x.start = t
	}
	x.unreadable = true
	x.tbl = s.tbl.Load() // for the access log
	x.cs = cacheStatus{fwd: "bypass", detail: "bad-request", label: labelNone}
	x.writeError(status, msg)
	ctx.SetConnectionClose()
	// Counted (edge_requests_total, /stats, the access log) like every
	// other answer: 400, 408 (a client too slow to send its request), 413
	// and 431 are what an operator looks for when clients misbehave.
	x.finish(-1)
	s.log.Debug("edge: unreadable request", "remote", ctx.RemoteAddr().String(), "error", err, "status", status)
}

// admitSession asks the session gate about a request carrying a
// peer-assist session; a refusal is answered 429 here.
func (s *Server) admitSession(x *exchange) bool {
	if x.admitted {
		return true // asked already, before a resume
	}
	id := x.req.session
	if len(id) == 0 && x.tgt.hasSession {
		id = x.tgt.session
	}
	if len(id) == 0 {
		return true
	}
	x.session, x.hasSess = string(id), true
	x.urgent = x.tgt.urgent || string(x.req.urgent) == "1"
	if s.sessions == nil {
		return true
	}
	ok, retryAfter, reason := s.sessions.Admit(x.session, x.urgent)
	if ok {
		x.admitted = true
		return true
	}
	x.cs = cacheStatus{fwd: "bypass", detail: "peer-assist-throttled", label: labelNone}
	if reason == "" {
		reason = "edge capacity reserved: fetch from peers"
	}
	x.writeError(fasthttp.StatusTooManyRequests, "edge: "+reason)
	rh := &x.ctx.Response.Header
	rh.Set("Retry-After", strconv.FormatInt(max(1, durationSeconds(retryAfter)), 10))
	rh.Set(UsePeersHeader, "1")
	rh.Set("X-PA-Reason", reason)
	return false
}

// finish ends the exchange once its response is written: metrics, span,
// the session's byte count and the access log. bodyBytes < 0 takes the
// length of the response's in-memory body.
func (x *exchange) finish(bodyBytes int64) {
	resp := &x.ctx.Response
	if bodyBytes < 0 {
		bodyBytes = 0
		if !x.head && !resp.IsBodyStream() && !x.ctx.Hijacked() {
			bodyBytes = int64(len(resp.Body()))
		}
	}
	x.bodySent = bodyBytes
	s := x.s
	status := resp.StatusCode()
	if x.cs.label == "" {
		x.cs.label = labelNone
	}
	s.tel.record(x, status)
	if x.hasSess && s.sessions != nil && x.site != nil && x.cs.label != labelNone {
		if ug, ok := s.sessions.(UrgencyGate); ok {
			ug.ServedUrgent(x.session, x.site.name, string(x.tgt.pathQuery()), bodyBytes, x.urgent)
		} else {
			s.sessions.Served(x.session, x.site.name, string(x.tgt.pathQuery()), bodyBytes)
		}
	}
	if x.tbl != nil && x.tbl.accessLog {
		s.accessLog(x, status)
	}
	x.release()
}
