package origin

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/valyala/fasthttp"
)

// Passive health: after FailThreshold consecutive failures an origin is
// down; one trial request is let through after trialBackoffMin, doubling up
// to trialBackoffMax while trials keep failing.
const (
	trialBackoffMin = time.Second
	trialBackoffMax = 30 * time.Second
	// responseHeaderBytes bounds an origin's response header block
	// (fasthttp's read buffer); large Set-Cookie or CSP headers fit.
	responseHeaderBytes = 32 << 10
)

// originState is what the pool knows about one origin URL: health and
// counters. It outlives config reloads (a reload that keeps the URL keeps
// the state) and is safe for concurrent use.
type originState struct {
	url string

	outstanding atomic.Int64 // requests waiting for response headers
	requests    atomic.Int64 // attempts made
	failures    atomic.Int64 // attempts that counted as failures
	bytesIn     atomic.Int64 // bytes read from the origin's connections

	mu          sync.Mutex
	down        bool
	consecFails int
	trialing    bool // a trial request of a down origin is in flight
	nextTrial   time.Time
	backoff     time.Duration
	lastErr     string
	lastChange  time.Time
}

// isUp reports the health as last seen.
func (s *originState) isUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.down
}

// admit reports whether a request may go to this origin now, and whether
// it is the trial of a down origin (which the caller must then send).
func (s *originState) admit(now time.Time) (ok, trial bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		return true, false
	}
	if s.trialing || now.Before(s.nextTrial) {
		return false, false
	}
	s.trialing = true
	return true, true
}

// trialDue reports whether a down origin would admit a trial now, without
// claiming it.
func (s *originState) trialDue(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down && !s.trialing && !now.Before(s.nextTrial)
}

// success records a healthy answer; it reports whether the origin came
// back up.
func (s *originState) success(now time.Time) (cameUp bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consecFails = 0
	s.trialing = false
	if s.down {
		s.down = false
		s.backoff = 0
		s.lastChange = now
		return true
	}
	return false
}

// failure records a failed attempt or probe; it reports whether the origin
// went down.
func (s *originState) failure(now time.Time, threshold int, err string) (wentDown bool) {
	s.failures.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consecFails++
	s.lastErr = err
	if s.down {
		if s.trialing {
			s.trialing = false
			s.backoff = min(2*s.backoff, trialBackoffMax)
			s.nextTrial = now.Add(s.backoff)
		}
		return false
	}
	if s.consecFails >= threshold {
		s.down = true
		s.trialing = false
		s.backoff = trialBackoffMin
		s.nextTrial = now.Add(s.backoff)
		s.lastChange = now
		return true
	}
	return false
}

// consecutiveFailures is the number of failures since the last success.
func (s *originState) consecutiveFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consecFails
}

// release gives back a claimed trial that was not sent (the request ended
// for reasons that say nothing about the origin).
func (s *originState) release() {
	s.mu.Lock()
	s.trialing = false
	s.mu.Unlock()
}

// upstream is one origin URL with the client built for one configuration.
// A reload that changes client settings builds a new upstream sharing the
// same originState; requests in flight finish on the old one. It is safe
// for concurrent use.
type upstream struct {
	state *originState

	scheme     string // "http" or "https"
	hostHeader string // Host header: the URL's host[:port] as configured
	pathPrefix string // the URL's path without trailing slash ("" for none)
	base       string // scheme://host[:port]/prefix
	cfg        config.Origin

	client *fasthttp.HostClient
	conns  sync.Map // local address -> *trackedConn

	// Telemetry attributes, computed once.
	serverHost   string
	serverPort   int
	requestOpts  sync.Map // outcome -> metric.AddOption
	durationOpts sync.Map // durationKey -> metric.RecordOption

	stopProbe chan struct{} // nil when no health check runs
	probeDone chan struct{}
	probeOnce sync.Once
}

// parseOriginURL splits an origin base URL into what the pool needs.
func parseOriginURL(raw string) (scheme, hostHeader, addr, pathPrefix string, err error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", "", "", "", fmt.Errorf("invalid URL %q: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", "", "", fmt.Errorf("%q: scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", "", "", "", fmt.Errorf("%q: missing host", raw)
	case u.User != nil:
		return "", "", "", "", fmt.Errorf("%q: credentials in origin URLs are not supported", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return "", "", "", "", fmt.Errorf("%q: an origin URL must not have a query or fragment", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme, u.Host, net.JoinHostPort(u.Hostname(), port), strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

func newUpstream(state *originState, cfg config.Origin, tlsConfig *tls.Config) (*upstream, error) {
	scheme, hostHeader, addr, prefix, err := parseOriginURL(state.url)
	if err != nil {
		return nil, err
	}
	u := &upstream{
		state:      state,
		scheme:     scheme,
		hostHeader: hostHeader,
		pathPrefix: prefix,
		base:       scheme + "://" + hostHeader + prefix,
		cfg:        cfg,
	}
	var tc *tls.Config
	if scheme == "https" {
		if tlsConfig != nil {
			tc = tlsConfig.Clone()
		} else {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tc.ServerName == "" {
			tc.ServerName = strings.Trim(hostname(hostHeader), "[]")
		}
	}
	u.serverHost, u.serverPort = splitHostPort(addr)
	u.client = &fasthttp.HostClient{
		Addr:      addr,
		Name:      "edgebox",
		IsTLS:     scheme == "https",
		TLSConfig: tc,
		Dial:      u.dial,
		MaxConns:  cfg.MaxConnsPerOrigin,
		// Waiting for a busy pool is like waiting for a connect.
		MaxConnWaitTimeout:     cfg.ConnectTimeout.D(),
		MaxIdleConnDuration:    30 * time.Second,
		ReadBufferSize:         responseHeaderBytes,
		StreamResponseBody:     true,
		DisablePathNormalizing: true, // forward paths byte for byte
		// Timeouts are enforced by trackedConn (per read) and the request
		// deadline (headers), not by HostClient.ReadTimeout, which would
		// bound whole bodies.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStaleConn,
	}
	return u, nil
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// retryStaleConn lets fasthttp retry once, on the same origin, a GET or
// HEAD whose reused keep-alive connection turned out to be closed: the
// origin closed it while idle, which says nothing about its health.
// Everything else is the pool's decision.
func retryStaleConn(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 || !(req.Header.IsGet() || req.Header.IsHead()) {
		return false, false
	}
	k := classify(err)
	return false, k == ErrConnect
}

// dial opens a connection within ConnectTimeout and wraps it so that each
// read has its own deadline.
func (u *upstream) dial(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: u.cfg.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	tc := &trackedConn{Conn: c, up: u, readTimeout: u.cfg.ReadTimeout.D()}
	u.conns.Store(c.LocalAddr().String(), tc)
	return tc, nil
}

// streamStarted lifts the header deadline from the connection that carries
// resp's body, so that the body is bounded only by the per-read timeout:
// a fill of many GiB may take longer than ResponseTimeout.
func (u *upstream) streamStarted(resp *fasthttp.Response) {
	if resp.BodyStream() == nil || resp.LocalAddr() == nil {
		return
	}
	if c, ok := u.conns.Load(resp.LocalAddr().String()); ok {
		c.(*trackedConn).absDeadline.Store(0)
	}
}

// trackedConn counts bytes read and applies the read timeout to every
// read, capped by the absolute deadline fasthttp sets (the header
// deadline). It is used by one request at a time.
type trackedConn struct {
	net.Conn
	up          *upstream
	readTimeout time.Duration
	absDeadline atomic.Int64 // unix nanoseconds; 0 means none
	closeOnce   sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	d := time.Now().Add(c.readTimeout)
	if abs := c.absDeadline.Load(); abs != 0 && abs < d.UnixNano() {
		d = time.Unix(0, abs)
	}
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.up.state.bytesIn.Add(int64(n))
	return n, err
}

// SetReadDeadline records fasthttp's deadline; Read applies it.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.absDeadline.Store(0)
	} else {
		c.absDeadline.Store(t.UnixNano())
	}
	return nil
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() { c.up.conns.Delete(c.Conn.LocalAddr().String()) })
	return c.Conn.Close()
}
