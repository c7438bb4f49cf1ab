package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/manifest"
)

// gate is a SessionGate for tests: it refuses the sessions in refuse and
// records what was served.
type gate struct {
	mu     sync.Mutex
	refuse map[string]bool
	admits []string
	served []string
}

func (g *gate) Admit(id string, urgent bool) (bool, time.Duration, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admits = append(g.admits, fmt.Sprintf("%s urgent=%v", id, urgent))
	if g.refuse[id] && !urgent {
		return false, 1500 * time.Millisecond, "edge over its peer-assist cap"
	}
	return true, 0, ""
}

func (g *gate) Served(id, site, url string, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.served = append(g.served, fmt.Sprintf("%s %s %s %d", id, site, url, n))
}

func (g *gate) snapshot() (admits, served []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.admits...), append([]string(nil), g.served...)
}

func TestSessionGate(t *testing.T) {
	g := &gate{refuse: map[string]bool{"busy": true}}
	e := newEnv(t, nil, func(_ *config.Config, o *Options) { o.Sessions = g })

	r := e.get("/bytes/1000?pa_session=busy")
	if r.status != 429 || r.get("Retry-After") != "2" || r.get(UsePeersHeader) != "1" || !strings.Contains(string(r.body), "peer-assist cap") ||
		r.get("Cache-Status") == "" || r.get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("refused session: %d Retry-After %q %s %q body %q", r.status, r.get("Retry-After"), UsePeersHeader, r.get(UsePeersHeader), r.body)
	}
	// Urgent requests of the same session are admitted.
	if r := e.get("/bytes/1000?pa_urgent=1&pa_session=busy"); r.status != 200 {
		t.Errorf("urgent request: %d", r.status)
	}
	if r := e.get("/bytes/1000", SessionHeader, "s1", "Range", "bytes=0-99"); r.status != 206 {
		t.Errorf("session by header: %d", r.status)
	}
	if r := e.get("/bytes/1000"); r.status != 200 {
		t.Errorf("no session: %d", r.status)
	}
	// The session parameter is not part of the cache key.
	if got := e.origin.Origin.Hits("/bytes/1000"); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
	waitFor(t, "Served calls", func() bool { _, s := g.snapshot(); return len(s) == 2 })
	admits, served := g.snapshot()
	wantAdmits := []string{"busy urgent=false", "busy urgent=true", "s1 urgent=false"}
	wantServed := []string{"busy demo /bytes/1000 1000", "s1 demo /bytes/1000 100"}
	if strings.Join(admits, "|") != strings.Join(wantAdmits, "|") || strings.Join(served, "|") != strings.Join(wantServed, "|") {
		t.Errorf("Admit calls %q, want %q; Served calls %q, want %q", admits, wantAdmits, served, wantServed)
	}
}

func TestManifest(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Sites[0].Hosts = []string{"video.example"} })
	const size = 200_000 // 4 chunks of 64 KiB in this environment
	objURL := fmt.Sprintf("/bytes/%d?rate=1MiB", size)
	r := e.get(ManifestPath+"?url="+url.QueryEscape(objURL), "Host", "video.example")
	if r.status != 200 || r.get("ETag") == "" || !strings.HasPrefix(r.get("Cache-Control"), "public, max-age=") || r.get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("manifest: %d ETag %q Cache-Control %q\n%s", r.status, r.get("ETag"), r.get("Cache-Control"), r.body)
	}
	m, err := manifest.Parse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	// The manifest matches the bytes the edge serves.
	obj := e.get(objURL, "Host", "video.example")
	if !strings.HasPrefix(obj.get("Cache-Status"), "edge; hit") || int64(len(obj.body)) != m.Size || m.Size != size || m.ChunkBytes != 64<<10 {
		t.Fatalf("object after manifest: %q, %d bytes; manifest size %d chunk %d", obj.get("Cache-Status"), len(obj.body), m.Size, m.ChunkBytes)
	}
	for i := range m.NumChunks() {
		start, end := m.ChunkRange(i)
		sum := sha256.Sum256(obj.body[start:end])
		if m.SHA256[i] != hex.EncodeToString(sum[:]) || !m.Verify(i, obj.body[start:end]) {
			t.Errorf("chunk %d: manifest %s, served bytes hash to %x", i, m.SHA256[i], sum)
		}
	}
	if m.ETag != obj.get("ETag") {
		t.Errorf("manifest ETag %q, object ETag %q", m.ETag, obj.get("ETag"))
	}
	// An absolute URL names the same object; a conditional request gets 304.
	abs := e.get(ManifestPath+"?url="+url.QueryEscape("http://video.example"+objURL), "If-None-Match", r.get("ETag"))
	if abs.status != 304 {
		t.Errorf("absolute URL with If-None-Match: %d", abs.status)
	}
	if got := e.origin.Origin.Hits(fmt.Sprintf("/bytes/%d", size)); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}

	bad := []struct {
		name, u string
		status  int
	}{
		{"missing", "", 400},
		{"relative", "bytes/1", 400},
		{"scheme-relative", "//video.example/bytes/1", 400},
		{"ftp", "ftp://video.example/bytes/1", 400},
		{"unknown host", "http://evil.example/bytes/1", 404},
		{"bad escape", "/bytes/%zz", 400},
		{"origin 404", "/bytes/1?status=404&cache_control=max-age%3D60", 404},
		{"not cacheable", "/bytes/1?cache_control=no-store", 422},
		{"origin 503", "/bytes/1?status=503", 502},
	}
	for _, tt := range bad {
		q := ManifestPath
		if tt.u != "" {
			q += "?url=" + url.QueryEscape(tt.u)
		}
		r := e.get(q, "Host", "video.example")
		var fail manifestError
		if r.status != tt.status || json.Unmarshal(r.body, &fail) != nil || fail.Error == "" || fail.Status != tt.status {
			t.Errorf("%s: %d %s, want %d with a JSON error", tt.name, r.status, r.body, tt.status)
		}
	}
}

// TestManifestCollapsed: many manifest requests and object requests for a
// missing object make one origin fetch.
func TestManifestCollapsed(t *testing.T) {
	e := newEnv(t, nil)
	objURL := "/bytes/150000?delay=200ms"
	var wg sync.WaitGroup
	etags := make(chan string, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				resp, err := e.client.Get(e.url(ManifestPath + "?url=" + url.QueryEscape(objURL)))
				if err != nil {
					t.Errorf("manifest request: %v", err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("manifest request: %d %s", resp.StatusCode, body)
				}
				etags <- resp.Header.Get("ETag")
				return
			}
			resp, err := e.client.Get(e.url(objURL))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(etags)
	var first string
	for et := range etags {
		if first == "" {
			first = et
		}
		if et == "" || et != first {
			t.Errorf("manifest ETags differ or are empty: %q vs %q", et, first)
		}
	}
	if got := e.origin.Origin.Hits("/bytes/150000"); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Sites[0].Hosts = []string{"a.example"} })
	if r := e.get("/bytes/10", "Host", "a.example"); r.status != 200 {
		t.Fatalf("before reload: %d", r.status)
	}
	// A slow response in flight keeps going across the reload.
	slow, err := e.client.Get(e.url("/bytes/300000?rate=600KiB"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	if slow.StatusCode != 421 {
		t.Fatalf("slow request on the default host: %d, want 421 (host a.example only)", slow.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.url("/bytes/300000?rate=600KiB"), nil)
	req.Host = "a.example"
	inflight, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Body.Close()

	cfg := *e.cfg
	cfg.Sites = []config.Site{config.NewSite("demo", e.origin.URL())}
	cfg.Sites[0].Hosts = []string{"b.example"}
	cfg.Limits.ReadTimeout = config.Duration(7 * time.Second) // a new listener generation
	cfg.Limits.MaxConnectionsPerIP = 50
	if err := e.srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/bytes/10", "Host", "a.example"); r.status != 421 {
		t.Errorf("old host after reload: %d, want 421", r.status)
	}
	if r := e.get("/bytes/10", "Host", "b.example"); r.status != 200 || !strings.HasPrefix(r.get("Cache-Status"), "edge; hit") {
		t.Errorf("new host after reload: %d %q (same site name: same cache)", r.status, r.get("Cache-Status"))
	}
	body, err := io.ReadAll(inflight.Body)
	if err != nil || !bytes.Equal(body, demoBytes(300000, 0, 300000)) {
		t.Errorf("in-flight response across the reload: %v, %d bytes", err, len(body))
	}
	bad := cfg
	bad.Sites = nil
	if err := e.srv.Reload(&bad); err == nil || !strings.Contains(err.Error(), "sites") {
		t.Errorf("Reload without sites: %v, want an error naming sites", err)
	}
	if r := e.get("/bytes/10", "Host", "b.example"); r.status != 200 {
		t.Errorf("after a refused reload: %d", r.status)
	}
}

func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Limits.MaxConnectionsPerIP = 2 })
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	waitFor(t, "two connections", func() bool { return e.srv.conns.count() == 2 })
	status, all := e.raw("GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if status != "503" || !strings.Contains(all, "too many connections from your address") {
		t.Errorf("third connection: %s\n%s", status, all)
	}
	conns[0].Close()
	conns = conns[1:]
	waitFor(t, "a slot", func() bool { return e.srv.conns.count() == 1 })
	if status, _ := e.raw("GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n"); status != "200" {
		t.Errorf("after a slot freed: %s", status)
	}
}

// sendUnfinishedRequest sends the start of a request that never ends and
// returns what the edge answered before closing, and how long that took
// (at most 5 s).
func sendUnfinishedRequest(t *testing.T, e *testEnv) (answer []byte, held time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /bytes/1 HTTP/1.1\r\nHost: x\r\n") // never finished
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(c)
	return b, time.Since(start)
}

func TestSlowlorisTimeout(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Limits.ReadTimeout = config.Duration(300 * time.Millisecond) })
	b, held := sendUnfinishedRequest(t, e)
	if held > 4*time.Second {
		t.Errorf("a request that never ends held the connection for %v", held)
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("answer to a slow request: %q", b)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil, func(_ *config.Config, o *Options) {
		o.Routes = []Route{
			{Path: "/pa/v1/whoami", Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("you") }},
			{Path: "/pa/v1/static/", Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("static " + string(ctx.Path())) }},
			{Path: "/bytes/7", Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("route wins") }},
			{Path: "/boom", Handler: func(*fasthttp.RequestCtx) { panic("test panic") }},
			// ctx.Error resets the response headers, as the coordinator's
			// 426 to a plain GET does.
			{Path: "/pa/v1/announce", Handler: func(ctx *fasthttp.RequestCtx) { ctx.Error("send Upgrade: websocket", fasthttp.StatusUpgradeRequired) }},
		}
	})
	if r := e.get("/pa/v1/announce"); r.status != 426 || r.get("Cache-Status") != "edge; fwd=bypass" || r.get("Age") != "0" ||
		r.get("Access-Control-Allow-Origin") != "*" || string(r.body) != "send Upgrade: websocket" {
		t.Errorf("route answering with ctx.Error: %d Cache-Status %q Age %q ACAO %q body %q", r.status, r.get("Cache-Status"),
			r.get("Age"), r.get("Access-Control-Allow-Origin"), r.body)
	}
	// A panicking handler costs its request a 500, not the process.
	if r := e.get("/boom"); r.status != 500 || r.get("Cache-Status") == "" {
		t.Errorf("panicking route: %d %q", r.status, r.get("Cache-Status"))
	}
	if !strings.Contains(e.logs.String(), "test panic") {
		t.Errorf("the panic was not logged")
	}
	tests := []struct{ path, body string }{
		{"/pa/v1/whoami", "you"},
		{"/pa/v1/static/x.js", "static /pa/v1/static/x.js"},
		{"/bytes/7", "route wins"},
	}
	for _, tt := range tests {
		r := e.get(tt.path, "Host", "anything.example")
		if r.status != 200 || string(r.body) != tt.body || r.get("Access-Control-Allow-Origin") != "*" || r.get("Cache-Status") == "" {
			t.Errorf("GET %s: %d %q ACAO %q", tt.path, r.status, r.body, r.get("Access-Control-Allow-Origin"))
		}
	}
	r := e.do("OPTIONS", "/pa/v1/whoami", "Origin", "https://x.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || !strings.Contains(r.get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("route preflight: %d %v", r.status, r.header)
	}
	if e.origin.Origin.TotalHits() != 0 {
		t.Errorf("routes reached the origin")
	}
	if _, err := New(Options{Config: e.cfg, Store: e.store, Origins: e.pool, Routes: []Route{{Path: "x"}}}); err == nil {
		t.Errorf("New with a bad route: no error")
	}
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.client.Get(e.url("/bytes/400000?rate=800KiB"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	body, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(body, demoBytes(400000, 0, 400000)) {
		t.Errorf("response in flight during Shutdown: %v, %d bytes", err, len(body))
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Errorf("the listener still accepts after Shutdown")
	}
}

func TestTraceparentHonored(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(oldTP)
		otel.SetTextMapPropagator(oldProp)
		tp.Shutdown(context.Background())
	})
	e := newEnv(t, nil)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	e.get("/bytes/100", "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	waitFor(t, "the fill span", func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "edge.fill" {
				return true
			}
		}
		return false
	})
	var server sdktrace.ReadOnlySpan
	names := map[string]bool{}
	for _, s := range rec.Ended() {
		names[s.Name()] = true
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %s has trace %s, want the incoming %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		if s.Name() == "GET" {
			server = s
		}
	}
	if server == nil || !names["edge.fetch"] || !names["edge.fill"] {
		t.Fatalf("spans %v: want GET, edge.fetch, edge.fill", names)
	}
	attrs := map[string]string{}
	for _, a := range server.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/bytes/100", "http.response.status_code": "200",
		"cache.status": "miss", "edge.site": "demo"} {
		if attrs[k] != want {
			t.Errorf("server span %s = %q, want %q", k, attrs[k], want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Telemetry.AccessLog = true })
	e.get("/bytes/10?x=1")
	if !strings.Contains(e.logs.String(), `msg=access`) || !strings.Contains(e.logs.String(), `target="/bytes/10?x=1"`) {
		t.Errorf("no access log line:\n%s", e.logs.String())
	}
}

// urgencyGate records urgency with the bytes served (UrgencyGate).
type urgencyGate struct {
	gate
	urgent []string
}

func (g *urgencyGate) ServedUrgent(id, site, url string, n int64, urgent bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.urgent = append(g.urgent, fmt.Sprintf("%s %d urgent=%v", id, n, urgent))
}

func TestUrgencyGate(t *testing.T) {
	g := &urgencyGate{}
	e := newEnv(t, nil, func(_ *config.Config, o *Options) { o.Sessions = g })
	e.get("/bytes/300", SessionHeader, "s1", UrgentHeader, "1")
	e.get("/bytes/300?pa_session=s2")
	waitFor(t, "ServedUrgent calls", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.urgent) == 2 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if got, want := strings.Join(g.urgent, "|"), "s1 300 urgent=true|s2 300 urgent=false"; got != want || len(g.served) != 0 {
		t.Errorf("ServedUrgent calls %q, want %q (and no Served calls: %q)", got, want, g.served)
	}
}

// TestUnreadableRequestsCounted: answers to requests the edge could not
// read (431, 408 for a client too slow to send its request, 400) are
// counted like every other answer (edge_requests_total, /stats).
func TestUnreadableRequestsCounted(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Limits.ReadTimeout = config.Duration(300 * time.Millisecond) })
	byStatus := func(status int) int64 {
		var n int64
		for k, a := range *e.srv.tel.attrs.Load() {
			if k.status == status {
				n += a.requests.Load()
				if k.method != "_OTHER" {
					t.Errorf("a %d counted with method %q, want _OTHER (the request was not read)", status, k.method)
				}
			}
		}
		return n
	}
	if status, _ := e.raw("GET /bytes/10 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"); status != "431" {
		t.Fatalf("oversized header: %s", status)
	}
	if status, _ := e.raw("GET /bytes/10 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"); status != "400" {
		t.Fatalf("malformed header: %s", status)
	}
	if b, _ := sendUnfinishedRequest(t, e); !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("slow request: %q", b)
	}
	waitFor(t, "the 408 counted", func() bool { return byStatus(408) == 1 })
	// The 408 is timed from the connection's accept: at least the read
	// timeout (300 ms), not the moment the answer was written.
	for k, a := range *e.srv.tel.attrs.Load() {
		if k.status == 408 {
			var dp metricdata.HistogramDataPoint[float64]
			a.duration.dataPoint(&dp)
			if dp.Count != 1 || dp.Sum < 0.25 {
				t.Errorf("408 duration: %d answers, %.3f s in all; want 1 of at least 0.25 s", dp.Count, dp.Sum)
			}
		}
	}
	for _, status := range []int{431, 400} {
		if got := byStatus(status); got != 1 {
			t.Errorf("requests answered %d: %d, want 1", status, got)
		}
	}
	if st := e.srv.Stats(); st.Requests != 3 {
		t.Errorf("/stats requests = %d, want 3", st.Requests)
	}
}
