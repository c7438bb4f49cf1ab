package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
)

func TestMissThenHit(t *testing.T) {
	e := newEnv(t, nil)
	for _, size := range []int64{0, 1, 1024, 64 << 10, 64<<10 + 1, 1 << 20} {
		path := fmt.Sprintf("/bytes/%d", size)
		first := e.get(path)
		if first.status != 200 || first.get("Cache-Status") != "edge; fwd=uri-miss; fwd-status=200; stored" {
			t.Fatalf("GET %s first: %d %q, want 200 \"edge; fwd=uri-miss; fwd-status=200; stored\"", path, first.status, first.get("Cache-Status"))
		}
		second := e.get(path)
		if second.status != 200 || !strings.HasPrefix(second.get("Cache-Status"), "edge; hit; ttl=") {
			t.Errorf("GET %s second: %d %q, want 200 edge; hit", path, second.status, second.get("Cache-Status"))
		}
		want := demoBytes(size, 0, size)
		for i, r := range []*response{first, second} {
			if !bytes.Equal(r.body, want) {
				t.Errorf("GET %s #%d: body of %d bytes differs from the origin's %d", path, i+1, len(r.body), size)
			}
			if r.get("Age") == "" || r.get("ETag") == "" || r.get("Content-Length") != strconv.FormatInt(size, 10) {
				t.Errorf("GET %s #%d: Age %q ETag %q Content-Length %q", path, i+1, r.get("Age"), r.get("ETag"), r.get("Content-Length"))
			}
		}
		if got := e.origin.Origin.Hits(path); got != 1 {
			t.Errorf("origin hits for %s = %d, want 1", path, got)
		}
	}
}

func TestHead(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(http.MethodHead, "/bytes/5000")
	if r.status != 200 || r.get("Content-Length") != "5000" || len(r.body) != 0 {
		t.Fatalf("HEAD miss: %d CL %q body %d", r.status, r.get("Content-Length"), len(r.body))
	}
	r = e.do(http.MethodHead, "/bytes/5000")
	if r.status != 200 || r.get("Content-Length") != "5000" || !strings.Contains(r.get("Cache-Status"), "hit") {
		t.Fatalf("HEAD hit: %d CL %q %q", r.status, r.get("Content-Length"), r.get("Cache-Status"))
	}
	if g := e.get("/bytes/5000"); !bytes.Equal(g.body, demoBytes(5000, 0, 5000)) || !strings.Contains(g.get("Cache-Status"), "hit") {
		t.Fatalf("GET after HEAD fill: %q, body ok %v", g.get("Cache-Status"), bytes.Equal(g.body, demoBytes(5000, 0, 5000)))
	}
}

// TestRanges compares every range answer byte for byte with the origin's
// bytes, on a miss (served from the fill) and on a hit.
func TestRanges(t *testing.T) {
	e := newEnv(t, nil)
	const size = 300_000 // several 64 KiB chunks
	tests := []struct {
		rng        string
		status     int
		start, end int64 // expected body [start, end)
		cr         string
	}{
		{"bytes=0-0", 206, 0, 1, "bytes 0-0/300000"},
		{"bytes=0-99", 206, 0, 100, "bytes 0-99/300000"},
		{"bytes=65530-65545", 206, 65530, 65546, "bytes 65530-65545/300000"}, // across a chunk boundary
		{"bytes=299990-", 206, 299990, size, "bytes 299990-299999/300000"},
		{"bytes=-10", 206, size - 10, size, "bytes 299990-299999/300000"},
		{"bytes=-400000", 206, 0, size, "bytes 0-299999/300000"},
		{"bytes=100-9999999", 206, 100, size, "bytes 100-299999/300000"},
		{"bytes=300000-", 416, 0, 0, "bytes */300000"},
		{"bytes=-0", 416, 0, 0, "bytes */300000"},
		{"bytes=5-1", 200, 0, size, ""},
		{"bytes=abc", 200, 0, size, ""},
		{"items=0-1", 200, 0, size, ""},
		{"bytes=0-1,5-6", 200, 0, size, ""},
	}
	for round, kind := range []string{"miss", "hit"} {
		for i, tt := range tests {
			path := fmt.Sprintf("/bytes/%d", size)
			if kind == "miss" {
				path = fmt.Sprintf("/bytes/%d?case=%d", size, i) // a fresh key each time
			}
			r := e.get(path, "Range", tt.rng)
			if r.status != tt.status || r.get("Content-Range") != tt.cr {
				t.Errorf("%s Range %q: %d Content-Range %q, want %d %q", kind, tt.rng, r.status, r.get("Content-Range"), tt.status, tt.cr)
				continue
			}
			if tt.status == 416 {
				continue
			}
			if want := demoBytes(size, tt.start, tt.end-tt.start); !bytes.Equal(r.body, want) {
				t.Errorf("%s Range %q: body of %d bytes differs from origin bytes [%d, %d)", kind, tt.rng, len(r.body), tt.start, tt.end)
			}
			if cs := r.get("Cache-Status"); round == 1 && !strings.Contains(cs, "hit") {
				t.Errorf("%s Range %q: Cache-Status %q", kind, tt.rng, cs)
			}
		}
		if round == 0 {
			e.get(fmt.Sprintf("/bytes/%d", size)) // fill the key of the hit round
		}
	}
	// Every miss above was one origin fetch of the whole object, never a
	// range request.
	if got, want := e.origin.Origin.Hits(fmt.Sprintf("/bytes/%d", size)), int64(len(tests)+1); got != want {
		t.Errorf("origin hits = %d, want %d (one per key)", got, want)
	}
}

func TestIfRange(t *testing.T) {
	e := newEnv(t, nil)
	full := e.get("/bytes/1000")
	etag, lm := full.get("ETag"), full.get("Last-Modified")
	tests := []struct {
		ifRange string
		status  int
	}{
		{etag, 206},
		{`"other"`, 200},
		{"W/" + etag, 200}, // weak never matches If-Range
		{lm, 206},
		{"Mon, 01 Jan 2001 00:00:00 GMT", 200},
		{"garbage", 200},
	}
	for _, tt := range tests {
		r := e.get("/bytes/1000", "Range", "bytes=10-19", "If-Range", tt.ifRange)
		if r.status != tt.status {
			t.Errorf("If-Range %q: status %d, want %d", tt.ifRange, r.status, tt.status)
		}
	}
}

func TestClientConditionals(t *testing.T) {
	e := newEnv(t, nil)
	full := e.get("/bytes/2000")
	etag, lm := full.get("ETag"), full.get("Last-Modified")
	tests := []struct {
		h      []string
		status int
	}{
		{[]string{"If-None-Match", etag}, 304},
		{[]string{"If-None-Match", `"x", ` + etag}, 304},
		{[]string{"If-None-Match", "W/" + etag}, 304}, // weak comparison
		{[]string{"If-None-Match", "*"}, 304},
		{[]string{"If-None-Match", `"x"`}, 200},
		{[]string{"If-Modified-Since", lm}, 304},
		{[]string{"If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}, 200},
		{[]string{"If-None-Match", `"x"`, "If-Modified-Since", lm}, 200}, // INM takes precedence
		{[]string{"If-Match", `"x"`}, 412},
		{[]string{"If-Match", etag}, 200},
		{[]string{"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}, 412},
	}
	for _, tt := range tests {
		r := e.get("/bytes/2000", tt.h...)
		if r.status != tt.status {
			t.Errorf("%q: status %d, want %d", tt.h, r.status, tt.status)
		}
		if r.status == 304 && (len(r.body) != 0 || r.get("ETag") != etag || r.get("Cache-Status") == "" || r.get("Age") == "") {
			t.Errorf("%q: 304 with body %d, ETag %q, Cache-Status %q, Age %q", tt.h, len(r.body), r.get("ETag"), r.get("Cache-Status"), r.get("Age"))
		}
	}
	if got := e.origin.Origin.Hits("/bytes/2000"); got != 1 {
		t.Errorf("origin hits = %d, want 1: client conditionals are answered by the edge", got)
	}
}

// TestCollapsing: many clients asking for the same missing object cause one
// origin fetch, and each gets the right bytes.
func TestCollapsing(t *testing.T) {
	e := newEnv(t, nil)
	const clients = 24
	path := "/bytes/200000?delay=300ms"
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	statuses := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url(path), nil)
			if i%3 == 0 {
				req.Header.Set("Range", "bytes=1000-1999")
			}
			resp, err := e.client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := demoBytes(200000, 0, 200000)
			if i%3 == 0 {
				want = want[1000:2000]
			}
			if err != nil || !bytes.Equal(body, want) {
				errs <- fmt.Sprintf("client %d: %v, body %d bytes (match %v)", i, err, len(body), bytes.Equal(body, want))
			}
			statuses <- resp.Header.Get("Cache-Status")
		}()
	}
	wg.Wait()
	close(errs)
	close(statuses)
	for err := range errs {
		t.Error(err)
	}
	collapsed := 0
	for cs := range statuses {
		if strings.Contains(cs, "collapsed") {
			collapsed++
		}
	}
	if got := e.origin.Origin.Hits("/bytes/200000"); got != 1 {
		t.Errorf("origin hits = %d for %d concurrent clients, want 1", got, clients)
	}
	if collapsed == 0 {
		t.Errorf("no response says collapsed")
	}
}

// TestStreamingMiss: the first bytes of a throttled miss reach the client
// while the fill is still running (the store has no complete version yet).
func TestStreamingMiss(t *testing.T) {
	e := newEnv(t, nil)
	const size = 512 << 10
	path := fmt.Sprintf("/bytes/%d?rate=256KiB", size) // 2 s for the whole body
	resp, err := e.client.Get(e.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 16<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	key := "demo\x00" + path
	if _, err := e.store.Lookup(key); err == nil {
		t.Fatalf("the object was complete before the client read its first 16 KiB: not streamed")
	}
	if _, ok := e.store.InFlight(key); !ok {
		t.Fatalf("no fill in flight while the client streams")
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, demoBytes(size, 0, size)) {
		t.Errorf("streamed body differs from the origin's")
	}
}

// TestFillSurvivesClientDisconnect: the only client leaves; the fill
// completes and the next request is a hit.
func TestFillSurvivesClientDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	path := "/bytes/300000?rate=600KiB"
	resp, err := e.client.Get(e.url(path))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	e.client.Transport.(*http.Transport).CloseIdleConnections()
	key := "demo\x00" + path
	waitFor(t, "the fill to complete", func() bool { _, err := e.store.Lookup(key); return err == nil })
	r := e.get(path)
	if !strings.Contains(r.get("Cache-Status"), "hit") || !bytes.Equal(r.body, demoBytes(300000, 0, 300000)) {
		t.Errorf("after the client left: %q, body ok %v", r.get("Cache-Status"), bytes.Equal(r.body, demoBytes(300000, 0, 300000)))
	}
	if got := e.origin.Origin.Hits("/bytes/300000"); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestAbortedFillCutsClients(t *testing.T) {
	e := newEnv(t, nil)
	path := "/bytes/200000?break_after=100000"
	resp, err := e.client.Get(e.url(path))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a fill aborted by the origin was delivered as a complete body of %d bytes", len(body))
	}
	if !bytes.Equal(body, demoBytes(200000, 0, int64(len(body)))) {
		t.Errorf("the prefix delivered before the abort is wrong")
	}
	if _, err := e.store.Lookup("demo\x00" + path); err == nil {
		t.Errorf("the aborted object is stored")
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Sites[0].Hosts = []string{"video.example", "*.cdn.example"}
		c.Sites[0].PathPrefix = "/bytes/"
	})
	tests := []struct {
		name   string
		method string
		path   string
		h      []string
		status int
		allow  string
	}{
		{"unknown host", "GET", "/bytes/10", []string{"Host", "evil.example"}, 421, ""},
		{"unknown path", "GET", "/other", []string{"Host", "video.example"}, 404, ""},
		{"wildcard host", "GET", "/bytes/10", []string{"Host", "a.cdn.example"}, 200, ""},
		{"POST", "POST", "/bytes/10", []string{"Host", "video.example"}, 405, "GET, HEAD, OPTIONS"},
		{"DELETE", "DELETE", "/bytes/10", []string{"Host", "video.example"}, 405, "GET, HEAD, OPTIONS"},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, tt.h...)
		if r.status != tt.status || r.get("Allow") != tt.allow {
			t.Errorf("%s: %d Allow %q, want %d %q (body %q)", tt.name, r.status, r.get("Allow"), tt.status, tt.allow, r.body)
		}
		if r.get("Cache-Status") == "" || r.get("Age") == "" || r.get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: Cache-Status %q Age %q ACAO %q: want all set", tt.name, r.get("Cache-Status"), r.get("Age"), r.get("Access-Control-Allow-Origin"))
		}
	}
	rawTests := []struct {
		name, req, status string
	}{
		{"absolute URI", "GET http://video.example/bytes/10 HTTP/1.1\r\nHost: video.example\r\n\r\n", "400"},
		{"absolute URI elsewhere", "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n", "400"},
		{"bad escape", "GET /bytes/%zz HTTP/1.1\r\nHost: video.example\r\n\r\n", "400"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "405"},
		{"header too large", "GET /bytes/10 HTTP/1.1\r\nHost: video.example\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", "431"},
		{"many headers", "GET /bytes/10 HTTP/1.1\r\nHost: video.example\r\n" + strings.Repeat("X-A: 0123456789012345678901234567890123456789\r\n", 500) + "\r\n", "431"},
	}
	for _, tt := range rawTests {
		status, all := e.raw(tt.req)
		if status != tt.status {
			t.Errorf("%s: status %s, want %s\n%s", tt.name, status, tt.status, trunc(all))
		}
		if !strings.Contains(all, "Cache-Status:") {
			t.Errorf("%s: no Cache-Status in\n%s", tt.name, all)
		}
	}
	if got := e.origin.Origin.TotalHits(); got != 1 {
		t.Errorf("origin hits = %d, want 1 (only the wildcard-host request)", got)
	}
}

func TestPreflight(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("OPTIONS", "/bytes/10", "Origin", "https://player.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "range, x-pa-session")
	if r.status != 204 || r.get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.get("Access-Control-Allow-Headers"), "Range") ||
		!strings.Contains(r.get("Access-Control-Allow-Headers"), SessionHeader) || !strings.Contains(r.get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	g := e.get("/bytes/10", "Origin", "https://player.example")
	for _, h := range []string{"Content-Range", "Cache-Status", "Age", "ETag", UsePeersHeader} {
		if !strings.Contains(g.get("Access-Control-Expose-Headers"), h) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", g.get("Access-Control-Expose-Headers"), h)
		}
	}
}

// chunkedOrigin serves /chunked/{n} as n demo bytes without Content-Length
// (Transfer-Encoding: chunked), cacheable.
func chunkedOrigin(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p := string(ctx.Path())
		if !strings.HasPrefix(p, "/chunked/") {
			next(ctx)
			return
		}
		n, _ := strconv.ParseInt(strings.TrimPrefix(p, "/chunked/"), 10, 64)
		ctx.Response.Header.Set("Cache-Control", "max-age=60")
		ctx.Response.Header.Set("ETag", `"c`+strconv.FormatInt(n, 10)+`"`)
		ctx.SetBodyStream(bytes.NewReader(demoBytes(n, 0, n)), -1)
	}
}

func TestUnknownLengthFill(t *testing.T) {
	e := newEnv(t, chunkedOrigin)
	const size = 150_000
	want := demoBytes(size, 0, size)
	// A Range on a fill of unknown length is answered 200 in full.
	r := e.get("/chunked/150000", "Range", "bytes=10-19")
	if r.status != 200 || !bytes.Equal(r.body, want) || r.get("Cache-Status") != "edge; fwd=uri-miss; fwd-status=200; stored" {
		t.Fatalf("chunked miss: %d %q, %d bytes", r.status, r.get("Cache-Status"), len(r.body))
	}
	waitFor(t, "the fill", func() bool { _, err := e.store.Lookup("demo\x00/chunked/150000"); return err == nil })
	r = e.get("/chunked/150000", "Range", "bytes=10-19")
	if r.status != 206 || !bytes.Equal(r.body, want[10:20]) || r.get("Content-Range") != "bytes 10-19/150000" {
		t.Errorf("chunked hit with Range: %d %q", r.status, r.get("Content-Range"))
	}
	if r := e.get("/chunked/150000"); r.get("Content-Length") != "150000" || !bytes.Equal(r.body, want) {
		t.Errorf("chunked hit: Content-Length %q", r.get("Content-Length"))
	}
}

// TestDiskTierRestart: objects on the disk tier are hits after a restart
// (store reopened, new server), with their HTTP metadata and bytes intact.
func TestDiskTierRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Cache.DiskPath = dir
		c.Cache.DiskBytes = 64 << 20
	})
	targets := []string{"/bytes/300000", "/bytes/1000?vary=Accept-Encoding", "/bytes/9?status=404"}
	for _, p := range targets {
		e.get(p, "Accept-Encoding", "gzip")
	}
	waitFor(t, "the fills", func() bool { return e.store.Stats().Objects >= 4 }) // + the Vary marker
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err := openStore(e.cfg, slog.New(slog.NewTextHandler(e.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := New(Options{Config: e.cfg, Store: store, Origins: e.pool, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		e.client.Transport.(*http.Transport).CloseIdleConnections()
		srv.Shutdown(context.Background())
		<-done
	}()
	e.addr = ln.Addr().String()
	for _, p := range targets {
		r := e.get(p, "Accept-Encoding", "gzip")
		if !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
			t.Errorf("%s after restart: %d %q", p, r.status, r.get("Cache-Status"))
		}
		if strings.HasPrefix(p, "/bytes/300000") && !bytes.Equal(r.body, demoBytes(300000, 0, 300000)) {
			t.Errorf("%s after restart: body differs", p)
		}
	}
	if hits := e.origin.Origin.TotalHits(); hits != 3 {
		t.Errorf("origin hits = %d, want 3 (none after the restart)", hits)
	}
}
