package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/peerassist/manifest"
)

// ManifestPath serves the peer-assist manifest of an object:
// GET /pa/v1/manifest?url=<path and query on this edge, or an absolute
// http(s) URL whose host is a configured site>. The manifest lists the
// SHA-256 of every chunk as the cache stored it, so it always matches the
// bytes the edge serves for that version; its ETag names the version. An
// object not in the cache is filled first (collapsed with other requests
// for it) and the manifest returned when the fill completes.
const ManifestPath = "/pa/v1/manifest"

// manifestError is the JSON body of a manifest request that failed.
type manifestError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// serveManifest answers ManifestPath; x is the manifest request's exchange,
// repointed at the object.
func (s *Server) serveManifest(x *exchange) {
	ctx := x.ctx
	x.cs = cacheStatus{fwd: "bypass", label: labelNone}
	x.setCommonHeaders()
	ctx.Response.Header.SetBytesKV(hdrAge, hdrAgeZero)
	if ctx.IsOptions() {
		x.preflight("GET, HEAD, OPTIONS")
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD, OPTIONS")
		manifestFail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	raw := ctx.QueryArgs().Peek("url")
	if len(raw) == 0 {
		manifestFail(ctx, fasthttp.StatusBadRequest, "missing url parameter (the object's path and query, or its absolute URL)")
		return
	}
	host, target, err := splitObjectURL(string(raw), ctx.Request.Header.Host())
	if err != nil {
		manifestFail(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	x.host = host
	if err := x.tgt.parse(target); err != nil {
		manifestFail(ctx, fasthttp.StatusBadRequest, "url: "+err.Error())
		return
	}
	x.tbl = s.tbl.Load()
	site, hostKnown := x.tbl.route(host, x.tgt.path())
	switch {
	case !hostKnown:
		manifestFail(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no site is configured for host %q", host))
		return
	case site == nil:
		manifestFail(ctx, fasthttp.StatusNotFound, "no site serves this path")
		return
	}
	x.site = site
	obj, status, msg := s.completeObject(x)
	if status != 0 {
		manifestFail(ctx, status, msg)
		return
	}
	if obj.meta.Status != fasthttp.StatusOK {
		st := fasthttp.StatusBadGateway
		if obj.meta.Status == fasthttp.StatusNotFound || obj.meta.Status == fasthttp.StatusGone {
			st = fasthttp.StatusNotFound
		}
		manifestFail(ctx, st, fmt.Sprintf("the origin answered %d for this object", obj.meta.Status))
		return
	}
	info := &obj.info
	etag := fmt.Sprintf(`"m-%016x-%016x"`, info.ID, info.Version)
	rh := &ctx.Response.Header
	rh.Set("ETag", etag)
	if left := obj.meta.remainingFreshness(x.now); left > 0 {
		rh.Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(left/time.Second), 10))
	} else {
		rh.Set("Cache-Control", "no-cache")
	}
	if etagListMatches(x.req.ifNoneMatch, etag, false) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	m := manifest.New(string(raw), info.ID, obj.meta.ETag, info.Size, info.ChunkBytes, info.ChunkSHA256)
	body, err := json.Marshal(m)
	if err != nil {
		manifestFail(ctx, fasthttp.StatusInternalServerError, "encoding manifest: "+err.Error())
		return
	}
	rh.SetContentType("application/json")
	ctx.SetBody(body)
}

// splitObjectURL returns the host and origin-form target of a manifest's
// url parameter: a path (on the requested host) or an absolute http(s) URL.
func splitObjectURL(raw string, reqHost []byte) (host, target []byte, err error) {
	if raw[0] == '/' {
		if len(raw) > 1 && raw[1] == '/' {
			return nil, nil, errors.New("url: a scheme-relative URL is not accepted; give a path or an absolute URL")
		}
		return reqHost, []byte(raw), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, nil, fmt.Errorf("url %q: want a path starting with / or an absolute http(s) URL", raw)
	}
	return []byte(u.Host), []byte(u.RequestURI()), nil
}

// completeObject returns the complete, usable stored version of x's
// object, filling it first if needed. On failure it returns the HTTP status
// and message to answer.
//
// It looks again (at most maxCacheAttempts times) only when the object
// changed under it: purged during its fill, or a collapsed fill that turned
// out to be another variant. A fill that fails is answered with its failure
// (the origin's fault, or the object too large), not fetched again: GET
// clients of that fill were cut, and a manifest request must not multiply
// the origin's load.
func (s *Server) completeObject(x *exchange) (storedObj, int, string) {
	x.primary = x.primaryKey()
	for attempt := 0; attempt < maxCacheAttempts; attempt++ {
		obj, fill, found, _ := s.lookup(x)
		var stale *storedObj
		if found {
			switch obj.meta.freshnessAt(x.now) {
			case fresh:
				return obj, 0, ""
			case staleWhileRevalidate:
				s.revalidateInBackground(x, obj)
				return obj, 0, ""
			}
			stale = &obj
		} else if fill != nil {
			if _, ok := s.fillingObj(fill); ok {
				done, err := s.awaitFill(fill, x.key)
				if err == nil {
					return done, 0, ""
				}
				if errors.Is(err, errRetry) {
					continue
				}
				status, msg := fillFailure(err)
				return storedObj{}, status, msg
			}
		}
		res, leader := s.fetchCollapsed(x, stale)
		if res.resp != nil {
			releaseResponse(res.resp)
		}
		switch res.kind {
		case resFill:
			if !leader && !s.sameVariant(x, &res) {
				continue
			}
			done, err := s.awaitFill(res.fill, res.key)
			switch {
			case err == nil:
				return done, 0, ""
			case errors.Is(err, errRetry):
				continue
			case stale != nil && stale.meta.staleIfErrorOK(x.now):
				return *stale, 0, ""
			}
			status, msg := fillFailure(err)
			return storedObj{}, status, msg
		case resRevalidated:
			return storedObj{res.info, res.meta}, 0, ""
		case resPass:
			return storedObj{}, fasthttp.StatusUnprocessableEntity,
				fmt.Sprintf("the object is not cacheable at this edge (%s, origin status %d): no manifest", res.reason, res.status)
		case resError:
			if stale != nil && stale.meta.staleIfErrorOK(x.now) {
				return *stale, 0, ""
			}
			switch {
			case res.err != nil && isTimeout(res.err):
				return storedObj{}, fasthttp.StatusGatewayTimeout, "origin timed out"
			case res.status != 0:
				return storedObj{}, fasthttp.StatusBadGateway, fmt.Sprintf("origin answered %d", res.status)
			default:
				return storedObj{}, fasthttp.StatusBadGateway, "origin unreachable or sent a bad response"
			}
		}
	}
	return storedObj{}, fasthttp.StatusServiceUnavailable, "the object kept changing while being filled; retry"
}

// awaitFill waits until fill (of key) ends and returns the version to
// describe: the one stored for key now if it is the fill's or a newer one
// (what the edge serves), else the version the fill committed (evicted or
// purged since its commit: its digests are still those of what the origin
// sent). It returns errRetry when the fill was purged before it was
// published or its metadata cannot be read, and otherwise the fill's
// failure (cache.ErrFillFailed) or the context's error at shutdown.
func (s *Server) awaitFill(fill *cache.Fill, key string) (storedObj, error) {
	// A reader could reach the last byte before the commit publishes the
	// version and its digests: wait for the commit itself.
	info, err := fill.Wait(s.baseCtx)
	switch {
	case errors.Is(err, cache.ErrPurged):
		return storedObj{}, errRetry
	case err != nil:
		return storedObj{}, err
	}
	if cur, err := s.store.Lookup(key); err == nil && cur.Version >= info.Version {
		info = cur
	}
	m := s.metaOf(&info)
	if m == nil {
		return storedObj{}, errRetry
	}
	return storedObj{info, m}, nil
}

// fillFailure is the status and message of a manifest whose fill did not
// complete (awaitFill's error).
func fillFailure(err error) (int, string) {
	switch {
	case errors.Is(err, cache.ErrTooLarge):
		return fasthttp.StatusUnprocessableEntity, "the object is too large to cache at this edge: no manifest"
	case errors.Is(err, context.Canceled), errors.Is(err, cache.ErrClosed):
		return fasthttp.StatusServiceUnavailable, "the edge is shutting down; retry with another edge or later"
	case isTimeout(err):
		return fasthttp.StatusGatewayTimeout, "origin timed out while the edge was storing the object"
	}
	return fasthttp.StatusBadGateway, "the origin's response failed while the edge was storing the object"
}

func manifestFail(ctx *fasthttp.RequestCtx, status int, msg string) {
	body, _ := json.Marshal(manifestError{Error: msg, Status: status})
	ctx.SetStatusCode(status)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(append(body, '\n'))
}
