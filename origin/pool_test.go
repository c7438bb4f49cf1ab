package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's background loops notice a stop only after a sleep.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"))
}

// recorder wraps a demo origin to keep the headers of the last request.
type recorder struct {
	*demo.Server
	mu          sync.Mutex
	host        string
	traceparent string
	uri         string
}

func startOrigin(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	o := demo.New(demo.Options{})
	r.Server = demo.ServeHandler(ln, o, func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.host = string(ctx.Host())
		r.traceparent = string(ctx.Request.Header.Peek("traceparent"))
		r.uri = string(ctx.RequestURI())
		r.mu.Unlock()
		o.Handler(ctx)
	})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func (r *recorder) last() (host, traceparent, uri string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.host, r.traceparent, r.uri
}

func testConfig() config.Origin {
	c := config.DefaultOrigin()
	c.ConnectTimeout = config.Duration(time.Second)
	c.ResponseTimeout = config.Duration(2 * time.Second)
	c.ReadTimeout = config.Duration(2 * time.Second)
	c.FailThreshold = 2
	return c
}

func newPool(t *testing.T, cfg config.Origin, sites ...config.Site) *Pool {
	t.Helper()
	p, err := NewPool(cfg, sites, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// get fetches path from site and returns status, body and result.
func get(t *testing.T, p *Pool, site, method, path string) (int, []byte, Result, error) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	res, err := p.Do(context.Background(), site, req, resp)
	if err != nil {
		return 0, nil, res, err
	}
	var body []byte
	if s := resp.BodyStream(); s != nil {
		body, err = io.ReadAll(s)
	}
	return resp.StatusCode(), body, res, err
}

func want(n int64) []byte {
	b := make([]byte, n)
	demo.Bytes(n, 0, b)
	return b
}

func TestDo(t *testing.T) {
	o := startOrigin(t)
	p := newPool(t, testConfig(),
		config.NewSite("plain", o.URL()),
		config.NewSite("prefixed", o.URL()+"/bytes/"))
	for _, tc := range []struct {
		site, method, path string
		status             int
		body               []byte
		originURI          string
	}{
		{"plain", "GET", "/bytes/1000", 200, want(1000), "/bytes/1000"},
		{"plain", "GET", "/bytes/10?x=%2F&y=1", 200, want(10), "/bytes/10?x=%2F&y=1"},
		{"prefixed", "GET", "/1000", 200, want(1000), "/bytes/1000"},
		{"plain", "HEAD", "/bytes/1000", 200, nil, "/bytes/1000"},
		{"plain", "GET", "/missing", 404, nil, "/missing"},
		{"plain", "POST", "/bytes/10", 405, nil, "/bytes/10"},
	} {
		status, body, res, err := get(t, p, tc.site, tc.method, tc.path)
		if err != nil {
			t.Errorf("%s %s %s: %v", tc.site, tc.method, tc.path, err)
			continue
		}
		if status != tc.status || (tc.body != nil && !bytes.Equal(body, tc.body)) {
			t.Errorf("%s %s %s = %d, %d bytes; want %d, %d bytes", tc.site, tc.method, tc.path, status, len(body), tc.status, len(tc.body))
		}
		host, _, uri := o.last()
		if host != o.Addr() || uri != tc.originURI {
			t.Errorf("%s %s: origin saw Host %q URI %q; want %q %q", tc.site, tc.path, host, uri, o.Addr(), tc.originURI)
		}
		if res.Origin == "" || res.Attempts != 1 {
			t.Errorf("%s %s: result %+v, want one attempt", tc.site, tc.path, res)
		}
	}
	if _, _, _, err := get(t, p, "nosuch", "GET", "/"); !errors.Is(err, ErrUnknownSite) {
		t.Errorf("unknown site: %v, want ErrUnknownSite", err)
	}
}

func TestErrors(t *testing.T) {
	o := startOrigin(t)
	// A port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	// A server that answers garbage.
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("SPDY/9 what\r\n\r\n"))
			c.Close()
		}
	}()
	defer wg.Wait()
	defer garbage.Close()

	cfg := testConfig()
	cfg.ResponseTimeout = config.Duration(200 * time.Millisecond)
	cfg.Retries = 0
	p := newPool(t, cfg,
		config.NewSite("ok", o.URL()),
		config.NewSite("dead", dead),
		config.NewSite("garbage", "http://"+garbage.Addr().String()))
	for _, tc := range []struct {
		site, path string
		kind       error
		status     int
	}{
		{"dead", "/", ErrConnect, 502},
		{"ok", "/bytes/1?delay=1s", ErrTimeout, 504},
		{"garbage", "/", ErrBadResponse, 502},
		{"nosuch", "/", ErrUnknownSite, 502},
	} {
		_, _, _, err := get(t, p, tc.site, "GET", tc.path)
		var oe *Error
		if !errors.Is(err, tc.kind) || !errors.As(err, &oe) || StatusCode(err) != tc.status || oe.Timeout() != (tc.kind == ErrTimeout) {
			t.Errorf("%s %s: err %v (status %d); want kind %v, status %d", tc.site, tc.path, err, StatusCode(err), tc.kind, tc.status)
		}
	}
	// A context deadline shorter than ResponseTimeout is a timeout too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/bytes/1?delay=150ms")
	if _, err := p.Do(ctx, "ok", req, resp); !errors.Is(err, ErrTimeout) {
		t.Errorf("context deadline: %v, want ErrTimeout", err)
	}
	req.SetRequestURI("*")
	if _, err := p.Do(context.Background(), "ok", req, resp); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("URI *: %v, want ErrInvalidRequest", err)
	}
}

func TestFailoverToMirrors(t *testing.T) {
	a, b, c := startOrigin(t), startOrigin(t), startOrigin(t)
	cfg := testConfig()
	p := newPool(t, cfg, config.NewSite("s", a.URL(), b.URL(), c.URL()))

	// Warm all three, then kill a: every request still succeeds.
	for i := range 30 {
		if status, body, _, err := get(t, p, "s", "GET", fmt.Sprintf("/bytes/%d", 100+i)); err != nil || status != 200 || !bytes.Equal(body, want(int64(100+i))) {
			t.Fatalf("warm-up request %d: %d %v", i, status, err)
		}
	}
	a.Kill()
	retried := 0
	for i := range 30 {
		status, _, res, err := get(t, p, "s", "GET", "/bytes/10")
		if err != nil || status != 200 {
			t.Fatalf("request %d after kill: %d %v", i, status, err)
		}
		if res.Origin == a.URL() {
			t.Errorf("request %d answered by the killed origin", i)
		}
		if res.Attempts > 1 {
			retried++
		}
	}
	// Each failure before the origin is marked down costs a retry, and so
	// may a trial if this loop outlasts the trial backoff.
	if retried > cfg.FailThreshold+2 {
		t.Errorf("%d requests needed a retry; the dead origin should be down after %d failures", retried, cfg.FailThreshold)
	}
	if st := statusOf(p, a.URL()); st.Up {
		t.Errorf("killed origin still up: %+v", st)
	}

	// b starts failing with 503: GETs move to c, each answered 200.
	if err := b.Origin.SetFaults(demo.Faults{Status: 503}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		status, _, res, err := get(t, p, "s", "GET", "/bytes/10")
		if err != nil || status != 200 || res.Origin != c.URL() {
			t.Fatalf("request %d with b failing: %d %+v %v; want 200 from c", i, status, res, err)
		}
	}
	if st := statusOf(p, b.URL()); st.Up {
		t.Errorf("origin answering 503 still up: %+v", st)
	}
}

func statusOf(p *Pool, url string) OriginStatus {
	for _, s := range p.Status() {
		if s.URL == url {
			return s
		}
	}
	return OriginStatus{}
}

func TestRetriesOnlyIdempotent(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	for _, o := range []*recorder{a, b} {
		if err := o.Origin.SetFaults(demo.Faults{Status: 503}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.FailThreshold = 100 // keep both up
	p := newPool(t, cfg, config.NewSite("s", a.URL(), b.URL()))
	for _, tc := range []struct {
		method   string
		attempts int
	}{
		{"POST", 1}, {"PUT", 1}, {"DELETE", 1},
		{"GET", 2}, {"HEAD", 2}, // one retry on the other mirror, none more: no third origin
	} {
		before := a.Origin.TotalHits() + b.Origin.TotalHits()
		status, _, res, err := get(t, p, "s", tc.method, "/bytes/10")
		hits := a.Origin.TotalHits() + b.Origin.TotalHits() - before
		if err != nil || status != 503 || res.Attempts != tc.attempts || hits != int64(tc.attempts) {
			t.Errorf("%s: status %d, %d attempts, %d origin hits, err %v; want 503 after %d", tc.method, status, res.Attempts, hits, err, tc.attempts)
		}
	}

	// Connection errors: a POST is not retried, a GET is (on the same
	// origin when it is the only one).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p2 := newPool(t, cfg, config.NewSite("dead", dead))
	if _, _, res, err := get(t, p2, "dead", "POST", "/"); !errors.Is(err, ErrConnect) || res.Attempts != 1 {
		t.Errorf("POST to a dead origin: %+v %v; want ErrConnect after 1 attempt", res, err)
	}
	if _, _, res, err := get(t, p2, "dead", "GET", "/"); !errors.Is(err, ErrConnect) || res.Attempts != 1+cfg.Retries {
		t.Errorf("GET to a dead origin: %+v %v; want ErrConnect after %d attempts", res, err, 1+cfg.Retries)
	}
}

func TestPassiveHealth(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	cfg := testConfig()
	cfg.FailThreshold = 2
	p := newPool(t, cfg, config.NewSite("s", a.URL(), b.URL()))
	if err := a.Origin.SetFaults(demo.Faults{Status: 502}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if status, _, _, err := get(t, p, "s", "GET", "/bytes/1"); err != nil || status != 200 {
			t.Fatalf("GET with one mirror failing: %d %v", status, err)
		}
	}
	st := statusOf(p, a.URL())
	if st.Up || st.ConsecutiveFailures < 2 || !strings.Contains(st.LastError, "502") {
		t.Fatalf("after failures: %+v; want down with the last error", st)
	}
	hitsWhileDown := a.Origin.TotalHits()
	start := time.Now()
	for range 5 {
		get(t, p, "s", "GET", "/bytes/1")
	}
	// (Unless the machine is so slow that the trial came due.)
	if got := a.Origin.TotalHits(); got != hitsWhileDown && time.Since(start) < trialBackoffMin/2 {
		t.Errorf("down origin got %d requests before its trial was due", got-hitsWhileDown)
	}
	// Healed: after the trial backoff one request goes to a and brings it
	// back.
	if err := a.Origin.SetFaults(demo.Faults{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(trialBackoffMin + 100*time.Millisecond)
	_, _, res, err := get(t, p, "s", "GET", "/bytes/1")
	if err != nil || res.Origin != a.URL() {
		t.Errorf("first request after the backoff: %+v %v; want the trial on %s", res, err, a.URL())
	}
	if st := statusOf(p, a.URL()); !st.Up {
		t.Errorf("after a successful trial: %+v; want up", st)
	}
}

func TestActiveHealth(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	cfg := testConfig()
	cfg.FailThreshold = 1
	cfg.HealthCheck = config.HealthCheck{Path: "/healthz", Interval: config.Duration(30 * time.Millisecond), Timeout: config.Duration(500 * time.Millisecond)}
	p := newPool(t, cfg, config.NewSite("s", a.URL(), b.URL()))
	waitFor(t, "probes reach the origins", func() bool { return a.Origin.Hits("/healthz") > 0 && b.Origin.Hits("/healthz") > 0 })
	if err := a.Origin.SetFaults(demo.Faults{Status: 503}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a marked down by its probe", func() bool { return !statusOf(p, a.URL()).Up })
	for range 10 {
		if _, _, res, err := get(t, p, "s", "GET", "/bytes/1"); err != nil || res.Origin != b.URL() {
			t.Fatalf("with a down: %+v %v; want b", res, err)
		}
	}
	if err := a.Origin.SetFaults(demo.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a back up by its probe", func() bool { return statusOf(p, a.URL()).Up })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWeightsAndLoad(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	s := config.NewSite("s", a.URL(), b.URL())
	s.Origins[1].Weight = 3
	p := newPool(t, testConfig(), s)
	const n = 400
	for range n {
		if _, _, _, err := get(t, p, "s", "GET", "/bytes/1"); err != nil {
			t.Fatal(err)
		}
	}
	// Light load follows the weights (1:3), within a wide margin.
	if hb := b.Origin.Hits("/bytes/1"); hb < n*3/4-60 || hb > n*3/4+60 {
		t.Errorf("weight 3 origin got %d of %d sequential requests, want about %d", hb, n, n*3/4)
	}

	// Load: with a slow, requests in flight there steer new ones to b.
	// (The exact split depends on the machine's speed; pick's rule is
	// checked exactly in TestPickByLoad.)
	a2, b2 := startOrigin(t), startOrigin(t)
	if err := a2.Origin.SetFaults(demo.Faults{Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, testConfig(), config.NewSite("s", a2.URL(), b2.URL()))
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, _, err := get(t, p2, "s", "GET", "/bytes/1"); err != nil {
				failed.Add(1)
			}
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if ha, hb := a2.Origin.TotalHits(), b2.Origin.TotalHits(); failed.Load() > 0 || ha >= hb {
		t.Errorf("slow origin got %d, fast one %d of 20 overlapping requests (%d failed); want most on the fast one", ha, hb, failed.Load())
	}
}

func TestPickByLoad(t *testing.T) {
	mk := func(url string, weight int, outstanding int64) member {
		st := &originState{url: url}
		st.outstanding.Store(outstanding)
		return member{up: &upstream{state: st, base: url}, weight: weight}
	}
	for _, tc := range []struct {
		name    string
		members []member
		want    string // always picked
	}{
		{"fewer in flight", []member{mk("a", 1, 5), mk("b", 1, 0)}, "b"},
		{"per unit of weight", []member{mk("a", 1, 2), mk("b", 3, 3)}, "b"},
		{"weight cannot beat load", []member{mk("a", 10, 50), mk("b", 1, 1)}, "b"},
	} {
		s := &site{members: tc.members}
		for range 200 {
			if u, trial := s.pick(nil, time.Now()); u == nil || u.base != tc.want || trial {
				t.Fatalf("%s: picked %v (trial %v), want %s", tc.name, u, trial, tc.want)
			}
		}
	}
	// Tried origins are avoided while another is up; a down origin is
	// skipped until its trial is due, then picked once as the trial.
	a, b := mk("a", 1, 0), mk("b", 1, 0)
	s := &site{members: []member{a, b}}
	if u, _ := s.pick([]*upstream{a.up}, time.Now()); u != b.up {
		t.Errorf("retry picked %v, want the untried b", u.base)
	}
	now := time.Now()
	for range 2 {
		b.up.state.failure(now, 2, "test")
	}
	if u, _ := s.pick(nil, now); u != a.up {
		t.Errorf("with b down picked %s, want a", u.base)
	}
	later := now.Add(trialBackoffMin)
	if u, trial := s.pick(nil, later); u != b.up || !trial {
		t.Errorf("after the backoff picked %s (trial %v), want b's trial", u.base, trial)
	}
	if u, trial := s.pick(nil, later); u != a.up || trial {
		t.Errorf("while b's trial runs picked %s (trial %v), want a", u.base, trial)
	}
	b.up.state.failure(later, 2, "trial failed")
	if u, _ := s.pick(nil, later.Add(trialBackoffMin)); u != a.up {
		t.Errorf("after a failed trial the backoff doubles; picked %s", u.base)
	}
	if u, trial := s.pick(nil, later.Add(2*trialBackoffMin)); u != b.up || !trial {
		t.Errorf("after the doubled backoff picked %s (trial %v), want b's trial", u.base, trial)
	}
	b.up.state.success(later)
	if !b.up.state.isUp() {
		t.Error("b not up after a successful trial")
	}
}

func TestTraceparent(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	}()
	o := startOrigin(t)
	p := newPool(t, testConfig(), config.NewSite("s", o.URL()))

	ctx, parent := tp.Tracer("test").Start(context.Background(), "edge request")
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/bytes/5")
	req.Header.Set("traceparent", "00-11111111111111111111111111111111-2222222222222222-01") // from the client: replaced
	if _, err := p.Do(ctx, "s", req, resp); err != nil {
		t.Fatal(err)
	}
	_ = resp.CloseBodyStream()
	parent.End()

	var client sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil {
		t.Fatal("no client span recorded")
	}
	_, tpHeader, _ := o.last()
	wantTP := fmt.Sprintf("00-%s-%s-01", client.SpanContext().TraceID(), client.SpanContext().SpanID())
	if tpHeader != wantTP {
		t.Errorf("origin got traceparent %q, want %q (the attempt span)", tpHeader, wantTP)
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span parent %s, want %s", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range client.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{
		"http.request.method": "GET", "server.address": "127.0.0.1",
		"http.response.status_code": "200", "url.full": o.URL() + "/bytes/5",
	} {
		if attrs[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
}

// TestStreamingConstantMemory reads a body much larger than any buffer the
// pool may hold, and checks every byte and the heap.
func TestStreamingConstantMemory(t *testing.T) {
	o := startOrigin(t)
	cfg := testConfig()
	// The whole body takes longer than ResponseTimeout: only the header
	// phase may be bounded by it.
	cfg.ResponseTimeout = config.Duration(300 * time.Millisecond)
	p := newPool(t, cfg, config.NewSite("s", o.URL()))
	const size = 64 << 20

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(fmt.Sprintf("/bytes/%d", size))
	if _, err := p.Do(context.Background(), "s", req, resp); err != nil {
		t.Fatal(err)
	}
	body := resp.BodyStream()
	if body == nil || resp.Header.ContentLength() != size {
		t.Fatalf("no body stream or wrong length %d", resp.Header.ContentLength())
	}
	c := demo.NewContent(size, "")
	got, exp := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	var peak uint64
	for {
		n, err := io.ReadFull(body, got)
		if n > 0 {
			c.Fill(off, exp[:n])
			if !bytes.Equal(got[:n], exp[:n]) {
				t.Fatalf("body differs at chunk starting %d", off)
			}
			off += int64(n)
			if off%(8<<20) == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			// Slow down once, past the response timeout, to prove the
			// body is not bounded by it.
			if off == 1<<20 {
				time.Sleep(400 * time.Millisecond)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("reading body at %d: %v", off, err)
		}
	}
	_ = resp.CloseBodyStream()
	if off != size {
		t.Fatalf("read %d bytes, want %d", off, size)
	}
	if growth := int64(peak) - int64(before.HeapInuse); growth > 16<<20 {
		t.Errorf("heap grew by %d MiB while streaming %d MiB", growth>>20, size>>20)
	}
}

func TestReadTimeoutStalledBody(t *testing.T) {
	o := startOrigin(t)
	cfg := testConfig()
	cfg.ReadTimeout = config.Duration(200 * time.Millisecond)
	p := newPool(t, cfg, config.NewSite("s", o.URL()))
	// 1 byte/s: after the first byte the next is a second away.
	status, body, _, err := get(t, p, "s", "GET", "/bytes/100000?rate=1")
	if status != 200 || err == nil || !isTimeout(err) || len(body) >= 100000 {
		t.Errorf("stalled body: status %d, %d bytes, err %v; want a read timeout", status, len(body), err)
	}
}

func TestUpdate(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	cfg := testConfig()
	p := newPool(t, cfg, config.NewSite("s", a.URL()))

	// A slow body in flight on a survives the reload that removes a.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/bytes/300000?rate=1MiB")
	if _, err := p.Do(context.Background(), "s", req, resp); err != nil {
		t.Fatal(err)
	}

	cfg2 := cfg
	cfg2.ReadTimeout = config.Duration(3 * time.Second)
	if err := p.Update(cfg2, []config.Site{config.NewSite("s", b.URL()), config.NewSite("t", a.URL())}); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.BodyStream())
	if err != nil || !bytes.Equal(body, want(300000)) {
		t.Errorf("body in flight across reload: %d bytes, %v", len(body), err)
	}
	if _, _, res, err := get(t, p, "s", "GET", "/bytes/1"); err != nil || res.Origin != b.URL() {
		t.Errorf("after reload site s: %+v %v; want %s", res, err, b.URL())
	}
	if _, _, res, err := get(t, p, "t", "GET", "/bytes/1"); err != nil || res.Origin != a.URL() {
		t.Errorf("after reload site t: %+v %v; want %s", res, err, a.URL())
	}

	// A bad reload changes nothing and names the bad field.
	bad := []config.Site{{Name: "s", Origins: []config.SiteOrigin{{URL: "ftp://x"}}}, {Name: "s", Origins: []config.SiteOrigin{{URL: b.URL()}}}}
	err = p.Update(cfg2, bad)
	if err == nil || !strings.Contains(err.Error(), "sites[0].origins[0].url") || !strings.Contains(err.Error(), "sites[1].name") {
		t.Errorf("bad reload: %v; want errors naming sites[0].origins[0].url and sites[1].name", err)
	}
	if _, _, res, err := get(t, p, "s", "GET", "/bytes/1"); err != nil || res.Origin != b.URL() {
		t.Errorf("after a rejected reload: %+v %v", res, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := get(t, p, "s", "GET", "/bytes/1"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestNewPoolErrors(t *testing.T) {
	cfg := testConfig()
	bad := cfg
	bad.Retries = -1
	for _, tc := range []struct {
		cfg   config.Origin
		sites []config.Site
		want  string
	}{
		{bad, []config.Site{config.NewSite("s", "http://127.0.0.1:1")}, "origin.retries"},
		{cfg, []config.Site{config.NewSite("s", "http://127.0.0.1:1?x=1")}, "sites[0].origins[0].url"},
		{cfg, []config.Site{config.NewSite("s", "http://u:p@127.0.0.1:1")}, "sites[0].origins[0].url"},
		{cfg, []config.Site{config.NewSite("s", "http://127.0.0.1:1", "http://127.0.0.1:1")}, "sites[0].origins[1].url"},
		{cfg, []config.Site{config.NewSite("s")}, "sites[0].origins"},
		{cfg, []config.Site{config.NewSite("")}, "sites[0].name"},
	} {
		_, err := NewPool(tc.cfg, tc.sites, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewPool(%v) = %v, want an error naming %s", tc.sites, err, tc.want)
		}
	}
}

// TestBrokenBody: an origin that dies mid-body must surface as a read
// error, never as a clean short body, so that the edge aborts the fill.
func TestBrokenBody(t *testing.T) {
	o := startOrigin(t)
	p := newPool(t, testConfig(), config.NewSite("s", o.URL()))
	for _, k := range []int{0, 1000, 300000} {
		status, body, _, err := get(t, p, "s", "GET", fmt.Sprintf("/bytes/1000000?break_after=%d", k))
		if status != 200 || err == nil || len(body) != k || !bytes.Equal(body, want(1000000)[:k]) {
			t.Errorf("break_after=%d: status %d, %d bytes, err %v; want 200, the first %d bytes, then an error", k, status, len(body), err, k)
		}
	}
	// The connection was discarded: the next request works.
	if status, body, _, err := get(t, p, "s", "GET", "/bytes/100"); err != nil || status != 200 || len(body) != 100 {
		t.Errorf("after a broken body: %d, %d bytes, %v", status, len(body), err)
	}
}

// TestFailOpen: a site whose origins are all marked down still sends
// requests to one of them. Three 503s for one URL (the demo's ?status=)
// used to mark a site's only origin down, and every other object of the
// site got 502 "no healthy origin" until the trial came due (QA).
func TestFailOpen(t *testing.T) {
	a := startOrigin(t)
	cfg := testConfig()
	cfg.Retries = 0
	p := newPool(t, cfg, config.NewSite("one", a.URL()))
	for i := range cfg.FailThreshold {
		if status, _, _, err := get(t, p, "one", "GET", fmt.Sprintf("/bytes/10?status=503&n=%d", i)); err != nil || status != 503 {
			t.Fatalf("forced 503 %d: %d %v", i, status, err)
		}
	}
	if st := statusOf(p, a.URL()); st.Up {
		t.Fatalf("after %d 503s: %+v; want marked down", cfg.FailThreshold, st)
	}
	status, body, _, err := get(t, p, "one", "GET", "/bytes/6000")
	if err != nil || status != 200 || len(body) != 6000 {
		t.Fatalf("another object of the site with its only origin marked down: %d, %d bytes, %v; want 200 with 6000", status, len(body), err)
	}
	if st := statusOf(p, a.URL()); !st.Up {
		t.Errorf("after an answer: %+v; want up again", st)
	}

	// Two origins, both down: the one with fewer failures is asked.
	b, c := startOrigin(t), startOrigin(t)
	p2 := newPool(t, cfg, config.NewSite("two", b.URL(), c.URL()))
	for _, o := range []*recorder{b, c} {
		if err := o.Origin.SetFaults(demo.Faults{Status: 502}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 * cfg.FailThreshold {
		get(t, p2, "two", "GET", "/bytes/1")
	}
	if sb, sc := statusOf(p2, b.URL()), statusOf(p2, c.URL()); sb.Up || sc.Up {
		t.Fatalf("both failing: %+v %+v; want both down", sb, sc)
	}
	if err := c.Origin.SetFaults(demo.Faults{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Origin.SetFaults(demo.Faults{}); err != nil {
		t.Fatal(err)
	}
	if status, _, _, err := get(t, p2, "two", "GET", "/bytes/1"); err != nil || status != 200 {
		t.Errorf("both marked down, both healed: %d %v; want 200", status, err)
	}
}
