package edge

import (
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/edge/cache"
)

// The cache logic (RFC 9111) of a GET or HEAD for a site.
//
// Decisions documented here once:
//   - Request Cache-Control from clients (no-cache, max-age=0, Pragma) is
//     ignored: browsers send it on every reload, and honoring it would let
//     any client drive origin load. only-if-cached is honored (504 when
//     nothing usable is stored); an object being filled counts as stored
//     (it is served as it fills, without a request to the origin).
//   - Requests with Authorization are passed to the origin and never stored
//     (RFC 9111 sec. 3.5 allows storing some; passing is the safe choice).
//   - A HEAD miss fetches with GET and fills the cache, as Varnish does.
//   - When the only client of a fill goes away, the fill continues: for
//     video, the next viewer wants the same segment. Fills end with the
//     origin's body, an origin error or timeout, the size limit, a purge,
//     or Shutdown.
//   - A Range request on a miss fetches the whole object once (collapsed)
//     and answers the range from the fill as soon as its bytes arrive,
//     unless the range starts far ahead of the fill (a video seek into a
//     large object being filled): the fill would need more than
//     rangeAheadHorizon to reach it, at the rate it has shown. That
//     request is forwarded with its Range (Cache-Status detail
//     range-ahead-of-fill, counted as a pass) while the fill goes on for
//     the requests that follow; the leader's client too, as the fill is
//     copied by its own goroutine (copyFill), not by a client.
//     Objects too large to store (over limits.max_object_bytes, or over
//     what the store can hold: a memory-only cache cannot hold an object
//     larger than its memory tier) are passed through with the client's
//     Range, uncached. The edge learns that an object is too large from
//     the origin's answer to the fill's full-object request: a client that
//     asked for a range then does not get the whole body. That fetch is
//     stopped at its headers (its connection closed, so the origin sends
//     at most what the socket buffers hold) and the client's request is
//     forwarded with its Range; the URL is remembered as hit-for-pass for
//     passTTL, so the requests that follow are forwarded with their Range
//     straight away. The same holds for the other reasons that make a URL
//     hit-for-pass (no-store, private, Set-Cookie, Vary: *): one wasted
//     origin round trip per passTTL rather than a whole body per range.
//     Chunk-by-chunk caching of huge objects was not chosen: it would
//     need a store of partial objects, and video segments (what this edge
//     is for) fit the limit. Objects of unknown length (chunked from
//     the origin) are answered 200 in full while they fill: Range is
//     honored once the length is known. If such a body outgrows the limit,
//     the fill is aborted, its clients see the connection cut (the length
//     could not be known in advance) and the URL is passed through for the
//     next passTTL.
//   - Responses with Set-Cookie are not stored unless marked public; then
//     Set-Cookie is never replayed from the cache.

// storedObj is one stored version found by a lookup, with its decoded
// metadata.
type storedObj struct {
	info cache.ObjectInfo
	meta *objMeta
}

// errRetry asks serveCache to look the object up again (it was purged,
// evicted, replaced or found corrupt between lookup and read).
var errRetry = errors.New("object changed under the request")

const maxCacheAttempts = 4

func (s *Server) serveCache(x *exchange) {
	if len(x.req.authorization) > 0 {
		if !x.wait() {
			s.servePass(x, "request", reasonAuthorized)
		}
		return
	}
	x.primary = x.primaryKey()
	if reason := s.passReason(x.primary, x.now); reason != "" {
		if !x.wait() {
			s.servePass(x, "bypass", reason)
		}
		return
	}
	onlyIfCached := requestOnlyIfCached(x.req.cacheControl)
	for attempt := 0; attempt < maxCacheAttempts; attempt++ {
		obj, fill, found, fwd := s.lookup(x)
		if found {
			x.cs.hasTTL = true
			x.cs.ttl = int64(time.Duration(obj.meta.Lifetime)-obj.meta.currentAge(x.now)) / int64(time.Second)
			switch obj.meta.freshnessAt(x.now) {
			case fresh:
				x.cs.hit, x.cs.label = true, labelHit
				if s.serveStored(x, obj, false) == nil || x.wouldBlock {
					return
				}
				x.cs = cacheStatus{}
				continue
			case staleWhileRevalidate:
				x.cs.hit, x.cs.label, x.cs.detail = true, labelStale, "stale-while-revalidate"
				if s.serveStored(x, obj, false) == nil {
					s.revalidateInBackground(x, obj)
					return
				}
				if x.wouldBlock {
					return
				}
				x.cs = cacheStatus{}
				continue
			}
			fwd = "stale"
		}
		if x.wait() {
			return // a revalidation, a fill to follow or a fetch
		}
		if fill != nil {
			// Not forwarded: served from the cache as it fills. This counts
			// for only-if-cached too: a client that has just read the
			// whole body of a miss may ask again before the fill commits.
			// A response stale on arrival (Expires in the past or
			// invalid, max-age=0) is not reused while it fills either: it
			// needs validating, as it will once stored (RFC 9111 4.2).
			if f, ok := s.fillingObj(fill); ok && time.Duration(f.meta.Lifetime) > f.meta.currentAge(x.now) {
				if !onlyIfCached && x.rangeAheadOfFill(fill, &f) {
					s.serveRangeAhead(x, fwd, f.meta)
					return
				}
				m := f.meta
				x.cs = cacheStatus{hit: true, detail: "filling", label: labelHit, hasTTL: true,
					ttl: int64(time.Duration(m.Lifetime)-m.currentAge(x.now)) / int64(time.Second)}
				if s.serveStored(x, f, true) == nil {
					return
				}
				x.cs = cacheStatus{}
				continue
			}
		}
		if onlyIfCached {
			x.cs = cacheStatus{fwd: fwd, detail: "only-if-cached", label: labelError}
			x.writeError(fasthttp.StatusGatewayTimeout, "not in cache (only-if-cached)")
			return
		}
		var stale *storedObj
		if found {
			st := obj // only this path takes an address: a hit does not move obj to the heap
			stale = &st
		}
		res, leader := s.fetchCollapsed(x, stale)
		if s.serveResult(x, res, leader, stale, fwd) {
			return
		}
		x.cs = cacheStatus{}
	}
	x.cs = cacheStatus{fwd: "miss", detail: "unstable-object", label: labelError}
	x.writeError(fasthttp.StatusServiceUnavailable, "the object kept changing while being served; retry")
}

// serveResult answers x from the outcome of an origin fetch. It returns
// false when the lookup must be retried.
func (s *Server) serveResult(x *exchange, res fetchResult, leader bool, stale *storedObj, fwd string) bool {
	switch res.kind {
	case resFill:
		if !leader && !s.sameVariant(x, &res) {
			return false // the origin's Vary puts this client in another variant
		}
		obj := storedObj{res.info, res.meta}
		if x.rangeAheadOfFill(res.fill, &obj) {
			// The fill goes on in its own goroutine (copyFill), for the
			// leader's fill too.
			s.serveRangeAhead(x, fwd, obj.meta)
			return true
		}
		x.cs = cacheStatus{fwd: fwd, fwdStatus: res.status, stored: true, collapsed: !leader, label: labelMiss}
		if stale != nil {
			x.cs.label = labelRevalidated
		}
		return s.serveStored(x, obj, true) == nil
	case resRevalidated:
		x.cs = cacheStatus{fwd: "stale", fwdStatus: fasthttp.StatusNotModified, collapsed: !leader, label: labelRevalidated}
		return s.serveStored(x, storedObj{res.info, res.meta}, false) == nil
	case resPass:
		if leader && res.resp != nil && res.status == fasthttp.StatusOK && hitForPass(res.reason) && x.wantsRangeOf(res.resp) {
			// The fill's full-object fetch is not wanted: stop it (closing
			// the body closes its connection, nothing more is read) and
			// forward the client's Range, as the requests that follow will
			// be while the URL is hit-for-pass.
			releaseResponse(res.resp)
			s.servePass(x, fwd, res.reason)
			return true
		}
		if leader && res.resp != nil {
			x.cs = cacheStatus{fwd: fwd, fwdStatus: res.status, detail: res.reason, label: labelPass}
			s.writePassResponse(x, res.resp)
			return true
		}
		s.servePass(x, fwd, res.reason)
		return true
	case resError:
		if stale != nil && stale.meta.staleIfErrorOK(x.now) {
			x.cs = cacheStatus{fwd: "stale", fwdStatus: res.status, detail: "stale-if-error", label: labelStale}
			if s.serveStored(x, *stale, false) == nil {
				if res.resp != nil {
					releaseResponse(res.resp)
				}
				return true
			}
		}
		if leader && res.resp != nil { // the origin's own error response
			x.cs = cacheStatus{fwd: fwd, fwdStatus: res.status, detail: res.reason, label: labelError}
			s.writePassResponse(x, res.resp)
			return true
		}
		x.writeOriginError(fwd, &res)
		return true
	case resRetry:
		return false
	}
	return false
}

// wantsRangeOf reports whether x asks for a part of the 200 response resp
// (a Range to honor: one range, satisfiable or not; an If-Range is left to
// the origin), rather than all of it.
func (x *exchange) wantsRangeOf(resp *fasthttp.Response) bool {
	if x.head || len(x.req.rng) == 0 {
		return false
	}
	size := int64(resp.Header.ContentLength())
	if size < 0 {
		return true // unknown length: let the origin judge the Range
	}
	res, _, _ := parseRange(x.req.rng, size)
	return res != rangeNone
}

// primaryKey builds the cache key without Vary (site, normalized path and
// query) in x.keyBuf and returns it as a string sharing x.keyBuf's bytes, so
// that a hit allocates no key. The string is only valid while x.keyBuf is
// unchanged and x is in use: retainKeys copies the keys before anything
// keeps them (flights, fills, the hit-for-pass table).
func (x *exchange) primaryKey() string {
	b := append(x.keyBuf[:0], x.site.name...)
	b = append(b, 0)
	b = append(b, x.tgt.pathQuery()...)
	x.keyBuf = b
	x.keysBorrowed = true
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// retainKeys makes x.primary and x.key owned strings.
func (x *exchange) retainKeys() {
	if !x.keysBorrowed {
		return
	}
	sameKey := unsafe.StringData(x.key) == unsafe.StringData(x.primary)
	x.primary = strings.Clone(x.primary)
	if sameKey {
		x.key = x.primary
	}
	x.keysBorrowed = false
}

// lookup finds the stored object for x, following a Vary marker to the
// variant for x's request headers; it sets x.key. When nothing usable is
// stored, fill is the fill of x.key in flight, if any: a fill that commits
// meanwhile is seen as one or the other (cache.Store.LookupOrInFlight).
// fwd is the RFC 9211 fwd value a miss would have.
func (s *Server) lookup(x *exchange) (obj storedObj, fill *cache.Fill, found bool, fwd string) {
	x.key = x.primary
	info, fill, err := s.store.LookupOrInFlight(x.primary)
	if err != nil {
		return storedObj{}, fill, false, "uri-miss"
	}
	m := s.metaOf(&info)
	if m == nil {
		return storedObj{}, nil, false, "uri-miss"
	}
	if !m.VaryMarker {
		return storedObj{info, m}, nil, true, ""
	}
	x.key = variantKey(x.primary, m.Vary, &x.ctx.Request.Header)
	info, fill, err = s.store.LookupOrInFlight(x.key)
	if err != nil {
		return storedObj{}, fill, false, "vary-miss"
	}
	if m = s.metaOf(&info); m == nil || m.VaryMarker {
		return storedObj{}, nil, false, "vary-miss"
	}
	return storedObj{info, m}, nil, true, ""
}

// fillingObj describes the fill in flight that lookup returned, or false
// if it cannot be served (unreadable metadata, a Vary marker).
func (s *Server) fillingObj(f *cache.Fill) (storedObj, bool) {
	info := f.Info()
	m := s.metaOf(&info)
	if m == nil || m.VaryMarker {
		return storedObj{}, false
	}
	return storedObj{info, m}, true
}

// metaKey names one stored version.
type metaKey struct{ id, version uint64 }

// metaEntry is a decoded metadata blob. It keeps the blob it was decoded
// from: the store replaces a version's blob whole (UpdateHTTP) and never
// changes one in place, and while the entry holds the old blob its memory
// cannot be reused, so "same address and length" identifies the same blob.
type metaEntry struct {
	blob []byte
	meta *objMeta
}

// metaOf returns the decoded HTTP metadata of info, or nil if it cannot be
// read (then the object is treated as absent and refetched).
func (s *Server) metaOf(info *cache.ObjectInfo) *objMeta {
	k := metaKey{info.ID, info.Version}
	if e, ok := s.metas.Get(k); ok && len(e.blob) == len(info.HTTP) && unsafe.SliceData(e.blob) == unsafe.SliceData(info.HTTP) {
		return e.meta
	}
	m, err := decodeMeta(info.HTTP)
	if err != nil {
		if info.Complete {
			s.log.Warn("edge: dropping object with unreadable metadata", "key", info.Key, "error", err)
			s.store.Purge(info.Key)
		}
		return nil
	}
	s.metas.Add(k, metaEntry{blob: info.HTTP, meta: m})
	return m
}

// variantKey is the key of the variant of primary selected by the request
// header values of the fields named in vary (RFC 9111 sec. 4.1).
func variantKey(primary string, vary []string, h *fasthttp.RequestHeader) string {
	var b strings.Builder
	b.WriteString(primary)
	b.WriteByte(0)
	b.WriteString("vary")
	for _, name := range vary {
		b.WriteByte(0)
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(normalizedFieldValue(name, h))
	}
	return b.String()
}

// normalizedFieldValue returns a request field's value in the form used
// for Vary keys: every line joined, list elements trimmed; Accept-Encoding
// reduced to the sorted set of codings the client accepts (q > 0), so that
// "gzip, br" and "br;q=0.9, gzip" share one variant.
func normalizedFieldValue(name string, h *fasthttp.RequestHeader) string {
	if name == "accept-encoding" {
		return normalizedAcceptEncoding(h)
	}
	var parts []string
	for k, v := range h.All() {
		if !strings.EqualFold(string(k), name) {
			continue
		}
		for _, p := range strings.Split(string(v), ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
	}
	return strings.Join(parts, ",")
}

func normalizedAcceptEncoding(h *fasthttp.RequestHeader) string {
	v := h.Peek("Accept-Encoding")
	if len(v) == 0 {
		return ""
	}
	var codings []string
	for _, p := range strings.Split(string(v), ",") {
		name, params, _ := strings.Cut(p, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(strings.TrimSpace(params), " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f <= 0 {
				continue
			}
		}
		if !slices.Contains(codings, name) {
			codings = append(codings, name)
		}
	}
	slices.Sort(codings)
	return strings.Join(codings, ",")
}

// sameVariant reports whether a fill another request started (for the
// same lookup key) is the variant x wants.
func (s *Server) sameVariant(x *exchange, res *fetchResult) bool {
	if res.key == x.key {
		return true
	}
	if len(res.vary) == 0 {
		return res.key == x.primary
	}
	return variantKey(x.primary, res.vary, &x.ctx.Request.Header) == res.key
}

// requestOnlyIfCached reports a request Cache-Control: only-if-cached.
func requestOnlyIfCached(v []byte) bool {
	for len(v) > 0 {
		var d []byte
		d, v = nextDirective(v)
		if equalFoldASCII(trimOWS(d), "only-if-cached") {
			return true
		}
	}
	return false
}

// serveStored answers x from a stored version (complete, or being filled
// when following is true). It returns errRetry, before writing anything,
// when the version is gone.
func (s *Server) serveStored(x *exchange, obj storedObj, following bool) error {
	ctx := x.ctx
	m, info := obj.meta, &obj.info
	size := info.Size // -1 while a fill of unknown length runs
	status := m.Status
	rh := &ctx.Response.Header

	if status == fasthttp.StatusOK {
		switch pre := evalPreconditions(&x.req, m); pre {
		case fasthttp.StatusNotModified, fasthttp.StatusPreconditionFailed:
			ctx.SetStatusCode(pre)
			fields := m.notModHdr
			if pre == fasthttp.StatusPreconditionFailed {
				fields = nil
			}
			for _, f := range fields {
				rh.AddBytesKV(f.k, f.v)
			}
			x.setAge(m)
			x.setCommonHeaders()
			return nil
		}
	}

	off, n := int64(0), size
	if status == fasthttp.StatusOK && size >= 0 && !x.head {
		if r := x.req.rng; len(r) > 0 && ifRangeHolds(x.req.ifRange, m) {
			switch res, start, end := parseRange(r, size); res {
			case rangeOK:
				status, off, n = fasthttp.StatusPartialContent, start, end-start
			case rangeUnsatisfiable:
				ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
				rh.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
				x.setStoredHeaders(m)
				rh.Del("Content-Type")
				rh.Del("Content-Encoding")
				x.setAge(m)
				x.setCommonHeaders()
				return nil
			}
		}
	}

	// A body all in the memory tier is written from memory. On an event
	// loop nothing else is (it would wait for the disk: serveInline);
	// otherwise a long range on disk is sent with sendfile. A range within
	// one chunk is read here if it is in memory (most hits: one lookup).
	var raw []byte
	cb := int64(info.ChunkBytes)
	singleChunk := info.Complete && n > 0 && cb > 0 && off/cb == (off+n-1)/cb && !x.hasSess
	if !x.head && singleChunk {
		if chunk, ok := s.store.ResidentChunk(info.ID, info.Version, int(off/cb)); ok {
			lo := off - (off/cb)*cb
			raw = chunk[lo : lo+n]
		}
	}
	resident := true
	if raw == nil && !x.head && n != 0 && (x.noBlock || (n >= sendfileMinBytes && info.Complete)) {
		resident = size >= 0 && s.store.Resident(info.ID, info.Version, off, n)
	}
	if x.noBlock && !resident {
		x.wait()
		return errRetry
	}
	// Get the body first: if the version vanished, nothing is written yet.
	var (
		reader cache.Reader
		file   *fileBody
	)
	if !x.head && n >= sendfileMinBytes && info.Complete && !resident {
		if rc := rawConn(x.ctx.Conn()); rc != nil {
			f, err := s.store.OpenFile(s.baseCtx, info.ID, info.Version, off, n)
			switch {
			case err == nil:
				file = fileBodyPool.Get().(*fileBody)
				*file = fileBody{x: x, f: f, rc: rc}
			case errors.Is(err, cache.ErrNotFound), errors.Is(err, cache.ErrCorrupt):
				return errRetry
			case !errors.Is(err, cache.ErrNotOnDisk):
				// Out of descriptors and the like: serve from memory below.
				s.log.Warn("edge: opening stored object for sendfile", "key", info.Key, "error", err)
			}
		}
	}
	if !x.head && n != 0 && file == nil && raw == nil {
		if singleChunk {
			chunk, err := s.store.ReadChunk(s.baseCtx, info.ID, info.Version, int(off/cb))
			if err != nil {
				return s.storeReadError(info, err)
			}
			lo := off - (off/cb)*cb
			raw = chunk[lo : lo+n]
		} else {
			r, err := s.store.NewReader(s.baseCtx, info.ID, info.Version, off, n)
			if err != nil {
				return s.storeReadError(info, err)
			}
			reader = r
		}
	}

	m.tmpl.CopyTo(rh) // stored fields, Accept-Ranges and CORS in one copy
	ctx.SetStatusCode(status)
	if status == fasthttp.StatusPartialContent {
		b := append(x.hdrBuf[:0], "bytes "...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, off+n-1, 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, size, 10)
		rh.SetCanonical(hdrContentRange, b)
	}
	x.setAge(m)
	x.hdrBuf = x.cs.appendTo(x.hdrBuf[:0])
	rh.SetCanonical(hdrCacheStatus, x.hdrBuf)
	switch {
	case x.head:
		if n >= 0 {
			rh.SetContentLength(int(n))
		}
	case file != nil:
		x.streaming = true
		// fileBody sends to the socket itself: fasthttp must have written
		// out everything before it, the header included. The cork makes
		// the header wait for the body's first bytes.
		ctx.Response.ImmediateHeaderFlush = true
		file.corked = setCork(file.rc, true)
		ctx.SetBodyStream(file, int(n))
	case reader != nil:
		bs := bodyStreamPool.Get().(*bodyStream)
		*bs = bodyStream{x: x, r: reader}
		x.streaming = true
		if following {
			// Headers now: the body arrives at the origin's pace.
			ctx.Response.ImmediateHeaderFlush = true
		}
		ctx.SetBodyStream(bs, int(n))
	default:
		ctx.Response.SetBodyRaw(raw)
	}
	return nil
}

// detailRangeAhead is the Cache-Status detail of a Range request forwarded
// because it starts far ahead of the fill in flight.
const detailRangeAhead = "range-ahead-of-fill"

// Forwarding a Range that starts far ahead of a fill in flight (a seek
// into a large object being filled) rather than waiting for the fill:
const (
	// rangeAheadHorizon: a range the fill would reach within this time,
	// at the rate it has shown, is served from the fill: a short wait for
	// bytes already on their way beats one more origin request (collapsing
	// is what the cache is for). Beyond it, the origin answers the range
	// in one round trip, where a seek would stall for as long as the fill
	// takes to get there (7 s for 60 MB at 8 MiB/s in QA's case).
	rangeAheadHorizon = time.Second
	// rangeAheadWarmup: until the fill has run this long its rate means
	// little (its first bytes arrive in a burst with the headers, or not
	// yet), so rangeAheadColdChunks decides instead.
	rangeAheadWarmup = 100 * time.Millisecond
	// rangeAheadColdChunks: during the warmup, a range starting more than
	// this many chunks ahead of the fill is forwarded: 2 MiB at the
	// default 256 KiB chunks, what a fill at 16 Mbit/s writes in
	// rangeAheadHorizon. Forwarding when the fill turns out to be faster
	// costs the origin the range's bytes a second time (the rest of the
	// object for an open-ended bytes=N- read to its end); waiting when it
	// is slower stalls the client, so the guess is a modest rate.
	rangeAheadColdChunks = 8
	// rangeAheadMinChunks: a range starting within this many chunks of
	// the fill's progress is always served from the fill. Origins send in
	// bursts (a paced origin writes every few tens of ms, TCP delivers
	// windows), and on a busy machine the fill's goroutine may not have
	// run yet: a fill that looks stalled for a moment usually is not, and
	// a range next to its progress is what collapsing is for.
	rangeAheadMinChunks = 1
)

// rangeAheadOfFill reports whether x asks for a range of obj, the version
// fill is writing, that starts so far ahead of what the fill has written
// that the fill would take more than rangeAheadHorizon to reach it. Only a
// satisfiable single range of a 200 of known size counts, one that
// serveStored would answer 206 (not HEAD, not a full-object request, not
// one its conditionals answer from the stored metadata).
func (x *exchange) rangeAheadOfFill(fill *cache.Fill, obj *storedObj) bool {
	m, info := obj.meta, &obj.info
	if x.head || len(x.req.rng) == 0 || fill == nil || m.Status != fasthttp.StatusOK || info.Size < 0 {
		return false
	}
	res, start, _ := parseRange(x.req.rng, info.Size)
	if res != rangeOK || !ifRangeHolds(x.req.ifRange, m) || evalPreconditions(&x.req, m) != 0 {
		return false
	}
	written := fill.Written()
	aheadBytes := start - written
	if aheadBytes <= rangeAheadMinChunks*int64(info.ChunkBytes) {
		return false
	}
	elapsed := time.Since(info.StoredAt) // StoredAt: when the fill began, after the origin's headers
	if elapsed < rangeAheadWarmup {
		return aheadBytes > rangeAheadColdChunks*int64(info.ChunkBytes)
	}
	// aheadBytes / (written / elapsed) > horizon, without dividing by a
	// rate that may be zero (a fill that has written nothing is stalled:
	// every range ahead of it is far).
	return float64(aheadBytes)*float64(elapsed) > float64(written)*float64(rangeAheadHorizon)
}

// serveRangeAhead forwards x's Range, found far ahead of the fill of m's
// version. Unless the client sent its own If-Range, the request carries
// m's strong ETag as If-Range: should the origin have a newer version by
// now, it answers 200 with all of it rather than a part of the new
// version that the client would join to parts of the old one (a seek
// back then reads from the fill).
func (s *Server) serveRangeAhead(x *exchange, fwd string, m *objMeta) {
	ifRange := ""
	if len(x.req.ifRange) == 0 && m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		ifRange = m.ETag
	}
	s.servePassIfRange(x, fwd, detailRangeAhead, ifRange)
}

// storeReadError turns a failed read of a looked-up version into errRetry
// (gone or corrupt: look again, refetch) or logs an unexpected error.
func (s *Server) storeReadError(info *cache.ObjectInfo, err error) error {
	if !errors.Is(err, cache.ErrNotFound) && !errors.Is(err, cache.ErrCorrupt) && !errors.Is(err, cache.ErrFillFailed) {
		s.log.Warn("edge: reading stored object", "key", info.Key, "error", err)
	}
	return errRetry
}

var hdrContentRange = []byte("Content-Range")

func (x *exchange) setStoredHeaders(m *objMeta) {
	rh := &x.ctx.Response.Header
	// The stored names are canonical already: skip fasthttp's
	// normalization (the response header is reset for the next request).
	rh.DisableNormalizing()
	for i := range m.hdr {
		rh.AddBytesKV(m.hdr[i].k, m.hdr[i].v)
	}
}

func (x *exchange) setAge(m *objMeta) {
	age := int64(m.currentAge(x.now) / time.Second)
	b := strconv.AppendInt(x.hdrBuf[:0], age, 10)
	x.ctx.Response.Header.SetCanonical(hdrAge, b)
}

// bodyStream writes a stored range to the client: chunk slices straight
// from the store (io.WriterTo, no copy), then ends the exchange in Close
// with the bytes actually written. Pooled.
type bodyStream struct {
	x       *exchange
	r       cache.Reader
	written int64
}

var bodyStreamPool = sync.Pool{New: func() any { return new(bodyStream) }}

func (b *bodyStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		p, err := b.r.NextChunk()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		m, err := w.Write(p)
		n += int64(m)
		b.written += int64(m)
		if err != nil {
			return n, err
		}
	}
}

func (b *bodyStream) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.written += int64(n)
	return n, err
}

func (b *bodyStream) Close() error {
	if b.r == nil {
		return nil
	}
	b.r.Close()
	x, n := b.x, b.written
	*b = bodyStream{}
	bodyStreamPool.Put(b)
	x.finish(n)
	return nil
}

// sendfileMinBytes is the smallest range sent with sendfile(2) from the
// disk tier's data file when its chunks are not all in memory. A range in
// memory is always written from memory: on loopback, measured with
// edge/bench/run.sh, sendfile of page-cache pages cost as much CPU per
// request as writing from memory at 64 KiB and more at 1 MiB (see its
// README); a range on disk only would otherwise be read, hashed and
// promoted to memory on every miss of the memory tier.
const sendfileMinBytes = 32 << 10

// fileBody sends a stored range straight from the disk tier's data file to
// the client's socket with sendfile(2) (cache.File.SendTo), so the body is
// never copied through the process; the chunks were verified by OpenFile.
// It ends the exchange in Close with the bytes actually sent. Pooled.
//
// It relies on fasthttp writing a fixed-size body stream with WriteTo
// right after flushing the response header (Response.ImmediateHeaderFlush):
// the connection's write buffer is then empty, so bytes sent to the socket
// directly follow the header in order. The connection's write deadline
// applies to the send. The socket is corked (setCork) from before the
// header is written until the body is sent.
type fileBody struct {
	x       *exchange
	f       *cache.File
	rc      syscall.RawConn // the client's socket
	corked  bool
	written int64
}

var fileBodyPool = sync.Pool{New: func() any { return new(fileBody) }}

// rawConn returns the socket under a client connection, or nil when there
// is none to sendfile to (TLS, in-memory connections in tests).
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
	n, err := b.f.SendTo(b.rc)
	b.written += n
	b.uncork()
	if !errors.Is(err, errors.ErrUnsupported) {
		return n, err
	}
	// No sendfile here: copy through fasthttp's writer.
	buf := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(buf)
	m, err := io.CopyBuffer(w, readerOnly{b}, *buf)
	return n + m, err
}

func (b *fileBody) uncork() {
	if b.corked {
		setCork(b.rc, false)
		b.corked = false
	}
}

func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.f.Read(p)
	b.written += int64(n)
	return n, err
}

func (b *fileBody) Close() error {
	if b.f == nil {
		return nil
	}
	b.uncork() // not written (HEAD, an error before the body): do not hold the next response
	b.f.Close()
	x, n := b.x, b.written
	*b = fileBody{}
	fileBodyPool.Put(b)
	x.finish(n)
	return nil
}

// readerOnly hides a WriterTo from io.Copy.
type readerOnly struct{ io.Reader }

// evalPreconditions evaluates the client's conditional headers against a
// stored 200 (RFC 9110 sec. 13.2.2): 304, 412, or 0 to serve normally.
func evalPreconditions(h *reqFields, m *objMeta) int {
	if v := h.ifMatch; len(v) > 0 {
		if !etagListMatches(v, m.ETag, true) {
			return fasthttp.StatusPreconditionFailed
		}
	} else if v := h.ifUnmodifiedSince; len(v) > 0 && !m.lastModTime.IsZero() {
		if t, err := http.ParseTime(string(v)); err == nil && m.lastModTime.After(t) {
			return fasthttp.StatusPreconditionFailed
		}
	}
	if v := h.ifNoneMatch; len(v) > 0 {
		if etagListMatches(v, m.ETag, false) {
			return fasthttp.StatusNotModified
		}
		return 0
	}
	if v := h.ifModifiedSince; len(v) > 0 && !m.lastModTime.IsZero() {
		if t, err := http.ParseTime(string(v)); err == nil && !m.lastModTime.After(t) {
			return fasthttp.StatusNotModified
		}
	}
	return 0
}

// ifRangeHolds reports whether Range applies (RFC 9110 sec. 13.1.5): no
// If-Range, or one that matches the stored validator strongly.
func ifRangeHolds(ifRange []byte, m *objMeta) bool {
	v := trimOWS(ifRange)
	if len(v) == 0 {
		return true
	}
	if v[0] == '"' || (len(v) > 2 && v[0] == 'W' && v[1] == '/') {
		return m.ETag != "" && !isWeak(m.ETag) && string(v) == m.ETag
	}
	if m.lastModTime.IsZero() {
		return false
	}
	t, err := http.ParseTime(string(v))
	return err == nil && t.Equal(m.lastModTime)
}

func isWeak(etag string) bool { return strings.HasPrefix(etag, "W/") }

// etagListMatches compares a stored ETag with an If-Match / If-None-Match
// list ("*" or entity-tags), strongly or weakly.
func etagListMatches(list []byte, etag string, strong bool) bool {
	if etag == "" {
		return false
	}
	l := trimOWS(list)
	if len(l) == 1 && l[0] == '*' {
		return true
	}
	if strong && isWeak(etag) {
		return false
	}
	opaque := strings.TrimPrefix(etag, "W/")
	for len(l) > 0 {
		var t []byte
		t, l = nextDirective(l)
		t = trimOWS(t)
		weak := len(t) > 2 && t[0] == 'W' && t[1] == '/'
		if weak {
			if strong {
				continue
			}
			t = t[2:]
		}
		if string(t) == opaque {
			return true
		}
	}
	return false
}
