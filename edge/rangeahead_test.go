package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin/demo"
)

// originLog records the Range header of every request the test origin
// receives ("" for a full-object request).
type originLog struct {
	mu     sync.Mutex
	ranges []string
}

func (l *originLog) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		l.mu.Lock()
		l.ranges = append(l.ranges, string(ctx.Request.Header.Peek("Range")))
		l.mu.Unlock()
		next(ctx)
	}
}

func (l *originLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ranges)
}

// fillInFlight returns the fill of path in flight, failing the test if
// there is none.
func (e *testEnv) fillInFlight(path string) *cache.Fill {
	e.t.Helper()
	f, ok := e.store.InFlight(e.cacheKey(path))
	if !ok {
		e.t.Fatalf("no fill of %s in flight", path)
	}
	return f
}

// waitCommitted waits for fill f to commit (slow fills take longer than
// waitFor allows).
func waitCommitted(t *testing.T, f *cache.Fill, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if _, err := f.Wait(ctx); err != nil {
		t.Fatalf("the fill did not commit: %v", err)
	}
}

// TestRangeAheadOfFill: a Range far ahead of a slow fill in flight is
// forwarded to the origin with its Range and answered at once, for the
// request that started the fill (the leader) and for those that find it
// running; the fill goes on and commits, and later ranges are hits. A
// range the fill reaches soon, HEAD, a full-object request and
// only-if-cached are still served from the fill.
func TestRangeAheadOfFill(t *testing.T) {
	t.Parallel()
	var log originLog
	e := newEnv(t, log.wrap)
	const size = 8 << 20 // 8 s at 1 MiB/s
	path := fmt.Sprintf("/bytes/%d?rate=1MiB", size)

	// farRange asks for 100 bytes at off and wants them from the origin.
	farRange := func(what, rng string, off int64) {
		t.Helper()
		start := time.Now()
		r := e.get(path, "Range", rng)
		took := time.Since(start)
		const wantCS = "edge; fwd=uri-miss; fwd-status=206; detail=range-ahead-of-fill"
		wantCR := fmt.Sprintf("bytes %d-%d/%d", off, off+99, size)
		if r.status != 206 || r.get("Content-Range") != wantCR || r.get("Cache-Status") != wantCS {
			t.Errorf("%s (%s): %d, Content-Range %q, Cache-Status %q; want 206, %q, %q",
				what, rng, r.status, r.get("Content-Range"), r.get("Cache-Status"), wantCR, wantCS)
		}
		if !bytes.Equal(r.body, demoBytes(size, off, 100)) {
			t.Errorf("%s (%s): %d body bytes differ from the origin's", what, rng, len(r.body))
		}
		// The fill would need about off/1MiB seconds to get there.
		if took > 3*time.Second {
			t.Errorf("%s (%s) took %v, want well under the fill's %d s", what, rng, took, off>>20)
		}
	}

	// The leader: the first request for the object is a far range. Its
	// own fill must go on without it.
	farRange("leader", "bytes=7340032-7340131", 7<<20)
	fill := e.fillInFlight(path)

	// Followers, once the fill has shown its rate (past the warmup).
	info := fill.Info()
	waitFor(t, "the fill's first 256 KiB", func() bool {
		return fill.Written() >= 256<<10 && time.Since(info.StoredAt) > rangeAheadWarmup
	})
	farRange("follower", "bytes=6291456-6291555", 6<<20)
	farRange("follower, suffix range", "bytes=-100", size-100)

	// only-if-cached forbids the origin: it waits for the fill.
	onlyIfCached := make(chan *response, 1)
	go func() {
		onlyIfCached <- e.get(path, "Range", "bytes=6291456-6291555", "Cache-Control", "only-if-cached")
	}()
	// A full-object request follows the fill (read to its end below).
	full := make(chan *response, 1)
	go func() { full <- e.get(path) }()

	// Near the fill's progress (a quarter of a second at its rate, more
	// than the one chunk always served from the fill): from the fill.
	before := len(log.snapshot())
	off := fill.Written() + 256<<10
	r := e.get(path, "Range", fmt.Sprintf("bytes=%d-%d", off, off+99))
	if cs := r.get("Cache-Status"); r.status != 206 || !bytes.Equal(r.body, demoBytes(size, off, 100)) ||
		!strings.HasPrefix(cs, "edge; hit;") || !strings.HasSuffix(cs, "detail=filling") {
		t.Errorf("range 256 KiB ahead of the fill: %d %q, body ok %v; want 206 from the fill", r.status, cs, bytes.Equal(r.body, demoBytes(size, off, 100)))
	}
	// HEAD with a Range is answered from the stored metadata.
	h := e.do(http.MethodHead, path, "Range", "bytes=7340032-7340131")
	if h.status != 200 || h.get("Content-Length") != fmt.Sprint(size) || !strings.HasSuffix(h.get("Cache-Status"), "detail=filling") {
		t.Errorf("HEAD with a far Range: %d, Content-Length %q, Cache-Status %q; want 200 from the fill", h.status, h.get("Content-Length"), h.get("Cache-Status"))
	}
	if got := log.snapshot()[before:]; len(got) != 0 {
		t.Errorf("a near range and a HEAD sent %d origin requests (%q), want none", len(got), got)
	}

	waitCommitted(t, fill, 30*time.Second)
	if r := <-full; r.status != 200 || !bytes.Equal(r.body, demoBytes(size, 0, size)) || !strings.HasSuffix(r.get("Cache-Status"), "detail=filling") {
		t.Errorf("full-object request during the fill: %d %q, %d bytes", r.status, r.get("Cache-Status"), len(r.body))
	}
	if r := <-onlyIfCached; r.status != 206 || !bytes.Equal(r.body, demoBytes(size, 6<<20, 100)) || !strings.HasSuffix(r.get("Cache-Status"), "detail=filling") {
		t.Errorf("only-if-cached far range: %d %q; want 206 from the fill", r.status, r.get("Cache-Status"))
	}

	// Stored: a far range is now a hit.
	r = e.get(path, "Range", "bytes=7340032-7340131")
	if r.status != 206 || !bytes.Equal(r.body, demoBytes(size, 7<<20, 100)) || !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
		t.Errorf("range after the commit: %d %q; want a hit", r.status, r.get("Cache-Status"))
	}

	// The origin saw one full-object fetch and the three forwarded ranges.
	got := log.snapshot()
	slices.Sort(got)
	want := []string{"", "bytes=-100", "bytes=6291456-6291555", "bytes=7340032-7340131"}
	if !slices.Equal(got, want) {
		t.Errorf("origin requests (their Range) = %q, want %q", got, want)
	}
	// They count as passes in /stats (and edge_requests_total, its source).
	waitFor(t, "three passes in /stats", func() bool { return e.statsDoc().Passes == 3 })
}

// statsDoc reads the admin listener's /stats.
func (e *testEnv) statsDoc() Stats {
	e.t.Helper()
	r := e.adminDo(http.MethodGet, "/stats")
	var st Stats
	if err := json.Unmarshal(r.body, &st); r.status != 200 || err != nil {
		e.t.Fatalf("/stats: %d %v", r.status, err)
	}
	return st
}

// TestRangeNearFill: ranges the fill reaches soon are served from it, the
// first request's too, with one origin request for the object.
func TestRangeNearFill(t *testing.T) {
	t.Parallel()
	var log originLog
	e := newEnv(t, log.wrap)
	const size = 2 << 20 // 2 s at 1 MiB/s
	path := fmt.Sprintf("/bytes/%d?rate=1MiB", size)
	tests := []struct {
		what   string
		offset func(f *cache.Fill) int64 // nil: the leader's request
		off    int64
		wantCS string // prefix
	}{
		// Before the fill has a rate, a range within rangeAheadColdChunks
		// (8 × 64 KiB here) is near.
		{what: "leader, 300000 bytes ahead", off: 300_000, wantCS: "edge; fwd=uri-miss; fwd-status=200; stored"},
		{what: "behind the fill", offset: func(*cache.Fill) int64 { return 0 }, wantCS: "edge; hit;"},
		{what: "32 KiB ahead of the fill", offset: func(f *cache.Fill) int64 { return f.Written() + 32<<10 }, wantCS: "edge; hit;"},
		{what: "256 KiB ahead of the fill", offset: func(f *cache.Fill) int64 { return f.Written() + 256<<10 }, wantCS: "edge; hit;"},
	}
	var fill *cache.Fill
	for _, tt := range tests {
		off := tt.off
		if tt.offset != nil {
			off = tt.offset(fill)
		}
		r := e.get(path, "Range", fmt.Sprintf("bytes=%d-%d", off, off+99))
		if r.status != 206 || !bytes.Equal(r.body, demoBytes(size, off, 100)) || !strings.HasPrefix(r.get("Cache-Status"), tt.wantCS) {
			t.Errorf("%s: %d %q, body ok %v; want 206 %q...", tt.what, r.status, r.get("Cache-Status"), bytes.Equal(r.body, demoBytes(size, off, 100)), tt.wantCS)
		}
		if fill == nil {
			fill = e.fillInFlight(path)
		}
	}
	waitCommitted(t, fill, 30*time.Second)
	if got := log.snapshot(); !slices.Equal(got, []string{""}) {
		t.Errorf("origin requests (their Range) = %q, want one full-object request", got)
	}
}

// TestRangeAheadPassFails: when the origin fails the forwarded range, the
// client gets the edge's 502 or 504 with a Cache-Status, like any pass,
// and the fill still commits.
func TestRangeAheadPassFails(t *testing.T) {
	t.Parallel()
	const responseTimeout = 300 * time.Millisecond
	// Range requests (the forwarded ones) fail as their URL's fail=
	// parameter says; the fill's full-object request does not.
	failRanges := func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if len(ctx.Request.Header.Peek("Range")) == 0 {
				next(ctx)
				return
			}
			switch string(ctx.QueryArgs().Peek("fail")) {
			case "close":
				ctx.HijackSetNoResponse(true)
				ctx.Hijack(func(net.Conn) {}) // closed without a response
				return
			case "stall":
				time.Sleep(3 * responseTimeout)
			}
			next(ctx)
		}
	}
	e := newEnv(t, failRanges, func(c *config.Config, _ *Options) {
		c.Origin.ResponseTimeout = config.Duration(responseTimeout)
	})
	const size = 1 << 20
	tests := []struct {
		fail   string
		status int
		cs     string
	}{
		{"close", 502, "edge; fwd=uri-miss; detail=origin-unreachable"},
		{"stall", 504, "edge; fwd=uri-miss; detail=origin-timeout"},
	}
	for _, tt := range tests {
		path := fmt.Sprintf("/bytes/%d?rate=1MiB&fail=%s", size, tt.fail)
		start := time.Now()
		r := e.get(path, "Range", "bytes=1000000-1000099")
		if r.status != tt.status || r.get("Cache-Status") != tt.cs {
			t.Errorf("fail=%s: %d %q; want %d %q", tt.fail, r.status, r.get("Cache-Status"), tt.status, tt.cs)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("fail=%s: answered after %v", tt.fail, took)
		}
		key := e.cacheKey(path)
		waitFor(t, "the fill of "+path, func() bool { _, err := e.store.Lookup(key); return err == nil })
		r = e.get(path, "Range", "bytes=1000000-1000099")
		if r.status != 206 || !bytes.Equal(r.body, demoBytes(size, 1_000_000, 100)) || !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
			t.Errorf("fail=%s, after the commit: %d %q; want a hit", tt.fail, r.status, r.get("Cache-Status"))
		}
	}
}

// TestRangeAheadDecision: which requests rangeAheadOfFill forwards, for a
// fill of a known rate and age (the store's real fill; its start time is
// set in the object's info).
func TestRangeAheadDecision(t *testing.T) {
	store, err := cache.Open(cache.Options{ChunkBytes: 64 << 10, MemoryBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const (
		size       = 8 << 20
		chunkBytes = 64 << 10
		mib        = 1 << 20
	)
	fills := map[int64]*cache.Fill{}
	fillOf := func(written int64) *cache.Fill {
		if f, ok := fills[written]; ok {
			return f
		}
		f, leader := store.StartFill(fmt.Sprintf("written-%d", written), size, chunkBytes, nil)
		if !leader || f.Err() != nil {
			t.Fatalf("StartFill: leader %v, %v", leader, f.Err())
		}
		if _, err := f.Write(make([]byte, written)); err != nil {
			t.Fatal(err)
		}
		fills[written] = f
		return f
	}
	defer func() {
		for _, f := range fills {
			f.Abort(nil)
		}
	}()
	etag := `"v1"`
	tests := []struct {
		name    string
		head    bool
		rng     string
		ifRange string
		ifNone  string
		size    int64 // the object's; 0 means size
		status  int   // stored status; 0 means 200
		written int64
		elapsed time.Duration // since the fill began
		want    bool
	}{
		{name: "no Range", written: 0, elapsed: time.Second, want: false},
		{name: "HEAD", head: true, rng: "bytes=7000000-", elapsed: time.Second, want: false},
		{name: "behind the fill", rng: "bytes=100-199", written: mib, elapsed: time.Second, want: false},
		{name: "within a chunk of a stalled fill", rng: "bytes=65536-", written: 0, elapsed: time.Second, want: false},
		{name: "past a chunk of a stalled fill", rng: "bytes=65537-", written: 0, elapsed: time.Second, want: true},
		{name: "cold, 8 chunks ahead", rng: "bytes=524288-", written: 0, elapsed: 0, want: false},
		{name: "cold, past 8 chunks", rng: "bytes=524289-", written: 0, elapsed: 0, want: true},
		{name: "cold, far", rng: "bytes=7340032-7340131", written: 100 << 10, elapsed: 50 * time.Millisecond, want: true},
		{name: "1 MiB/s, 0.9 s ahead", rng: fmt.Sprintf("bytes=%d-", 2*mib+900<<10), written: 2 * mib, elapsed: 2 * time.Second, want: false},
		{name: "1 MiB/s, 1.1 s ahead", rng: fmt.Sprintf("bytes=%d-", 2*mib+1100<<10), written: 2 * mib, elapsed: 2 * time.Second, want: true},
		{name: "suffix range far ahead", rng: "bytes=-100", written: mib, elapsed: time.Second, want: true},
		{name: "several ranges (answered 200)", rng: "bytes=0-1,7000000-7000001", written: mib, elapsed: time.Second, want: false},
		{name: "unsatisfiable (answered 416)", rng: "bytes=9000000-", written: mib, elapsed: time.Second, want: false},
		{name: "malformed (answered 200)", rng: "bytes=x-", written: mib, elapsed: time.Second, want: false},
		{name: "If-Range that does not match (answered 200)", rng: "bytes=7000000-", ifRange: `"v0"`, written: mib, elapsed: time.Second, want: false},
		{name: "If-Range that matches", rng: "bytes=7000000-", ifRange: etag, written: mib, elapsed: time.Second, want: true},
		{name: "If-None-Match that matches (answered 304)", rng: "bytes=7000000-", ifNone: etag, written: mib, elapsed: time.Second, want: false},
		{name: "unknown size (answered 200)", rng: "bytes=7000000-", size: -1, written: mib, elapsed: time.Second, want: false},
		{name: "stored 404", rng: "bytes=7000000-", status: 404, written: mib, elapsed: time.Second, want: false},
	}
	for _, tt := range tests {
		f := fillOf(tt.written)
		info := f.Info()
		info.StoredAt = time.Now().Add(-tt.elapsed)
		if tt.size != 0 {
			info.Size = tt.size
		}
		m := &objMeta{Status: 200, ETag: etag}
		if tt.status != 0 {
			m.Status = tt.status
		}
		x := &exchange{head: tt.head}
		x.req.rng, x.req.ifRange, x.req.ifNoneMatch = []byte(tt.rng), []byte(tt.ifRange), []byte(tt.ifNone)
		if got := x.rangeAheadOfFill(f, &storedObj{info, m}); got != tt.want {
			t.Errorf("%s: rangeAheadOfFill(Range %q, %d written in %v) = %v, want %v", tt.name, tt.rng, tt.written, tt.elapsed, got, tt.want)
		}
	}
}

// TestRangeAheadCarriesIfRange: a range forwarded ahead of a fill asks the
// origin for the fill's version (If-Range with its ETag). When the origin
// has changed the object meanwhile, the client gets the whole new version
// (200, its ETag), never a part of it to join to parts of the old one.
func TestRangeAheadCarriesIfRange(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ifRanges []string
	e := newEnv(t, func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if len(ctx.Request.Header.Peek("Range")) > 0 {
				mu.Lock()
				ifRanges = append(ifRanges, string(ctx.Request.Header.Peek("If-Range")))
				mu.Unlock()
			}
			next(ctx)
		}
	})
	const size = 8 << 20
	path := fmt.Sprintf("/bytes/%d?rate=1MiB", size)
	first := e.get(path, "Range", "bytes=7340032-7340131") // the leader, forwarded
	fill := e.fillInFlight(path)
	if first.status != 206 || !strings.HasSuffix(first.get("Cache-Status"), "detail=range-ahead-of-fill") {
		t.Fatalf("far range: %d %q", first.status, first.get("Cache-Status"))
	}
	mu.Lock()
	got := slices.Clone(ifRanges)
	mu.Unlock()
	if len(got) != 1 || got[0] != first.get("ETag") || got[0] == "" {
		t.Errorf("If-Range of the forwarded range: %q, want the fill's ETag %q", got, first.get("ETag"))
	}

	// The origin moves to another version while the fill runs.
	if err := e.origin.Origin.SetFaults(demo.Faults{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.url(path), nil)
	req.Header.Set("Range", "bytes=6291456-6291555")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the whole new version at 1 MiB/s: the headers say enough
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == first.get("ETag") || resp.ContentLength != size {
		t.Errorf("far range after the origin changed: %d, ETag %q (old %q), length %d; want 200 with the new version",
			resp.StatusCode, resp.Header.Get("ETag"), first.get("ETag"), resp.ContentLength)
	}
	waitCommitted(t, fill, 30*time.Second)
}
