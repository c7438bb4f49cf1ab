package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/region"
)

// Locator maps a client address to its locality (region.Locator does).
type Locator interface {
	Locate(netip.Addr) region.Locality
}

// proxyAware is implemented by a Locator that also knows the trusted
// proxies (region.Locator does): it finds the client behind them from the
// socket's address and the request's headers.
type proxyAware interface {
	ClientAddr(remote netip.Addr, values func(name string) [][]byte) netip.Addr
}

// LocatorFunc adapts a function to Locator.
type LocatorFunc func(netip.Addr) region.Locality

// Locate calls f.
func (f LocatorFunc) Locate(a netip.Addr) region.Locality { return f(a) }

// Options configure a Coordinator.
type Options struct {
	// Config is the peer_assist section.
	Config config.PeerAssist
	// Sites are the configured sites: their hosts tell a browser's site
	// from its Origin, and their peer_assist settings apply to its swarms.
	Sites []config.Site
	// Region is the region this box serves (config region.name); peers
	// located elsewhere are treated as unknown. "" serves every region.
	Region string
	// Locator places client addresses. Required.
	Locator Locator
	// ClientAddr returns the client address of an upgrade request, honoring
	// trusted proxies. Nil uses the Locator's ClientAddr method when it has
	// one (region.Locator does), else the socket's remote address.
	ClientAddr func(ctx *fasthttp.RequestCtx) netip.Addr
	// Logger receives connection-level events (abuse, drops, bans). Nil
	// means slog.Default().
	Logger *slog.Logger
	// Seed makes routing's random choices reproducible (tests); 0 seeds
	// from crypto/rand.
	Seed uint64
	// Pollers is the number of epoll loops; 0 means one per 4 CPUs
	// (GOMAXPROCS), at least one (see defaultPollers).
	Pollers int
	// SweepInterval is how often timeouts are checked; 0 means 1s.
	SweepInterval time.Duration
	// NoEpoll forces one goroutine per connection (tests of the fallback).
	NoEpoll bool
}

// Errors returned by the policy seam.
var (
	ErrUnknownSession = errors.New("coordinator: unknown session")
	ErrNotConnected   = errors.New("coordinator: session has no live connection")
	ErrClosed         = errors.New("coordinator: closed")
)

// AdmitFunc decides whether the edge serves a request of a known session
// without a Limiter now (see edge.SessionGate.Admit). It must be fast and
// safe for concurrent use.
type AdmitFunc func(s SessionInfo, urgent bool) (ok bool, retryAfter time.Duration, reason string)

// Coordinator is the signaling server and session registry of one edge box.
// Its zero value is not usable: create it with New. It is safe for
// concurrent use. Close (or Shutdown) releases every socket and goroutine.
type Coordinator struct {
	locator Locator
	addrOf  func(*fasthttp.RequestCtx) netip.Addr
	log     *slog.Logger
	start   time.Time
	seed    uint64
	noEpoll bool
	tel     *telemetry
	admit   atomic.Pointer[AdmitFunc]
	// newLimiter makes the Limiter of a session that has none.
	newLimiter atomic.Pointer[NewLimiterFunc]

	// set holds the configuration; Reload swaps it whole (under mu, so
	// that code holding mu sees one). Read it once per message or
	// upgrade: a load, no lock.
	set atomic.Pointer[settings]

	mu       sync.Mutex // guards everything below and swarm/peer/session fields marked "mu"
	closed   bool
	draining bool // Shutdown began: no new connections
	swarms   map[swarmKey]*swarm
	conns    map[*conn]struct{}
	perIP    map[netip.Addr]int
	bans     map[banKey]time.Time
	byRegion map[string]int // peers per region, for the gauge
	connSeq  uint64
	markGen  uint64 // peer selection generations (see handlerCtx.pick)

	// sessions maps session IDs to *session. A sync.Map (a concurrent
	// hash trie) so that the HTTP path's lookups (Admit, Served: one per
	// request) take no lock; insertions and deletions happen under mu.
	sessions     sync.Map
	sessionCount atomic.Int64

	unknownServed atomic.Int64 // bytes Served to unknown sessions

	pollers  []*poller
	pollNext atomic.Uint32
	pollWG   sync.WaitGroup // epoll loops
	wg       sync.WaitGroup // sweeper and goroutine-mode connections
	stop     chan struct{}
}

// New starts a coordinator: its epoll loops and its sweeper.
func New(o Options) (*Coordinator, error) {
	if o.Locator == nil {
		return nil, errors.New("coordinator: Options.Locator is required")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator: invalid configuration: %w", err)
	}
	co := &Coordinator{
		locator:  o.Locator,
		addrOf:   o.ClientAddr,
		log:      o.Logger,
		start:    time.Now(),
		seed:     o.Seed,
		noEpoll:  o.NoEpoll,
		swarms:   map[swarmKey]*swarm{},
		conns:    map[*conn]struct{}{},
		perIP:    map[netip.Addr]int{},
		bans:     map[banKey]time.Time{},
		byRegion: map[string]int{},
		stop:     make(chan struct{}),
	}
	co.set.Store(newSettings(o.Config, o.Sites, o.Region))
	if co.log == nil {
		co.log = slog.Default()
	}
	if pa, ok := o.Locator.(proxyAware); ok && co.addrOf == nil {
		co.addrOf = func(ctx *fasthttp.RequestCtx) netip.Addr {
			remote, _ := netip.AddrFromSlice(ctx.RemoteIP())
			return pa.ClientAddr(remote, func(name string) [][]byte { return ctx.Request.Header.PeekAll(name) })
		}
	}
	if co.seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			co.seed = co.seed<<8 | uint64(x)
		}
	}
	tel, err := newTelemetry(co)
	if err != nil {
		return nil, err
	}
	co.tel = tel
	n := o.Pollers
	if n <= 0 {
		n = defaultPollers(runtime.GOMAXPROCS(0))
	}
	if !co.noEpoll {
		for i := range n {
			p, err := newPoller(co, i)
			if err != nil {
				if errors.Is(err, errNoEpoll) {
					co.noEpoll = true
					break
				}
				co.closePollers()
				tel.close()
				return nil, err
			}
			co.pollers = append(co.pollers, p)
		}
		for _, p := range co.pollers {
			co.pollWG.Add(1)
			go func() {
				defer co.pollWG.Done()
				p.run()
			}()
		}
	}
	sweep := o.SweepInterval
	if sweep <= 0 {
		sweep = time.Second
	}
	co.wg.Add(1)
	go co.sweeper(sweep)
	return co, nil
}

// defaultPollers is the number of epoll loops for procs CPUs: one per 4,
// at least one. The loops route under one lock (co.mu), so more of them
// add parallel reads and sends, not parallel routing; and frames for one
// socket produced by two loops at the same moment cost two sends instead
// of one. Measured with loadgen on 2 CPUs (clients included), one loop
// relayed as many messages per second as two, or more, with 6-20% less
// CPU per message (the more, the busier the machine). One loop
// relays about 300k messages per CPU-second, far more than a region's
// signaling (a million viewers announcing every 2 minutes with 5 offers
// make about 80k messages per second), and the other CPUs serve HTTP.
func defaultPollers(procs int) int { return max(1, (procs+3)/4) }

// newHandlerCtx returns the per-goroutine scratch state of message handling.
func (co *Coordinator) newHandlerCtx(stream uint64) *handlerCtx {
	return &handlerCtx{rng: mrand.New(mrand.NewPCG(co.seed, stream))}
}

func (co *Coordinator) now() time.Time { return time.Now() }

// newSessionID returns 128 random bits in URL-safe base64 (22 characters).
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Close closes every signaling socket (with close code 1001) and stops the
// coordinator's goroutines. The Handler answers 503 afterwards.
func (co *Coordinator) Close() error {
	co.mu.Lock()
	if co.closed {
		co.mu.Unlock()
		return nil
	}
	co.closed = true
	conns := make([]*conn, 0, len(co.conns))
	for c := range co.conns {
		conns = append(conns, c)
	}
	co.mu.Unlock()
	close(co.stop)
	co.closePollers()
	co.pollWG.Wait()
	for _, c := range conns {
		c.kill(closeGoingAway, "server shutting down", false)
	}
	// With the loops stopped, connections in epoll mode are released here;
	// goroutine-mode connections release themselves when their reader
	// returns.
	for _, c := range conns {
		if c.p != nil {
			c.release()
		}
	}
	co.wg.Wait()
	co.tel.close()
	return nil
}

// Shutdown sends every socket a close frame (1001), waits until clients
// have closed them or ctx is done, then Closes.
func (co *Coordinator) Shutdown(ctx context.Context) error {
	co.mu.Lock()
	// A connection whose upgrade is under way registers after this
	// snapshot: draining makes it refuse itself instead of staying open
	// until the deadline.
	co.draining = true
	conns := make([]*conn, 0, len(co.conns))
	for c := range co.conns {
		conns = append(conns, c)
	}
	co.mu.Unlock()
	for _, c := range conns {
		c.kill(closeGoingAway, "server shutting down", true)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		co.mu.Lock()
		n := len(co.conns)
		co.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			co.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
	return co.Close()
}

// closePollers wakes the epoll loops, which close their epoll instance and
// return.
func (co *Coordinator) closePollers() {
	for _, p := range co.pollers {
		p.wake()
	}
}

// sweeper pings quiet sockets, closes dead ones, forgets expired offers,
// sessions, bans and reports.
func (co *Coordinator) sweeper(every time.Duration) {
	defer co.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-co.stop:
			return
		case now := <-t.C:
			co.sweep(now)
		}
	}
}
