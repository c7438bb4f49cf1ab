// Package edge is the edge box's HTTP server: a caching reverse proxy
// (RFC 9110/9111) for configured sites in front of their origins, on
// fasthttp, with the chunk store of package cache underneath.
//
// Client connections are served by epoll event loops on Linux
// (loop_linux.go; event_loops in the configuration): a request answered
// without waiting (a hit in memory, a 304, a refusal) is answered on its
// loop; one that waits (origin, disk) runs on a goroutine of its own;
// requests with a body, upgrades and HTTP/1.0 connections are fasthttp's.
//
// One request goes: limits (connections, header size, timeouts) -> request
// target normalized once (target.go) -> routes (hooks.go, the manifest
// endpoint) -> site by Host and path prefix (routing.go) -> method -> the
// peer-assist session gate -> the cache (proxy.go): a fresh hit is written
// from the store's chunk buffers without copying; a miss is fetched once
// however many clients ask (collapsing) and streamed to all of them while it
// fills; stale objects are revalidated, or served while revalidating or
// when the origin fails where RFC 5861 allows.
//
// The admin listener (admin.go) serves purge, health, readiness, stats and
// /metrics.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/cache"
)

// Options configure New. Config, Store and Origins are required.
type Options struct {
	// Config is the validated configuration; Reload replaces it.
	Config *config.Config
	// Store is the chunk store the cache lives in. The caller opens and
	// closes it (after Shutdown).
	Store *cache.Store
	// Origins fetches from the sites' upstreams (*origin.Pool).
	Origins Origins
	// Routes are mounted on the public listener before site routing.
	Routes []Route
	// Sessions is asked about requests carrying a peer-assist session;
	// nil means no peer assistance (such requests are served normally).
	Sessions SessionGate
	// Metrics serves GET /metrics on the admin listener; nil answers 404.
	Metrics fasthttp.RequestHandler
	// Logger receives errors and, when telemetry.access_log is on, one
	// line per request. nil means slog.Default().
	Logger *slog.Logger
}

// Server is the edge HTTP server. Create it with New; the zero value is not
// usable. It is safe for concurrent use: Serve and ServeAdmin may run on
// several listeners at once, and Reload and Shutdown may be called from
// any goroutine.
type Server struct {
	store    *cache.Store
	origins  Origins
	routes   []Route
	sessions SessionGate
	metrics  fasthttp.RequestHandler
	log      *slog.Logger
	tel      *telemetry
	// tracer is the global provider's when New ran (the edge binary
	// installs the SDK first), so spans skip the global delegate.
	tracer trace.Tracer

	tbl atomic.Pointer[table]

	// baseCtx is the parent of origin fetches and fills: they outlive the
	// request that started them, and end only at Shutdown.
	baseCtx    context.Context
	baseCancel context.CancelFunc
	fills      sync.WaitGroup // body copies into the store in flight

	flights flightGroup
	metas   *lru.Cache[metaKey, metaEntry] // decoded ObjectInfo.HTTP
	passes  *lru.Cache[string, passEntry]  // hit-for-pass: primary key -> until when, why
	// passesUntil is the latest expiry (Unix ns) of an entry of passes.
	passesUntil atomic.Int64

	conns connTracker
	stats counters
	// loops serve client connections (loop_linux.go); nil when
	// event_loops is -1 or the platform has none: fasthttp serves them.
	loops *loopSet

	// Timeouts (timeouts.go): the sweeper's clock and its goroutine.
	created     time.Time
	clockMs     atomic.Int64
	sweeperDone sync.WaitGroup

	mu        sync.Mutex
	gens      []*generation  // fasthttp servers; the last one gets new connections
	listeners []net.Listener // public listeners being served
	adminSrv  []*fasthttp.Server
	adminLns  []net.Listener
	shutdown  bool
	publicUp  atomic.Int32 // public listeners accepting
	// sweepStop ends the sweeper once Shutdown has stopped serving: until
	// then timeouts still apply, so a slow client cannot hold a shutdown
	// for its whole grace period.
	sweepStop chan struct{}
}

// New returns a server for opts. It does not listen: call Serve and
// ServeAdmin with listeners.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Config == nil:
		return nil, errors.New("edge: Options.Config is required")
	case opts.Store == nil:
		return nil, errors.New("edge: Options.Store is required")
	case opts.Origins == nil:
		return nil, errors.New("edge: Options.Origins is required")
	}
	tbl, err := newTable(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	for i, r := range opts.Routes {
		if r.Path == "" || r.Path[0] != '/' || r.Handler == nil {
			return nil, fmt.Errorf("edge: Options.Routes[%d]: path %q must start with / and have a handler", i, r.Path)
		}
	}
	s := &Server{
		store:     opts.Store,
		origins:   opts.Origins,
		sessions:  opts.Sessions,
		metrics:   opts.Metrics,
		log:       opts.Logger,
		sweepStop: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.metas, _ = lru.New[metaKey, metaEntry](metaCacheEntries)
	s.passes, _ = lru.New[string, passEntry](passCacheEntries)
	s.routes = opts.Routes
	s.tbl.Store(tbl)
	s.tel = newTelemetry(s)
	s.tracer = otel.Tracer(instrumentationName)
	s.conns.init()
	s.created = time.Now()
	if n := opts.Config.EventLoops; n >= 0 && loopsSupported {
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		ls, err := newLoopSet(s, n)
		if err != nil {
			// Serving still works without them: say so and go on.
			s.log.Warn("edge: event loops unavailable; a goroutine serves each connection", "error", err)
		} else {
			s.loops = ls
		}
	}
	return s, nil
}

const (
	metaCacheEntries = 1 << 16
	passCacheEntries = 1 << 14
)

// Handler returns the public request handler (what Serve serves), for
// embedding the edge in another fasthttp server or for tests. Connection
// limits are not applied to it.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Reload applies a new configuration: sites, limits and cache policy are
// swapped atomically; requests in flight finish on the old ones.
// Connection caps and max_object_bytes apply at once; new read/write/idle
// timeouts and max_header_bytes apply to connections accepted after the
// reload (existing keep-alive connections keep theirs until they close).
// Listen addresses and cache sizes are not reloadable; the origin pool is
// reloaded by its owner.
func (s *Server) Reload(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("edge: Reload: nil config")
	}
	tbl, err := newTable(cfg)
	if err != nil {
		return fmt.Errorf("edge: reload: %w", err)
	}
	s.tbl.Store(tbl)
	s.log.Info("edge: configuration reloaded", "sites", len(tbl.sites), "file", cfg.File)
	return nil
}

// Serve accepts connections on ln and serves them until Shutdown (then it
// returns nil) or an accept error. It may be called for several
// listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.publicUp.Add(1)
	defer s.publicUp.Add(-1)

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isShutdown() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("edge: accept", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("edge: accepting on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accept(c)
	}
}

// accept applies the connection limits and hands c to the current
// generation's fasthttp server.
func (s *Server) accept(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(3 * time.Minute)
	}
	ip := remoteAddr(c)
	// A reload may retire the generation between choosing and delivering:
	// then try the new one.
	for range 3 {
		tbl := s.tbl.Load()
		g := s.generation(tbl)
		if g == nil {
			break
		}
		if reason := s.conns.acquire(c, ip, g, tbl.cfg.Limits, s.nowMs()); reason != "" {
			s.stats.connsRejected.Add(1)
			rejectConn(c, reason)
			return
		}
		if s.loops != nil && s.loops.add(c, s.conns.entry(c)) {
			s.stats.connsAccepted.Add(1)
			return
		}
		if g.ln.deliver(c) {
			s.stats.connsAccepted.Add(1)
			return
		}
		s.conns.release(c)
	}
	c.Close()
}

// rejectConn answers a connection over a limit with 503 and closes it. The
// client has not sent its request yet; answering first is allowed (RFC 9112
// sec. 9.6) and tells it why, rather than a bare reset.
func rejectConn(c net.Conn, reason string) {
	msg := "edge: " + reason + "\n"
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nAge: 0\r\n"+
		"Cache-Status: edge; fwd=bypass; detail=connection-limit\r\nAccess-Control-Allow-Origin: *\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	c.Close()
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// Shutdown stops the server gracefully: listeners close, idle keep-alive
// connections close, requests in flight finish (responses carry
// "Connection: close"), then fills still copying into the store finish.
// When ctx ends first, remaining connections are closed and fills aborted,
// and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	s.tel.unregister() // its histograms leave /metrics with it
	lns := s.listeners
	gens := s.gens
	admins := s.adminSrv
	adminLns := s.adminLns
	s.mu.Unlock()

	for _, ln := range lns {
		ln.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(gens)+len(admins)+1)
	for _, g := range gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- g.stop(ctx)
		}()
	}
	if s.loops != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.loops.stop(ctx)
		}()
	}
	for _, a := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- a.ShutdownWithContext(ctx)
		}()
	}
	wg.Wait()
	// An admin Serve that had not started when its server was shut down
	// would start on an open listener: close them all (again).
	for _, ln := range adminLns {
		ln.Close()
	}
	close(errs)
	var err error
	for e := range errs {
		if e != nil && err == nil {
			err = e
		}
	}
	if ctx.Err() != nil {
		// Out of time: cut what is left.
		s.conns.closeAll()
	}
	close(s.sweepStop)
	s.sweeperDone.Wait()

	// Fills: let them finish unless ctx ends first, then abort them.
	done := make(chan struct{})
	go func() {
		s.fills.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.baseCancel()
	<-done
	return err
}

// generation is one fasthttp.Server with one set of per-connection limits
// (timeouts, header buffer). Reload with new limits starts a new generation
// for new connections; older ones keep serving their connections and stop
// once the last one closes.
type generation struct {
	srv     *fasthttp.Server
	ln      *chanListener
	limits  config.Limits
	served  chan struct{} // closed when srv.Serve returned
	retired bool          // a newer generation takes new connections; guarded by connTracker.mu
	conns   int           // connections handed to it and still open; guarded by connTracker.mu
}

// generation returns the generation for tbl's limits, starting one if
// needed; nil after Shutdown.
func (s *Server) generation(tbl *table) *generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil
	}
	lim := tbl.cfg.Limits
	if n := len(s.gens); n > 0 && sameConnLimits(s.gens[n-1].limits, lim) {
		return s.gens[n-1]
	}
	if len(s.gens) == 0 {
		s.tickClock()
		s.sweeperDone.Add(1)
		go s.sweep()
	}
	g := &generation{limits: lim, ln: newChanListener(), served: make(chan struct{})}
	g.srv = s.newFastServer(lim)
	live := s.gens[:0]
	for _, old := range s.gens {
		s.conns.retire(old)
		select {
		case <-old.served: // stopped: forget it
		default:
			live = append(live, old)
		}
	}
	s.gens = append(live, g)
	go func() {
		defer close(g.served)
		if err := g.srv.Serve(g.ln); err != nil {
			s.log.Error("edge: serving", "error", err)
		}
	}()
	return g
}

func sameConnLimits(a, b config.Limits) bool {
	return a.MaxHeaderBytes == b.MaxHeaderBytes && a.ReadTimeout == b.ReadTimeout &&
		a.WriteTimeout == b.WriteTimeout && a.IdleTimeout == b.IdleTimeout
}

// stop shuts the generation down gracefully within ctx.
func (g *generation) stop(ctx context.Context) error {
	g.ln.Close()
	err := g.srv.ShutdownWithContext(ctx)
	select {
	case <-g.served:
	case <-ctx.Done():
	}
	return err
}

func (s *Server) newFastServer(lim config.Limits) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.handleParseError,
		ConnState:    s.connState,
		Name:         "",
		// The whole request header must fit in the read buffer; a larger
		// one is answered 431 by the ErrorHandler.
		ReadBufferSize: int(lim.MaxHeaderBytes),
		// Read, write and idle timeouts are the sweeper's (timeouts.go),
		// not per-request socket deadlines.
		MaxRequestBodySize:           maxRequestBodyBytes,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fastLogger{s.log},
		// MaxConnections and MaxConnectionsPerIP are enforced at accept
		// (connTracker) so that a reload changes them for every generation.
		Concurrency: 1 << 20,
	}
}

// maxRequestBodyBytes bounds request bodies: GET and HEAD carry none, and
// routes (signaling, reports) take small JSON documents.
const maxRequestBodyBytes = 1 << 20

// fastLogger sends fasthttp's own messages to slog at debug level: they
// are about single bad clients (the handler logs what matters).
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}

// chanListener is a net.Listener fed by Server.accept: it lets several
// fasthttp servers (generations) share one real listener. Safe for
// concurrent use.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// deliver hands c to the generation; false if it was closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// connTracker counts open connections, in total, per client address and
// per generation, and remembers them so that Shutdown can close the rest
// and the sweeper can time them out. Its zero value is not usable (call
// init); it is safe for concurrent use.
type connTracker struct {
	mu    sync.Mutex
	open  map[net.Conn]*connEntry
	perIP map[netip.Addr]int
	// byConn holds the entries of open too, for lookups without the lock
	// on every request (timeouts.go).
	byConn sync.Map
}

func (t *connTracker) init() {
	t.open = map[net.Conn]*connEntry{}
	t.perIP = map[netip.Addr]int{}
}

// acquire registers c, to be served by g, unless a limit is reached; it
// returns the reason for refusing it, or "". nowMs starts its first phase.
func (t *connTracker) acquire(c net.Conn, ip netip.Addr, g *generation, lim config.Limits, nowMs int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if lim.MaxConnections > 0 && len(t.open) >= lim.MaxConnections {
		return "too many connections"
	}
	if lim.MaxConnectionsPerIP > 0 && t.perIP[ip] >= lim.MaxConnectionsPerIP {
		return "too many connections from your address"
	}
	e := &connEntry{c: c, ip: ip, gen: g}
	e.set(phaseNew, nowMs)
	t.open[c] = e
	t.byConn.Store(c, e)
	t.perIP[ip]++
	g.conns++
	return ""
}

// release forgets c. A retired generation whose last connection this was
// is stopped.
func (t *connTracker) release(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.open[c]
	if !ok {
		return
	}
	delete(t.open, c)
	t.byConn.Delete(c)
	if t.perIP[e.ip] <= 1 {
		delete(t.perIP, e.ip)
	} else {
		t.perIP[e.ip]--
	}
	e.gen.conns--
	if e.gen.retired && e.gen.conns == 0 {
		e.gen.ln.Close()
	}
}

// retire marks g as no longer taking connections, and stops it if it has
// none left.
func (t *connTracker) retire(g *generation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g.retired = true
	if g.conns == 0 {
		g.ln.Close()
	}
}

func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

// deliver hands a connection of an event loop, known to the tracker as
// key and now nc, to its generation's fasthttp server for good.
func (s *Server) deliver(key, nc net.Conn) bool {
	e := s.conns.rekey(key, nc)
	if e == nil {
		return false
	}
	if e.gen.ln.deliver(nc) {
		return true
	}
	s.conns.release(nc)
	return false
}

// rekey makes the entry of key the entry of c, served by fasthttp.
func (t *connTracker) rekey(key, c net.Conn) *connEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.open[key]
	if !ok {
		return nil
	}
	delete(t.open, key)
	t.byConn.Delete(key)
	e.c = c
	e.lc.Store(nil)
	t.open[c] = e
	t.byConn.Store(c, e)
	return e
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.open))
	for c, e := range t.open {
		if lc := e.lc.Load(); lc != nil {
			// An event loop's socket: cut under the lock, while the
			// descriptor is surely still the connection's (the loop
			// releases before it closes).
			lc.shutdownSocket()
			continue
		}
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// counters are the server's own statistics (for /stats) besides the
// per-request ones of telemetry.
type counters struct {
	connsAccepted, connsRejected atomic.Int64
	originBytes                  atomic.Int64
}
