package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
)

// Origins fetches a request from one of a site's origins, which it
// chooses; the response body may be left streaming (resp.BodyStream()).
// Timeouts are reported as such (errors.Is context.DeadlineExceeded, or a
// Timeout() bool method, as *origin.Error has), so the edge answers 504
// rather than 502. *origin.Pool implements it.
type Origins interface {
	Do(ctx context.Context, site string, req *fasthttp.Request, resp *fasthttp.Response) (origin.Result, error)
}

var _ Origins = (*origin.Pool)(nil)

type resultKind int

const (
	resError       resultKind = iota // no usable response (see err/status)
	resFill                          // stored: follow the fill
	resRevalidated                   // 304: the stored version is fresh again
	resPass                          // not storable
	resRetry                         // look the object up again
)

// fetchResult is the outcome of one origin fetch for a cache key, shared by
// the requests that collapsed onto it.
type fetchResult struct {
	kind   resultKind
	key    string      // resFill: the key the object is stored under
	vary   []string    // resFill: the response's Vary
	fill   *cache.Fill // resFill: the fill to follow or wait for
	info   cache.ObjectInfo
	meta   *objMeta
	status int    // origin status, 0 without a response
	err    error  // resError without a response
	reason string // resPass: why it is not stored
	// resp is the origin's response with its body, for the leader only
	// (resPass, or resError with the origin's 5xx); the leader must
	// release it (writePassResponse does).
	resp *fasthttp.Response
}

// flightGroup collapses concurrent fetches of one cache key into one
// origin request (until its headers arrive; then the store's fill takes
// over the body). Its zero value is ready to use; safe for concurrent use.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done chan struct{}
	res  fetchResult // set before done is closed; resp never shared
}

// join returns the flight for key and whether the caller leads it (must
// run the fetch and call land).
func (g *flightGroup) join(key string) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		return f, false
	}
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

func (g *flightGroup) land(key string, f *flight, res fetchResult) {
	res.resp = nil
	f.res = res
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(f.done)
}

func (g *flightGroup) inFlight(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[key]
	return ok
}

// fetchSpec is everything a fetch needs, independent of the client request
// (a background revalidation outlives it).
type fetchSpec struct {
	site    *site
	policy  storePolicy
	maxObj  int64
	primary string
	key     string
	req     *fasthttp.Request // owned by the fetch
	stale   *storedObj
	parent  context.Context
	// forClient: a client waits and takes the origin's response if it is
	// not stored (resPass).
	forClient bool
}

// fetchCollapsed fetches x's object for the cache, or waits for the fetch
// of it already in flight.
func (s *Server) fetchCollapsed(x *exchange, stale *storedObj) (fetchResult, bool) {
	x.retainKeys()
	f, leader := s.flights.join(x.key)
	if !leader {
		<-f.done // bounded by the origin timeouts of the leader's fetch
		return f.res, false
	}
	spec := fetchSpec{
		site: x.site, policy: x.tbl.policy, maxObj: x.tbl.maxObjectBytes,
		primary: x.primary, key: x.key, stale: stale, parent: x.traceContext(), forClient: true,
		req: s.originRequest(x, true, stale),
	}
	var res fetchResult
	defer func() { s.flights.land(x.key, f, res) }()
	res = s.fetch(&spec)
	return res, true
}

// revalidateInBackground refreshes a stale object served under
// stale-while-revalidate, once however many requests see it stale.
func (s *Server) revalidateInBackground(x *exchange, obj storedObj) {
	if s.flights.inFlight(x.key) || s.isShutdown() {
		return
	}
	x.retainKeys()
	f, leader := s.flights.join(x.key)
	if !leader {
		return
	}
	spec := &fetchSpec{
		site: x.site, policy: x.tbl.policy, maxObj: x.tbl.maxObjectBytes,
		primary: x.primary, key: x.key, stale: &obj,
		parent: trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(x.traceContext())),
		req:    s.originRequest(x, true, &obj),
	}
	s.fills.Add(1)
	go func() {
		defer s.fills.Done()
		res := s.fetch(spec)
		s.flights.land(spec.key, f, res)
	}()
}

// fetch sends spec.req to the origin and decides what becomes of the
// response: a fill of the store, a revalidated stored version, or a
// response passed through.
func (s *Server) fetch(spec *fetchSpec) (res fetchResult) {
	ctx, span := s.tracer.Start(spec.parent, "edge.fetch", trace.WithSpanKind(trace.SpanKindInternal))
	defer func() {
		span.SetAttributes(attribute.String("edge.site", spec.site.name), attribute.Int("http.response.status_code", res.status))
		if res.err != nil {
			span.RecordError(res.err)
			span.SetStatus(codes.Error, res.err.Error())
		}
		span.End()
	}()
	req := spec.req
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true)
	reqTime := time.Now()
	_, err := s.origins.Do(ctx, spec.site.name, req, resp)
	respTime := time.Now()
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return fetchResult{kind: resError, err: err}
	}
	status := resp.StatusCode()

	if spec.stale != nil && status == fasthttp.StatusNotModified {
		defer releaseResponse(resp)
		return s.revalidated(spec, resp, reqTime, respTime)
	}

	m, storable, reason := buildMeta(resp.Header.All(), status, reqTime, respTime, spec.policy)
	size := int64(resp.Header.ContentLength())
	if size < 0 {
		size = -1 // chunked, or until the connection closes
	}
	if storable && size > spec.maxObj {
		storable, reason = false, reasonTooLarge
	}
	if !storable {
		return s.notStored(spec, resp, status, reason, respTime)
	}

	storeKey := spec.primary
	if len(m.Vary) > 0 {
		storeKey = variantKey(spec.primary, m.Vary, &req.Header)
		s.writeVaryMarker(spec, m.Vary)
	}
	f, leader := s.store.StartFill(storeKey, size, spec.site.chunkBytes, m.encode())
	if !leader {
		// Another fill of this key started meanwhile: follow it.
		releaseResponse(resp)
		info := f.Info()
		if fm := s.metaOf(&info); fm != nil {
			return fetchResult{kind: resFill, key: storeKey, vary: m.Vary, fill: f, info: info, meta: fm, status: status}
		}
		return fetchResult{kind: resRetry}
	}
	if err := f.Err(); err != nil {
		// Refused up front (larger than the store can hold, store closed):
		// pass it through.
		return s.notStored(spec, resp, status, reasonTooLarge, respTime)
	}
	info := f.Info()
	m.derive()
	s.metas.Add(metaKey{info.ID, info.Version}, metaEntry{blob: info.HTTP, meta: m})
	s.fills.Add(1)
	go s.copyFill(ctx, f, resp, spec)
	return fetchResult{kind: resFill, key: storeKey, vary: m.Vary, fill: f, info: info, meta: m, status: status}
}

// notStored handles a response the cache does not keep.
func (s *Server) notStored(spec *fetchSpec, resp *fasthttp.Response, status int, reason string, now time.Time) fetchResult {
	if hitForPass(reason) {
		// The origin says so for this URL: send the next requests straight
		// through for a while rather than queueing them behind each other.
		s.markPass(spec.primary, reason, now)
	}
	if status >= 500 {
		res := fetchResult{kind: resError, status: status, reason: "origin-error"}
		if spec.forClient && (spec.stale == nil || !spec.stale.meta.staleIfErrorOK(now.UnixNano())) {
			res.resp = resp // the leader relays the origin's own error
		} else {
			releaseResponse(resp)
		}
		return res
	}
	res := fetchResult{kind: resPass, status: status, reason: reason}
	if spec.forClient {
		res.resp = resp
	} else {
		releaseResponse(resp)
	}
	return res
}

// revalidated applies a 304 to the stored version (RFC 9111 sec. 4.3.4).
func (s *Server) revalidated(spec *fetchSpec, resp *fasthttp.Response, reqTime, respTime time.Time) fetchResult {
	old := spec.stale
	if et := resp.Header.Peek("ETag"); len(et) > 0 && old.meta.ETag != "" && string(et) != old.meta.ETag {
		// The 304 validates another representation than the stored one.
		s.store.Purge(old.info.Key)
		return fetchResult{kind: resRetry}
	}
	nm, storable := mergeNotModified(old.meta, resp.Header.All(), reqTime, respTime, spec.policy)
	if !storable {
		s.store.Purge(old.info.Key)
		return fetchResult{kind: resRetry}
	}
	blob := nm.encode()
	if err := s.store.UpdateHTTP(old.info.ID, old.info.Version, blob); err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("edge: updating revalidated object", "key", old.info.Key, "error", err)
		}
		return fetchResult{kind: resRetry}
	}
	nm.derive()
	info := old.info
	info.HTTP = blob
	// The store keeps its own copy of blob: the next lookup decodes it.
	return fetchResult{kind: resRevalidated, info: info, meta: nm, status: fasthttp.StatusNotModified}
}

// writeVaryMarker records at the primary key that the URL varies on vary,
// unless that is already recorded.
func (s *Server) writeVaryMarker(spec *fetchSpec, vary []string) {
	if info, err := s.store.Lookup(spec.primary); err == nil {
		if m := s.metaOf(&info); m != nil && m.VaryMarker && equalStrings(m.Vary, vary) {
			return
		}
	}
	mm := &objMeta{Status: fasthttp.StatusOK, VaryMarker: true, Vary: vary, ResponseTime: time.Now().UnixNano()}
	f, leader := s.store.StartFill(spec.primary, 0, spec.site.chunkBytes, mm.encode())
	if leader && f.Err() == nil {
		if err := f.Commit(); err != nil && !errors.Is(err, cache.ErrPurged) {
			s.log.Warn("edge: storing Vary marker", "key", spec.primary, "error", err)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// copyFill copies the origin's body into the store. It runs on its own,
// not tied to any client: see the package decisions in proxy.go.
func (s *Server) copyFill(parent context.Context, f *cache.Fill, resp *fasthttp.Response, spec *fetchSpec) {
	defer s.fills.Done()
	defer releaseResponse(resp)
	_, span := s.tracer.Start(parent, "edge.fill")
	var (
		n   int64
		err error
	)
	if body := resp.BodyStream(); body != nil {
		bufp := copyBufPool.Get().(*[]byte)
		buf := *bufp
		for {
			if s.baseCtx.Err() != nil {
				err = fmt.Errorf("edge shutting down: %w", s.baseCtx.Err())
				break
			}
			k, rerr := body.Read(buf)
			if k > 0 {
				n += int64(k)
				if _, werr := f.Write(buf[:k]); werr != nil {
					err = werr
					break
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				err = fmt.Errorf("reading origin body: %w", rerr)
				break
			}
		}
		copyBufPool.Put(bufp)
	} else {
		b := resp.Body()
		n = int64(len(b))
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Commit()
	} else {
		f.Abort(err)
	}
	s.stats.originBytes.Add(n)
	ctx := context.Background()
	site := metric.WithAttributes(attribute.String("edge.site", spec.site.name))
	s.tel.originBytes.Add(ctx, n, site)
	outcome := "committed"
	switch {
	case err == nil:
	case errors.Is(err, cache.ErrTooLarge):
		outcome = "too_large"
		s.markPass(spec.primary, reasonTooLarge, time.Now())
	case errors.Is(err, cache.ErrPurged):
		outcome = "purged"
	default:
		outcome = "aborted"
	}
	s.tel.fills.Add(ctx, 1, metric.WithAttributes(attribute.String("edge.site", spec.site.name), attribute.String("outcome", outcome)))
	span.SetAttributes(attribute.Int64("edge.fill.bytes", n), attribute.String("edge.fill.outcome", outcome))
	if err != nil && outcome != "purged" {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		s.log.Warn("edge: fill failed", "site", spec.site.name, "key", spec.key, "bytes", n, "error", err)
	}
	span.End()
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func releaseResponse(resp *fasthttp.Response) {
	resp.CloseBodyStream()
	fasthttp.ReleaseResponse(resp)
}

// Hit-for-pass: URLs whose responses are not storable by their own say go
// straight to the origin for passTTL instead of collapsing.
const passTTL = 30 * time.Second

type passEntry struct {
	until  int64 // Unix ns
	reason string
}

func (s *Server) markPass(primary, reason string, now time.Time) {
	until := now.Add(passTTL).UnixNano()
	s.passes.Add(primary, passEntry{until: until, reason: reason})
	for {
		old := s.passesUntil.Load()
		if old >= until || s.passesUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// hitForPass reports whether a response not stored for reason makes its
// URL hit-for-pass: the reason belongs to the URL (the origin's say, or the
// object's size), not to this one response.
func hitForPass(reason string) bool {
	switch reason {
	case reasonNoStore, reasonPrivate, reasonSetCookie, reasonVaryStar, reasonTooLarge:
		return true
	}
	return false
}

// passReason returns why primary is passed to the origin, or "".
func (s *Server) passReason(primary string, now int64) string {
	if now >= s.passesUntil.Load() {
		return "" // every entry has expired: skip the table's lock
	}
	p, ok := s.passes.Peek(primary)
	if !ok {
		return ""
	}
	if now >= p.until {
		s.passes.Remove(primary)
		return ""
	}
	return p.reason
}

// servePass forwards x to the origin as the client sent it (with its Range
// and conditional headers) and streams the answer back, storing nothing.
func (s *Server) servePass(x *exchange, fwd, reason string) {
	s.servePassIfRange(x, fwd, reason, "")
}

// servePassIfRange is servePass that, when ifRange is set, sends it as the
// request's If-Range (see serveRangeAhead).
func (s *Server) servePassIfRange(x *exchange, fwd, reason, ifRange string) {
	req := s.originRequest(x, false, nil)
	if ifRange != "" {
		req.Header.Set("If-Range", ifRange)
	}
	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true)
	if x.head {
		resp.SkipBody = true
	}
	ctx, span := s.tracer.Start(x.traceContext(), "edge.fetch")
	_, err := s.origins.Do(ctx, x.site.name, req, resp)
	span.End()
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		x.writeOriginError(fwd, &fetchResult{kind: resError, err: err})
		return
	}
	x.cs = cacheStatus{fwd: fwd, fwdStatus: resp.StatusCode(), detail: reason, label: labelPass}
	s.writePassResponse(x, resp)
}

// writePassResponse relays an origin response (status, end-to-end headers,
// streamed body) to the client and takes ownership of resp.
func (s *Server) writePassResponse(x *exchange, resp *fasthttp.Response) {
	ctx := x.ctx
	rh := &ctx.Response.Header
	ctx.SetStatusCode(resp.StatusCode())
	conn := connectionTokens(resp.Header.All())
	hasAge := false
	for k, v := range resp.Header.All() {
		switch {
		case isHopByHop(k), equalFoldASCII(k, "content-length"), equalFoldASCII(k, "cache-status"):
			continue
		case containsFold(conn, k):
			continue
		case equalFoldASCII(k, "age"):
			hasAge = true
		}
		rh.AddBytesKV(k, v)
	}
	if !hasAge {
		rh.SetBytesKV(hdrAge, hdrAgeZero)
	}
	x.setCommonHeaders()
	if x.head {
		if cl := resp.Header.ContentLength(); cl >= 0 {
			rh.SetContentLength(cl)
		}
		releaseResponse(resp)
		return
	}
	body := resp.BodyStream()
	if body == nil {
		ctx.Response.SetBody(resp.Body())
		s.countOrigin(x, int64(len(resp.Body())))
		releaseResponse(resp)
		return
	}
	ps := &passStream{x: x, resp: resp, body: body}
	x.streaming = true
	ctx.SetBodyStream(ps, resp.Header.ContentLength())
}

func (s *Server) countOrigin(x *exchange, n int64) {
	s.stats.originBytes.Add(n)
	s.tel.originBytes.Add(context.Background(), n, metric.WithAttributes(attribute.String("edge.site", x.site.name)))
}

func containsFold(names []string, k []byte) bool {
	for _, n := range names {
		if equalFoldASCII(k, n) {
			return true
		}
	}
	return false
}

// passStream relays an origin body to the client and releases the origin
// response when done.
type passStream struct {
	x       *exchange
	resp    *fasthttp.Response
	body    io.Reader
	written int64
}

func (p *passStream) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	p.written += int64(n)
	return n, err
}

func (p *passStream) Close() error {
	if p.resp == nil {
		return nil
	}
	p.x.s.countOrigin(p.x, p.written)
	releaseResponse(p.resp)
	p.resp = nil
	p.x.finish(p.written)
	return nil
}

// writeOriginError answers an origin failure: 504 for a timeout, the
// origin's 5xx status when it answered with one, 502 otherwise.
func (x *exchange) writeOriginError(fwd string, res *fetchResult) {
	status, detail, msg := fasthttp.StatusBadGateway, "origin-unreachable", "origin unreachable or sent a bad response"
	switch {
	case res.err != nil && isTimeout(res.err):
		status, detail, msg = fasthttp.StatusGatewayTimeout, "origin-timeout", "origin timed out"
	case res.status >= 500:
		status, detail, msg = res.status, "origin-error", fmt.Sprintf("origin answered %d", res.status)
	}
	if fwd == "" {
		fwd = "miss"
	}
	x.cs = cacheStatus{fwd: fwd, fwdStatus: res.status, detail: detail, label: labelError}
	x.writeError(status, "edge: "+msg)
	if res.err != nil {
		x.s.log.Warn("edge: origin fetch failed", "site", x.site.name, "target", string(x.tgt.pathQuery()), "error", res.err)
	}
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) {
		return true
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
