package edge

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/peerassist/edgebox/edge/cache"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
)

// extraHeaders lets a test origin send headers the demo has no knob for:
// set_cookie=, age=, cache_status=.
func extraHeaders(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		next(ctx)
		args := ctx.QueryArgs()
		if v := args.Peek("set_cookie"); v != nil {
			ctx.Response.Header.Add("Set-Cookie", string(v))
		}
		if v := args.Peek("age"); v != nil {
			ctx.Response.Header.Set("Age", string(v))
		}
	}
}

// TestCacheControlTable: for each origin header set, does the second
// request hit the cache, and how many times did the origin answer?
func TestCacheControlTable(t *testing.T) {
	e := newEnv(t, extraHeaders)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC1123)
	tests := []struct {
		name       string
		query      string
		secondCS   string // prefix of the second response's Cache-Status
		originHits int64
	}{
		{"max-age", "cache_control=max-age=60", "edge; hit", 1},
		{"s-maxage wins over max-age=0", "cache_control=" + url.QueryEscape("max-age=0, s-maxage=60"), "edge; hit", 1},
		{"expires in the future", "cache_control=&expires=60s", "edge; hit", 1},
		{"expires in the past", "cache_control=&expires=" + url.QueryEscape(past), "edge; fwd=stale; fwd-status=304", 2},
		{"invalid expires", "cache_control=&expires=0", "edge; fwd=stale; fwd-status=304", 2},
		{"no-store", "cache_control=no-store", "edge; fwd=bypass; fwd-status=200; detail=no-store", 2},
		{"private", "cache_control=" + url.QueryEscape("private, max-age=60"), "edge; fwd=bypass; fwd-status=200; detail=private", 2},
		{"no-cache revalidates every time", "cache_control=no-cache", "edge; fwd=stale; fwd-status=304", 2},
		{"max-age=0 revalidates", "cache_control=max-age=0", "edge; fwd=stale; fwd-status=304", 2},
		{"must-revalidate fresh", "cache_control=" + url.QueryEscape("max-age=60, must-revalidate"), "edge; hit", 1},
		{"set-cookie not stored", "cache_control=max-age=60&set_cookie=a%3Db", "edge; fwd=bypass; fwd-status=200; detail=set-cookie", 2},
		{"set-cookie public stored", "cache_control=" + url.QueryEscape("public, max-age=60") + "&set_cookie=a%3Db", "edge; hit", 1},
		{"vary star", "cache_control=max-age=60&vary=*", "edge; fwd=bypass; fwd-status=200; detail=vary-star", 2},
		{"age from the origin counts", "cache_control=max-age=100&age=100", "edge; fwd=stale; fwd-status=304", 2},
		{"status 503 not stored", "cache_control=max-age=60&status=503", "edge; fwd=uri-miss; fwd-status=503", 2},
		{"status 302 without freshness", "cache_control=&status=302", "edge; fwd=uri-miss; fwd-status=302", 2},
		{"status 404 explicit", "cache_control=max-age=60&status=404", "edge; hit", 1},
	}
	for i, tt := range tests {
		path := fmt.Sprintf("/bytes/%d", 1000+i)
		target := path + "?" + tt.query
		first := e.getSettled(target)
		second := e.get(target)
		if !strings.HasPrefix(second.get("Cache-Status"), tt.secondCS) {
			t.Errorf("%s: second Cache-Status %q, want prefix %q (first %q)", tt.name, second.get("Cache-Status"), tt.secondCS, first.get("Cache-Status"))
		}
		if got := e.origin.Origin.Hits(path); got != tt.originHits {
			t.Errorf("%s: origin hits %d, want %d", tt.name, got, tt.originHits)
		}
		if first.status != second.status || (first.status == 200 && !bytes.Equal(first.body, second.body)) {
			t.Errorf("%s: first %d / second %d responses differ", tt.name, first.status, second.status)
		}
		if strings.Contains(tt.query, "set_cookie") && strings.Contains(tt.secondCS, "hit") && second.get("Set-Cookie") != "" {
			t.Errorf("%s: a hit replays Set-Cookie %q", tt.name, second.get("Set-Cookie"))
		}
		if tt.name == "age from the origin counts" {
			if age, _ := strconv.Atoi(first.get("Age")); age < 100 {
				t.Errorf("%s: Age %q, want >= 100", tt.name, first.get("Age"))
			}
		}
	}
}

// TestRevalidationNewContent: a stale object whose origin changed is
// replaced by a new fill (fwd-status=200, stored), not a 304.
func TestRevalidationNewContent(t *testing.T) {
	e := newEnv(t, nil)
	target := "/bytes/4000?cache_control=max-age=0"
	first := e.get(target)
	// A response is written as its fill runs: wait for each fill to commit
	// before the next request, which must find its version.
	stored := func() uint64 {
		info, err := e.store.Lookup("demo\x00" + target)
		if err != nil {
			return 0
		}
		return info.Version
	}
	waitFor(t, "the first fill", func() bool { return stored() != 0 })
	firstVersion := stored()
	if err := e.origin.Origin.SetFaults(demo.Faults{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	second := e.get(target)
	if cs := second.get("Cache-Status"); cs != "edge; fwd=stale; fwd-status=200; stored" {
		t.Errorf("after the origin changed: Cache-Status %q", cs)
	}
	want := make([]byte, 4000)
	demo.NewContent(4000, "v2").Fill(0, want)
	if !bytes.Equal(second.body, want) || bytes.Equal(first.body, second.body) || first.get("ETag") == second.get("ETag") {
		t.Errorf("revalidation did not deliver the new version (ETag %s -> %s)", first.get("ETag"), second.get("ETag"))
	}
	// And the next conditional revalidation uses the new validator: 304.
	waitFor(t, "the second fill", func() bool { return stored() != firstVersion })
	third := e.get(target)
	if cs := third.get("Cache-Status"); cs != "edge; fwd=stale; fwd-status=304" || !bytes.Equal(third.body, want) {
		t.Errorf("third request: %q", cs)
	}
}

func TestStaleIfError(t *testing.T) {
	e := newEnv(t, nil)
	target := "/bytes/3000?cache_control=" + url.QueryEscape("max-age=0, stale-if-error=60")
	e.getSettled(target)
	if _, err := e.store.Lookup(e.cacheKey(target)); err != nil {
		t.Fatalf("after getSettled the object is not stored: %v", err)
	}
	want := demoBytes(3000, 0, 3000)

	// The origin answers 503.
	e.origin.Origin.SetFaults(demo.Faults{Status: 503})
	r := e.get(target)
	if r.status != 200 || r.get("Cache-Status") != "edge; fwd=stale; fwd-status=503; detail=stale-if-error" || !bytes.Equal(r.body, want) {
		t.Errorf("origin 503: %d %q", r.status, r.get("Cache-Status"))
	}
	// Without stale-if-error the origin's 503 goes through.
	plain := "/bytes/3001?cache_control=max-age=0"
	e.origin.Origin.SetFaults(demo.Faults{})
	e.getSettled(plain)
	e.origin.Origin.SetFaults(demo.Faults{Status: 503})
	if r := e.get(plain); r.status != 503 || !strings.Contains(r.get("Cache-Status"), "fwd-status=503") {
		t.Errorf("no stale-if-error, origin 503: %d %q", r.status, r.get("Cache-Status"))
	}

	// The origin is gone: connection refused.
	e.origin.Kill()
	r = e.get(target)
	if r.status != 200 || r.get("Cache-Status") != "edge; fwd=stale; detail=stale-if-error" || !bytes.Equal(r.body, want) {
		t.Errorf("origin down: %d %q", r.status, r.get("Cache-Status"))
	}
	if r := e.get(plain); r.status != 502 || r.get("Cache-Status") != "edge; fwd=stale; detail=origin-unreachable" {
		t.Errorf("origin down, no stale-if-error: %d %q", r.status, r.get("Cache-Status"))
	}
	if r := e.get("/bytes/3002"); r.status != 502 || r.get("Cache-Status") != "edge; fwd=uri-miss; detail=origin-unreachable" {
		t.Errorf("origin down, miss: %d %q", r.status, r.get("Cache-Status"))
	}
}

func TestOriginTimeout(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Origin.ResponseTimeout = config.Duration(200 * time.Millisecond)
	})
	r := e.get("/bytes/10?delay=2s")
	if r.status != 504 || r.get("Cache-Status") != "edge; fwd=uri-miss; detail=origin-timeout" {
		t.Errorf("slow origin: %d %q", r.status, r.get("Cache-Status"))
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	e := newEnv(t, nil)
	target := "/bytes/5000?cache_control=" + url.QueryEscape("max-age=0, stale-while-revalidate=60")
	e.getSettled(target)
	r := e.get(target)
	if cs := r.get("Cache-Status"); !strings.HasPrefix(cs, "edge; hit; ttl=") || !strings.HasSuffix(cs, "; detail=stale-while-revalidate") ||
		!bytes.Equal(r.body, demoBytes(5000, 0, 5000)) {
		t.Errorf("stale-while-revalidate: %q", r.get("Cache-Status"))
	}
	waitFor(t, "the background revalidation", func() bool { return e.origin.Origin.Hits("/bytes/5000") == 2 })
	// must-revalidate forbids serving stale.
	mr := "/bytes/5001?cache_control=" + url.QueryEscape("max-age=0, must-revalidate, stale-while-revalidate=60")
	e.getSettled(mr)
	if r := e.get(mr); r.get("Cache-Status") != "edge; fwd=stale; fwd-status=304" {
		t.Errorf("must-revalidate with stale-while-revalidate: %q", r.get("Cache-Status"))
	}
}

func TestNegativeCaching(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 3 {
		r := e.get("/bytes/9?status=404")
		if r.status != 404 {
			t.Fatalf("request %d: status %d, want 404", i, r.status)
		}
		if i > 0 && !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
			t.Errorf("request %d: Cache-Status %q, want a hit (negative caching)", i, r.get("Cache-Status"))
		}
	}
	if got := e.origin.Origin.Hits("/bytes/9"); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}

	off := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Cache.NegativeTTL = 0 })
	off.get("/bytes/9?status=404")
	off.get("/bytes/9?status=404")
	if got := off.origin.Origin.Hits("/bytes/9"); got != 2 {
		t.Errorf("negative_ttl 0: origin hits = %d, want 2", got)
	}
}

func TestVary(t *testing.T) {
	e := newEnv(t, nil)
	target := "/bytes/6000?vary=Accept-Encoding"
	tests := []struct {
		ae string
		cs string
	}{
		{"gzip, br", "edge; fwd=uri-miss; fwd-status=200; stored"},
		{"br,gzip", "edge; hit"},
		{"gzip;q=1.0, br, identity;q=0", "edge; hit"},
		{"", "edge; fwd=vary-miss; fwd-status=200; stored"},
		{"", "edge; hit"},
		{"zstd", "edge; fwd=vary-miss; fwd-status=200; stored"},
	}
	for _, tt := range tests {
		var r *response
		if tt.ae == "" {
			r = e.get(target)
		} else {
			r = e.get(target, "Accept-Encoding", tt.ae)
		}
		if !strings.HasPrefix(r.get("Cache-Status"), tt.cs) {
			t.Errorf("Accept-Encoding %q: Cache-Status %q, want prefix %q", tt.ae, r.get("Cache-Status"), tt.cs)
		}
	}
	if got := e.origin.Origin.Hits("/bytes/6000"); got != 3 {
		t.Errorf("origin hits = %d, want 3 (one per variant)", got)
	}
	// Purging the URL removes every variant.
	res := e.adminDo("POST", "/purge?url="+url.QueryEscape(target))
	if res.status != 200 || !strings.Contains(string(res.body), `"purged": 4`) { // marker + 3 variants
		t.Errorf("purge: %d %s", res.status, res.body)
	}
	if r := e.get(target, "Accept-Encoding", "br"); strings.Contains(r.get("Cache-Status"), "hit") {
		t.Errorf("after purge: %q", r.get("Cache-Status"))
	}
}

func TestMaxObjectPassThrough(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Limits.MaxObjectBytes = 100 << 10 })
	const size = 300_000
	path := fmt.Sprintf("/bytes/%d", size)
	r := e.get(path)
	if r.status != 200 || !bytes.Equal(r.body, demoBytes(size, 0, size)) || r.get("Cache-Status") != "edge; fwd=uri-miss; fwd-status=200; detail=too-large" {
		t.Errorf("large object: %d %q", r.status, r.get("Cache-Status"))
	}
	r = e.get(path, "Range", "bytes=1000-1999")
	if r.status != 206 || !bytes.Equal(r.body, demoBytes(size, 1000, 1000)) || !strings.HasPrefix(r.get("Cache-Status"), "edge; fwd=bypass; fwd-status=206") {
		t.Errorf("large object range (passed with Range): %d %q", r.status, r.get("Cache-Status"))
	}
	if _, err := e.store.Lookup("demo\x00" + path); err == nil {
		t.Errorf("an object over max_object_bytes was stored")
	}
}

func TestAuthorizationPassed(t *testing.T) {
	e := newEnv(t, nil)
	for range 2 {
		r := e.get("/bytes/700", "Authorization", "Bearer x")
		if r.status != 200 || r.get("Cache-Status") != "edge; fwd=request; fwd-status=200; detail=authorization" {
			t.Errorf("with Authorization: %d %q", r.status, r.get("Cache-Status"))
		}
	}
	if got := e.origin.Origin.Hits("/bytes/700"); got != 2 {
		t.Errorf("origin hits = %d, want 2", got)
	}
}

// TestOnlyIfCachedWhileCommitting: a fill whose every byte is written but
// which has not committed yet (its first client may already have the whole
// body) counts as cached for only-if-cached, as it does for a plain GET
// (QA issue 2, D5: 504 right after a completed miss, 19 times in 200).
func TestOnlyIfCachedWhileCommitting(t *testing.T) {
	e := newEnv(t, nil)
	const size = 800
	path := fmt.Sprintf("/bytes/%d?oic=committing", size)
	// The state a miss leaves between its last byte and its commit.
	f := e.startFill(t, path, size, "Cache-Control", "public, max-age=3600")
	if _, err := f.Write(demoBytes(size, 0, size)); err != nil {
		t.Fatal(err)
	}
	r := e.get(path, "Cache-Control", "only-if-cached")
	if r.status != 200 || !bytes.Equal(r.body, demoBytes(size, 0, size)) || !strings.HasPrefix(r.get("Cache-Status"), "edge; hit; ttl=") ||
		!strings.HasSuffix(r.get("Cache-Status"), "; detail=filling") {
		t.Errorf("only-if-cached before the commit: %d, %d bytes, %q; want 200 with the body, a hit while filling", r.status, len(r.body), r.get("Cache-Status"))
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if r := e.get(path, "Cache-Control", "only-if-cached"); r.status != 200 || !strings.HasPrefix(r.get("Cache-Status"), "edge; hit; ttl=") {
		t.Errorf("only-if-cached after the commit: %d %q", r.status, r.get("Cache-Status"))
	}
	if got := e.origin.Origin.Hits(fmt.Sprintf("/bytes/%d", size)); got != 0 {
		t.Errorf("origin hits = %d, want 0", got)
	}

	// As QA ran it: a miss, then at once only-if-cached.
	for i := range 100 {
		p := fmt.Sprintf("/bytes/%d?oic=%d", size, i)
		if r := e.get(p); r.status != 200 {
			t.Fatalf("GET %s: %d", p, r.status)
		}
		if r := e.get(p, "Cache-Control", "only-if-cached"); r.status != 200 {
			t.Errorf("only-if-cached right after the miss of %s: %d %q, want 200", p, r.status, r.get("Cache-Status"))
		}
	}
}

func TestOnlyIfCached(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.get("/bytes/800", "Cache-Control", "only-if-cached"); r.status != 504 {
		t.Errorf("only-if-cached miss: %d, want 504", r.status)
	}
	e.get("/bytes/800")
	if r := e.get("/bytes/800", "Cache-Control", "only-if-cached"); r.status != 200 {
		t.Errorf("only-if-cached hit: %d, want 200", r.status)
	}
	if r := e.get("/bytes/800", "Cache-Control", "no-cache", "Pragma", "no-cache"); !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
		t.Errorf("client no-cache is ignored (documented): %q", r.get("Cache-Status"))
	}
}

// TestStaleFillNotReused: a response stale on arrival (Expires in the
// past) is not served from its fill in flight as a hit; the request goes
// to the origin, as it would once the response is stored (QA: "hit;
// ttl=-1; detail=filling" for expires=garbage).
func TestStaleFillNotReused(t *testing.T) {
	e := newEnv(t, nil)
	const size = 300
	path := fmt.Sprintf("/bytes/%d?stalefill=1", size)
	f := e.startFill(t, path, size, "Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
	defer f.Abort(errors.New("test over"))
	if _, err := f.Write(demoBytes(size, 0, size)); err != nil {
		t.Fatal(err)
	}
	r := e.get(path)
	if r.status != 200 || strings.Contains(r.get("Cache-Status"), "detail=filling") {
		t.Errorf("GET while a stale-on-arrival response fills: %d %q; want 200 from the origin", r.status, r.get("Cache-Status"))
	}
	if got := e.origin.Origin.Hits(fmt.Sprintf("/bytes/%d", size)); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

// startFill starts a fill of the demo site's path in the store, as a miss
// would, with a 200 response of size bytes, a strong ETag and the header
// fields given in pairs; its bytes are the caller's to write.
func (e *testEnv) startFill(t *testing.T, path string, size int, fields ...string) *cache.Fill {
	t.Helper()
	var h fasthttp.ResponseHeader
	h.SetContentLength(size)
	h.Set("ETag", `"x"`)
	for i := 0; i+1 < len(fields); i += 2 {
		h.Set(fields[i], fields[i+1])
	}
	now := time.Now()
	m, storable, reason := buildMeta(h.All(), 200, now, now, e.srv.tbl.Load().policy)
	if !storable {
		t.Fatalf("test metadata not storable: %s", reason)
	}
	f, leader := e.store.StartFill("demo\x00"+path, int64(size), 0, m.encode())
	if !leader || f.Err() != nil {
		t.Fatalf("StartFill: leader %v, %v", leader, f.Err())
	}
	return f
}
