package edge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
	"github.com/peerassist/edgebox/origin/demo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own background goroutines: the process-wide clock for
		// Date headers, and cleaners that exit on their next tick after
		// their server or client stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	)
}

// testEnv is an edge in front of a demo origin, all on loopback: the real
// store, the real origin pool and real sockets.
type testEnv struct {
	t      testing.TB
	origin *demo.Server
	store  *cache.Store
	pool   *origin.Pool
	srv    *Server
	cfg    *config.Config
	addr   string // public listener
	admin  string // admin listener
	client *http.Client
	logs   *syncBuffer
}

type envOption func(*config.Config, *Options)

// newEnv starts an edge for one site "demo" (any host) in front of a demo
// origin whose handler is wrapped by wrap (if not nil).
func newEnv(t testing.TB, wrap func(fasthttp.RequestHandler) fasthttp.RequestHandler, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := demo.New(demo.Options{Logger: logger})
	h := fasthttp.RequestHandler(o.Handler)
	if wrap != nil {
		h = wrap(h)
	}
	e.origin = demo.ServeHandler(ln, o, h)

	cfg := config.Default()
	cfg.Sites = []config.Site{config.NewSite("demo", e.origin.URL())}
	cfg.Origin.ResponseTimeout = config.Duration(2 * time.Second)
	cfg.Origin.ReadTimeout = config.Duration(2 * time.Second)
	cfg.Origin.Retries = 0
	cfg.Cache.ChunkBytes = 64 << 10
	cfg.Cache.MemoryBytes = 64 << 20
	eo := Options{Logger: logger}
	for _, opt := range opts {
		opt(&cfg, &eo)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	e.cfg = &cfg
	e.store, err = openStore(&cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	e.pool, err = origin.NewPool(cfg.Origin, cfg.Sites, origin.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	eo.Config, eo.Store, eo.Origins = &cfg, e.store, e.pool
	e.srv, err = New(eo)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr, e.admin = pub.Addr().String(), adm.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := e.srv.Serve(pub); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := e.srv.ServeAdmin(adm); err != nil {
			t.Errorf("ServeAdmin: %v", err)
		}
	}()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}
	e.client = &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
		e.pool.Close()
		e.origin.Kill()
		e.origin.Close()
		e.store.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *testEnv) url(path string) string { return "http://" + e.addr + path }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) get(k string) string { return r.header.Get(k) }

// do sends a request to the edge; headers alternate names and values.
func (e *testEnv) do(method, path string, headers ...string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(path), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (e *testEnv) get(path string, headers ...string) *response {
	e.t.Helper()
	return e.do(http.MethodGet, path, headers...)
}

// getSettled is get that then waits until the edge has no fill of the
// target in flight: a client reads the whole body of a miss before the fill
// commits, and a response stale on arrival (max-age=0, Expires in the past)
// is not served from its fill, so a test that expects the next request to
// find the stored version must wait for the commit first.
func (e *testEnv) getSettled(path string, headers ...string) *response {
	e.t.Helper()
	r := e.get(path, headers...)
	key := e.cacheKey(path)
	waitFor(e.t, "the fill of "+path, func() bool {
		_, inFlight := e.store.InFlight(key)
		return !inFlight
	})
	return r
}

// cacheKey is the store key of path on the demo site (without Vary).
func (e *testEnv) cacheKey(path string) string {
	e.t.Helper()
	var tgt target
	if err := tgt.parse([]byte(path)); err != nil {
		e.t.Fatalf("cache key of %s: %v", path, err)
	}
	return "demo\x00" + string(tgt.pathQuery())
}

// raw sends raw bytes on a new connection and returns the status line and
// the whole response until the edge closes or stops sending.
func (e *testEnv) raw(req string) (statusLine string, all string) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		e.t.Fatalf("writing raw request: %v", err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		e.t.Fatalf("raw request %q: reading response: %v", trunc(req), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var b bytes.Buffer
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.Write(&b)
	return fmt.Sprintf("%d", resp.StatusCode), b.String()
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// demoBytes returns the bytes of /bytes/n [off, off+len).
func demoBytes(n, off, length int64) []byte {
	b := make([]byte, length)
	demo.Bytes(n, off, b)
	return b
}

// adminDo sends a request to the admin listener.
func (e *testEnv) adminDo(method, path string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.admin+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ = os.Getenv

// openStore opens the chunk store a configuration describes.
func openStore(cfg *config.Config, logger *slog.Logger) (*cache.Store, error) {
	return cache.Open(cache.Options{ChunkBytes: int(cfg.Cache.ChunkBytes), MemoryBytes: int64(cfg.Cache.MemoryBytes),
		DiskPath: cfg.Cache.DiskPath, DiskBytes: int64(cfg.Cache.DiskBytes), NoFsync: true,
		MaxObjectBytes: int64(cfg.Limits.MaxObjectBytes), Logger: logger})
}
