package demo

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"
)

// BaseLastModified is the Last-Modified of every /bytes object at the
// default version: fixed, so that validators survive restarts.
var BaseLastModified = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// bytesCacheControl is what /bytes objects say about caching.
const bytesCacheControl = "public, max-age=3600"

// smallBodyBytes: bodies up to this size are generated into the response
// buffer; larger ones are streamed.
const smallBodyBytes = 64 << 10

// Options configure New. The zero value is a healthy origin.
type Options struct {
	// Faults are the initial process-wide faults (see SetFaults).
	Faults Faults
	// Logger receives one line per bad request at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Origin is the demo origin: a fasthttp handler with per-path request
// counters and settable faults. Create it with New; it is safe for
// concurrent use.
type Origin struct {
	faults atomic.Pointer[Faults]
	log    *slog.Logger
	vod    map[string]*vodFile

	mu    sync.RWMutex
	hits  map[string]*atomic.Int64
	total atomic.Int64
}

// New returns a demo origin. It panics if opts.Faults is invalid (see
// Faults.Validate): callers holding untrusted values validate them first.
func New(opts Options) *Origin {
	if err := opts.Faults.Validate(); err != nil {
		panic("demo.New: " + err.Error())
	}
	o := &Origin{
		log:  opts.Logger,
		vod:  loadVOD(),
		hits: map[string]*atomic.Int64{},
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	f := opts.Faults
	o.faults.Store(&f)
	return o
}

// SetFaults replaces the process-wide faults; requests already past their
// header phase keep the faults they started with.
func (o *Origin) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("demo: invalid faults: %w", err)
	}
	o.faults.Store(&f)
	return nil
}

// Faults returns the current process-wide faults.
func (o *Origin) Faults() Faults { return *o.faults.Load() }

// Hits returns how many requests the origin has received for path (the
// URL path without query string), whatever their outcome.
func (o *Origin) Hits(path string) int64 {
	o.mu.RLock()
	c := o.hits[path]
	o.mu.RUnlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// TotalHits returns how many requests the origin has received.
func (o *Origin) TotalHits() int64 { return o.total.Load() }

// ResetHits sets every counter back to zero.
func (o *Origin) ResetHits() {
	o.mu.Lock()
	clear(o.hits)
	o.mu.Unlock()
	o.total.Store(0)
}

func (o *Origin) count(path []byte) {
	o.total.Add(1)
	o.mu.RLock()
	c := o.hits[string(path)]
	o.mu.RUnlock()
	if c == nil {
		o.mu.Lock()
		if c = o.hits[string(path)]; c == nil {
			c = new(atomic.Int64)
			o.hits[string(path)] = c
		}
		o.mu.Unlock()
	}
	c.Add(1)
}

// Handler serves the demo origin's routes (see the package documentation).
func (o *Origin) Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	o.count(path)
	p := string(path)
	switch {
	case p == "/healthz":
		o.serveHealth(ctx)
	case strings.HasPrefix(p, "/bytes/"):
		o.serveBytes(ctx, p[len("/bytes/"):])
	case strings.HasPrefix(p, vodPrefix):
		o.serveVOD(ctx, p)
	case p == "/":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(usage)
	default:
		o.fail(ctx, fasthttp.StatusNotFound, "no such path %q (try /bytes/{n}, /vod/sample/master.m3u8 or /healthz)", p)
	}
}

const usage = `edgebox demo origin
  GET /bytes/{n}                 n deterministic bytes (Range, conditionals)
  GET /vod/sample/master.m3u8    sample HLS VOD (fMP4, H.264/AAC, 2 renditions)
  GET /healthz                   200 unless a fault is set
Query knobs: status= delay= rate= break_after= version= cache_control=
  expires= etag= last_modified= vary= content_type=
`

// fail answers a request with status and a one-line text message.
func (o *Origin) fail(ctx *fasthttp.RequestCtx, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.log.Debug("demo origin: bad request", "path", string(ctx.Path()), "status", status, "reason", msg)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(status)
	ctx.SetBodyString(msg + "\n")
}

func (o *Origin) serveHealth(ctx *fasthttp.RequestCtx) {
	k, err := parseKnobs(ctx.QueryArgs(), o.Faults(), time.Now())
	if err != nil {
		o.fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return
	}
	if !o.delay(ctx, k.Delay) {
		return
	}
	if k.Status != 0 && k.Status != fasthttp.StatusOK {
		o.forced(ctx, k)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

// delay waits d before the headers, or until the server shuts down; it
// reports false if the server shut down.
func (o *Origin) delay(ctx *fasthttp.RequestCtx, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		ctx.SetConnectionClose()
		ctx.Error("server shutting down", fasthttp.StatusServiceUnavailable)
		return false
	}
}

// forced answers with the forced status k.Status and a short text body,
// with the header overrides applied (so a test can make errors cacheable).
func (o *Origin) forced(ctx *fasthttp.RequestCtx, k knobs) {
	ctx.SetStatusCode(k.Status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	if k.Status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	applyHeaders(&ctx.Response.Header, k.headers)
	if k.Status == fasthttp.StatusNoContent || k.Status == fasthttp.StatusNotModified {
		return
	}
	ctx.SetBodyString(fmt.Sprintf("demo origin: forced status %d\n", k.Status))
}

func applyHeaders(h *fasthttp.ResponseHeader, headers [][2]string) {
	for _, kv := range headers {
		if kv[1] == "" {
			h.Del(kv[0])
		} else {
			h.Set(kv[0], kv[1])
		}
	}
}

// versionLastModified is the Last-Modified of a version: the base time for
// "", base + v hours for a number v, otherwise a time derived from a hash,
// so that a new version normally looks newer and If-Modified-Since
// revalidation sees the change.
func versionLastModified(version string) time.Time {
	if version == "" {
		return BaseLastModified
	}
	if v, err := strconv.ParseUint(version, 10, 32); err == nil {
		return BaseLastModified.Add(time.Duration(v) * time.Hour)
	}
	return BaseLastModified.Add(time.Duration(1+xxhash.Sum64String(version)%(365*24*3600)) * time.Second)
}

// entity is what serveEntity needs to know about a body.
type entity struct {
	src          bodySource
	size         int64
	etag         string
	lastModified time.Time
	contentType  string
	cacheControl string
}

func (o *Origin) serveBytes(ctx *fasthttp.RequestCtx, sizeText string) {
	k, ok := o.knobsOrFail(ctx)
	if !ok {
		return
	}
	n, err := ParseSize(sizeText)
	if err != nil {
		o.fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return
	}
	c := NewContent(n, k.Version)
	o.serveEntity(ctx, k, entity{
		src:          c,
		size:         n,
		etag:         c.ETag(),
		lastModified: versionLastModified(k.Version),
		contentType:  "application/octet-stream",
		cacheControl: bytesCacheControl,
	})
}

// knobsOrFail parses the request's knobs, and answers the request itself
// (false) when they are bad, when the method is not GET or HEAD, or, for
// other methods, when a status is forced: a failing origin fails every
// method.
func (o *Origin) knobsOrFail(ctx *fasthttp.RequestCtx) (knobs, bool) {
	k, err := parseKnobs(ctx.QueryArgs(), o.Faults(), time.Now())
	if err != nil {
		o.fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return k, false
	}
	if ctx.IsGet() || ctx.IsHead() {
		return k, true
	}
	if k.Status != 0 && k.Status != fasthttp.StatusOK {
		if o.delay(ctx, k.Delay) {
			o.forced(ctx, k)
		}
		return k, false
	}
	ctx.Response.Header.Set("Allow", "GET, HEAD")
	o.fail(ctx, fasthttp.StatusMethodNotAllowed, "method %s not allowed: use GET or HEAD", ctx.Method())
	return k, false
}

// serveEntity answers a GET or HEAD of e with the knobs k applied:
// delay, forced status, conditionals (RFC 9110 section 13.2.2), Range and
// the body faults.
func (o *Origin) serveEntity(ctx *fasthttp.RequestCtx, k knobs, e entity) {
	if !o.delay(ctx, k.Delay) {
		return
	}
	if k.Status != 0 && k.Status != fasthttp.StatusOK {
		o.forced(ctx, k)
		return
	}
	etag, lm := e.etag, e.lastModified.UTC().Truncate(time.Second)
	if k.etag != "" {
		etag = k.etag
	}
	if k.hasLM {
		lm = k.lastModified.UTC().Truncate(time.Second)
	}
	h := &ctx.Response.Header
	h.SetContentType(e.contentType)
	h.Set("Cache-Control", e.cacheControl)
	h.Set("ETag", etag)
	h.Set("Last-Modified", lm.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	applyHeaders(h, k.headers)
	// An override may have removed the validators: conditionals then
	// compare with nothing.
	if len(h.Peek("ETag")) == 0 {
		etag = ""
	}
	if len(h.Peek("Last-Modified")) == 0 {
		lm = time.Time{}
	}

	req := &ctx.Request.Header
	if status := evalPreconditions(req, etag, lm); status != 0 {
		if status == fasthttp.StatusPreconditionFailed {
			h.Del("Content-Type")
			o.fail(ctx, status, "precondition failed")
			return
		}
		ctx.SetStatusCode(status) // 304: headers only
		h.Del("Content-Type")
		return
	}

	start, length := int64(0), e.size
	if rh := req.Peek("Range"); len(rh) > 0 && ifRangeHolds(req, etag, lm) {
		r, res := parseRange(string(rh), e.size)
		switch res {
		case rangeUnsatisfiable:
			// The error is about this request only: nothing to cache.
			h.Del("Cache-Control")
			h.Del("Expires")
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(e.size, 10))
			h.SetContentType("text/plain; charset=utf-8")
			ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			ctx.SetBodyString(fmt.Sprintf("range %q not satisfiable for %d bytes\n", rh, e.size))
			return
		case rangeSingle:
			start, length = r.start, r.length()
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", r.start, r.end-1, e.size))
		}
	}
	o.writeBody(ctx, k, e.src, start, length)
}

// writeBody sends length bytes of src from start, applying the rate and
// break faults. HEAD gets the Content-Length only.
func (o *Origin) writeBody(ctx *fasthttp.RequestCtx, k knobs, src bodySource, start, length int64) {
	if ctx.IsHead() {
		ctx.Response.Header.SetContentLength(int(length))
		ctx.Response.SkipBody = true
		return
	}
	if k.breakAfter >= 0 && k.breakAfter < length {
		o.hijackBreak(ctx, k, src, start, length)
		return
	}
	if k.RateBps == 0 && length <= smallBodyBytes {
		if b, ok := src.(bytesSource); ok {
			ctx.Response.SetBodyRaw(b[start : start+length])
			return
		}
		body := ctx.Response.SwapBody(nil)
		if int64(cap(body)) < length {
			body = make([]byte, length)
		}
		body = body[:length]
		src.Fill(start, body)
		ctx.Response.SwapBody(body)
		return
	}
	body := bodyStream{src: src, off: start, remaining: length, rateBps: k.RateBps, done: ctx.Done()}
	if k.RateBps == 0 {
		ctx.Response.SetBodyStream(&fastStream{body}, int(length))
		return
	}
	// A throttled origin sends its headers at once and then trickles.
	ctx.Response.ImmediateHeaderFlush = true
	ctx.Response.SetBodyStream(&body, int(length))
}

// evalPreconditions applies If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since in the order of RFC 9110 section 13.2.2 and returns 412,
// 304 or 0 (proceed).
func evalPreconditions(req *fasthttp.RequestHeader, etag string, lm time.Time) int {
	if im := req.Peek("If-Match"); len(im) > 0 {
		if !etagListMatch(string(im), etag, true) {
			return fasthttp.StatusPreconditionFailed
		}
	} else if ius := req.Peek("If-Unmodified-Since"); len(ius) > 0 && !lm.IsZero() {
		if t, err := http.ParseTime(string(ius)); err == nil && lm.After(t) {
			return fasthttp.StatusPreconditionFailed
		}
	}
	if inm := req.Peek("If-None-Match"); len(inm) > 0 {
		if etagListMatch(string(inm), etag, false) {
			return fasthttp.StatusNotModified
		}
	} else if ims := req.Peek("If-Modified-Since"); len(ims) > 0 && !lm.IsZero() {
		if t, err := http.ParseTime(string(ims)); err == nil && !lm.After(t) {
			return fasthttp.StatusNotModified
		}
	}
	return 0
}

// ifRangeHolds reports whether a Range header should be honoured given
// If-Range: absent, a strongly matching ETag, or exactly the Last-Modified
// date (RFC 9110 section 13.1.5).
func ifRangeHolds(req *fasthttp.RequestHeader, etag string, lm time.Time) bool {
	ir := strings.TrimSpace(string(req.Peek("If-Range")))
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return etag != "" && !strings.HasPrefix(etag, "W/") && ir == etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && !lm.IsZero() && t.Equal(lm)
}

// etagListMatch reports whether the If-Match / If-None-Match list matches
// etag, with the strong (If-Match) or weak (If-None-Match) comparison.
func etagListMatch(list, etag string, strong bool) bool {
	if strings.TrimSpace(list) == "*" {
		return etag != ""
	}
	if etag == "" || (strong && strings.HasPrefix(etag, "W/")) {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if strong && strings.HasPrefix(t, "W/") {
			continue
		}
		if strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}
