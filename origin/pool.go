package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/valyala/fasthttp"
)

// Options configure NewPool. The zero value is ready to use.
type Options struct {
	// Logger receives origin up/down transitions (warn/info) and reload
	// notes; nil means slog.Default().
	Logger *slog.Logger
	// TLSConfig is the base TLS configuration for https origins (its
	// ServerName is set per origin when empty); nil means the system roots
	// and TLS 1.2 or later.
	TLSConfig *tls.Config
}

// Result says how Do got its response.
type Result struct {
	// Origin is the base URL of the origin that answered (or of the last
	// one tried, when Do fails).
	Origin string
	// Attempts is how many origin requests were made, retries included.
	Attempts int
}

// Pool sends requests to the origins of each site: one fasthttp client per
// origin URL, chosen among healthy origins by weight and load, with
// retries, passive and active health checks and telemetry. Create it with
// NewPool; it is safe for concurrent use.
type Pool struct {
	log       *slog.Logger
	tlsConfig *tls.Config
	tel       *telemetry

	cur atomic.Pointer[snapshot] // nil after Close

	mu     sync.Mutex // serializes Update and Close
	states map[string]*originState
	closed bool
}

// snapshot is one configuration's view: immutable once published.
type snapshot struct {
	cfg       config.Origin
	sites     map[string]*site
	upstreams map[string]*upstream // by URL
}

// site is the origins of one site with their weights.
type site struct {
	name    string
	members []member
}

type member struct {
	up     *upstream
	weight int
}

// NewPool builds a pool for the sites and starts active health checks when
// cfg.HealthCheck.Path is set. Close it to stop them.
func NewPool(cfg config.Origin, sites []config.Site, opts Options) (*Pool, error) {
	p := &Pool{
		log:       opts.Logger,
		tlsConfig: opts.TLSConfig,
		states:    map[string]*originState{},
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	snap, err := p.build(cfg, sites, nil)
	if err != nil {
		return nil, err
	}
	p.tel = newTelemetry(p)
	p.cur.Store(snap)
	p.startProbes(snap, nil)
	return p, nil
}

// Update applies a configuration reload. Requests in flight finish on the
// clients they started with; origins that stay keep their health state.
// On error nothing changes.
func (p *Pool) Update(cfg config.Origin, sites []config.Site) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	old := p.cur.Load()
	snap, err := p.build(cfg, sites, old)
	if err != nil {
		return err
	}
	p.cur.Store(snap)
	p.startProbes(snap, old)
	p.retire(old, snap)
	for u := range p.states {
		if _, ok := snap.upstreams[u]; !ok {
			delete(p.states, u)
		}
	}
	p.log.Info("origin pool reloaded", "sites", len(snap.sites), "origins", len(snap.upstreams))
	return nil
}

// Close stops health checks and closes idle connections. Bodies being read
// stay readable; Do fails with ErrClosed afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	old := p.cur.Swap(nil)
	p.retire(old, nil)
	p.tel.close()
	return nil
}

// build validates cfg and sites and makes a snapshot, reusing the
// upstreams of old whose URL and client settings are unchanged. p.mu must
// be held (or p not yet shared).
func (p *Pool) build(cfg config.Origin, sites []config.Site, old *snapshot) (*snapshot, error) {
	var probs config.Problems
	validateOrigin(&cfg, probs.Sub("origin"))
	snap := &snapshot{cfg: cfg, sites: map[string]*site{}, upstreams: map[string]*upstream{}}
	for i, sc := range sites {
		sp := probs.Sub(fmt.Sprintf("sites[%d]", i))
		if sc.Name == "" {
			sp.Add("name", "required")
		} else if _, dup := snap.sites[sc.Name]; dup {
			sp.Addf("name", "duplicate site name %q", sc.Name)
		}
		if len(sc.Origins) == 0 {
			sp.Add("origins", "at least one origin is required")
		}
		s := &site{name: sc.Name}
		for j, oc := range sc.Origins {
			op := sp.Sub(fmt.Sprintf("origins[%d]", j))
			if _, _, _, _, err := parseOriginURL(oc.URL); err != nil {
				op.Add("url", err.Error())
				continue
			}
			if oc.Weight < 0 {
				op.Addf("weight", "must not be negative (got %d)", oc.Weight)
				continue
			}
			w := oc.Weight
			if w == 0 {
				w = 1 // the documented default, for sites built in code
			}
			u, ok := snap.upstreams[oc.URL]
			if !ok {
				u = p.upstreamFor(oc.URL, cfg, old)
				snap.upstreams[oc.URL] = u
			}
			if slices.ContainsFunc(s.members, func(m member) bool { return m.up == u }) {
				op.Addf("url", "origin %s listed twice", oc.URL)
				continue
			}
			s.members = append(s.members, member{up: u, weight: w})
		}
		snap.sites[sc.Name] = s
	}
	if err := probs.Err("", nil); err != nil {
		return nil, fmt.Errorf("origin pool: %w", err)
	}
	for url := range snap.upstreams {
		if _, ok := p.states[url]; !ok {
			p.states[url] = snap.upstreams[url].state
		}
	}
	return snap, nil
}

// upstreamFor reuses old's upstream for url when its client settings are
// unchanged, else builds one sharing the URL's health state.
func (p *Pool) upstreamFor(url string, cfg config.Origin, old *snapshot) *upstream {
	if old != nil {
		if u, ok := old.upstreams[url]; ok && u.cfg == cfg {
			return u
		}
	}
	st, ok := p.states[url]
	if !ok {
		st = &originState{url: url, lastChange: time.Now()}
	}
	u, err := newUpstream(st, cfg, p.tlsConfig)
	if err != nil {
		// parseOriginURL already accepted url in build.
		panic("origin: " + err.Error())
	}
	return u
}

func validateOrigin(o *config.Origin, p *config.Problems) {
	p.CheckPositive("connect_timeout", int64(o.ConnectTimeout))
	p.CheckPositive("response_timeout", int64(o.ResponseTimeout))
	p.CheckPositive("read_timeout", int64(o.ReadTimeout))
	p.CheckPositive("max_conns_per_origin", int64(o.MaxConnsPerOrigin))
	if o.Retries < 0 || o.Retries > 10 {
		p.Addf("retries", "must be in 0..10 (got %d)", o.Retries)
	}
	p.CheckPositive("fail_threshold", int64(o.FailThreshold))
	if o.HealthCheck.Path != "" {
		if o.HealthCheck.Path[0] != '/' {
			p.Add("health_check.path", "must start with /")
		}
		p.CheckPositive("health_check.interval", int64(o.HealthCheck.Interval))
		p.CheckPositive("health_check.timeout", int64(o.HealthCheck.Timeout))
	}
}

// retire stops what old runs that next no longer uses.
func (p *Pool) retire(old, next *snapshot) {
	if old == nil {
		return
	}
	for url, u := range old.upstreams {
		if next != nil && next.upstreams[url] == u {
			continue
		}
		u.stopProbing()
		u.client.CloseIdleConnections()
	}
}

// Do sends req to one origin of site and reads the response headers into
// resp; the body is left to stream (resp.BodyStream()), and the caller must
// close it (resp.CloseBodyStream, or fasthttp.ReleaseResponse) when done,
// even when it does not read it.
//
// req carries the path and query (req.Header.RequestURI(), e.g.
// "/a/b.ts?x=1") and the headers to forward; Do rewrites its URI to the
// chosen origin's URL (base path + request path) and its Host header to the
// origin's host, and adds traceparent. GET and HEAD are retried, up to
// cfg.Retries more times, after connection errors, timeouts and bad
// responses, and after 502/503/504 when another origin is available; other
// methods are sent once. Each attempt's response headers are bounded by
// cfg.ResponseTimeout and the context's deadline; each body read by
// cfg.ReadTimeout.
//
// A response with any status is a success (err == nil). Errors are *Error
// values matching one of the Err* kinds. Do does not watch ctx once it has
// returned: to abandon a body, close its stream (which closes the
// connection rather than draining it).
func (p *Pool) Do(ctx context.Context, siteName string, req *fasthttp.Request, resp *fasthttp.Response) (Result, error) {
	snap := p.cur.Load()
	if snap == nil {
		return Result{}, &Error{Kind: ErrClosed, Site: siteName}
	}
	s := snap.sites[siteName]
	if s == nil {
		return Result{}, &Error{Kind: ErrUnknownSite, Site: siteName}
	}
	path := req.Header.RequestURI()
	if bytes.HasPrefix(path, []byte("http://")) || bytes.HasPrefix(path, []byte("https://")) {
		path = req.URI().RequestURI() // an absolute URI: forward its path
	}
	if len(path) == 0 || path[0] != '/' {
		return Result{}, &Error{Kind: ErrInvalidRequest, Site: siteName, Err: fmt.Errorf("request URI %q is not a path", path)}
	}
	path = append([]byte(nil), path...) // req's URI is rewritten below
	method := string(req.Header.Method())
	idempotent := req.Header.IsGet() || req.Header.IsHead()
	maxAttempts := 1
	if idempotent {
		maxAttempts += snap.cfg.Retries
	}

	var (
		res   Result
		tried []*upstream
		last  error
	)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return res, p.ctxError(err, siteName, res)
		}
		u, trial := s.pick(tried, time.Now())
		if u == nil {
			if last != nil {
				break
			}
			return res, &Error{Kind: ErrNoHealthyOrigin, Site: siteName, Attempts: res.Attempts}
		}
		tried = append(tried, u)
		res = Result{Origin: u.base, Attempts: attempt}
		err := p.attempt(ctx, snap, u, trial, method, path, attempt, req, resp)
		if err == nil {
			status := resp.StatusCode()
			if idempotent && attempt < maxAttempts && retryableStatus(status) && s.hasUntried(tried, time.Now()) {
				// Try a mirror instead; this answer is dropped unread.
				resp.CloseBodyStream() //nolint:errcheck // the connection is discarded either way
				last = nil
				continue
			}
			return res, nil
		}
		last = err
		var oe *Error
		if errors.As(err, &oe) {
			oe.Site = siteName
			if oe.Kind == ErrCanceled {
				break
			}
		}
		if !idempotent {
			break
		}
	}
	if last == nil {
		// Only reachable if every retry candidate vanished: report the
		// last state honestly.
		last = &Error{Kind: ErrNoHealthyOrigin, Site: siteName, Attempts: res.Attempts}
	}
	return res, last
}

func (p *Pool) ctxError(err error, siteName string, res Result) error {
	kind := ErrCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		kind = ErrTimeout
	}
	return &Error{Kind: kind, Site: siteName, Origin: res.Origin, Attempts: res.Attempts, Err: err}
}

// retryableStatus: answers that mean "this origin cannot serve now".
func retryableStatus(status int) bool {
	return status == fasthttp.StatusBadGateway || status == fasthttp.StatusServiceUnavailable ||
		status == fasthttp.StatusGatewayTimeout
}

// attempt sends one request to u and records its outcome.
func (p *Pool) attempt(ctx context.Context, snap *snapshot, u *upstream, trial bool, method string, path []byte,
	n int, req *fasthttp.Request, resp *fasthttp.Response) error {
	uri := make([]byte, 0, len(u.base)+len(path))
	uri = append(append(append(uri, u.scheme...), "://"...), u.hostHeader...)
	uri = append(append(uri, u.pathPrefix...), path...)
	req.SetRequestURIBytes(uri)
	req.UseHostHeader = false
	req.Header.SetHost(u.hostHeader)

	ctx, span := p.tel.startSpan(ctx, u, method, string(uri), n)
	injectTraceContext(ctx, &req.Header)

	deadline := time.Now().Add(snap.cfg.ResponseTimeout.D())
	callerDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callerDeadline = d, true
	}
	st := u.state
	st.requests.Add(1)
	st.outstanding.Add(1)
	start := time.Now()
	err := u.client.DoDeadline(req, resp, deadline)
	st.outstanding.Add(-1)
	elapsed := time.Since(start)

	var kind error
	status := 0
	if err == nil {
		status = resp.StatusCode()
		u.streamStarted(resp)
	} else {
		kind = classify(err)
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller gave up or its deadline passed: not the origin's
			// fault unless the origin's own timeout came first.
			if errors.Is(ctxErr, context.Canceled) {
				kind = ErrCanceled
			}
		}
	}
	p.tel.record(ctx, span, u, method, status, kind, err, elapsed)

	now := time.Now()
	switch {
	case kind == nil && !retryableStatus(status):
		if st.success(now) {
			p.log.Info("origin up", "origin", u.base, "after", "successful request")
		}
	case kind == ErrOverloaded || kind == ErrCanceled || (kind == ErrTimeout && callerDeadline):
		// The caller gave up, or its own deadline (shorter than
		// ResponseTimeout) passed: nothing learnt about the origin.
		if trial {
			st.release()
		}
	default:
		reason := fmt.Sprintf("status %d", status)
		if kind != nil {
			reason = err.Error()
		}
		if st.failure(now, snap.cfg.FailThreshold, reason) {
			p.log.Warn("origin down", "origin", u.base, "consecutive_failures", snap.cfg.FailThreshold, "last_error", reason)
		}
	}
	if kind != nil {
		return &Error{Kind: kind, Origin: u.base, Attempts: n, Err: err}
	}
	return nil
}

// pick chooses the origin for the next attempt: a down origin due for a
// trial first (so that it can come back), else among healthy origins by
// weighted "power of two choices": two candidates drawn at random in
// proportion to their weights, and the one with fewer requests in flight
// per unit of weight wins (ties go to the first draw). Light load is thus
// shared by weight and heavy load goes to the least loaded. Origins already
// tried by this request are avoided while others are available. trial is
// true if the pick is a trial.
func (s *site) pick(tried []*upstream, now time.Time) (u *upstream, trial bool) {
	var cand [8]member
	for pass := 0; pass < 2; pass++ {
		// Pass 0 considers untried origins only; pass 1 allows a retry on
		// an origin already tried (the only one, or all others are down).
		eligible := cand[:0]
		total := 0
		for _, m := range s.members {
			if pass == 0 && slices.Contains(tried, m.up) {
				continue
			}
			if m.up.state.trialDue(now) {
				if ok, tr := m.up.state.admit(now); ok && tr {
					return m.up, true
				}
				continue
			}
			if m.up.state.isUp() {
				eligible = append(eligible, m)
				total += m.weight
			}
		}
		switch len(eligible) {
		case 0:
			if len(tried) == 0 {
				return s.failOpen(), false
			}
			continue
		case 1:
			return eligible[0].up, false
		}
		i := drawWeighted(eligible, total, -1)
		j := drawWeighted(eligible, total-eligible[i].weight, i)
		a, b := eligible[i], eligible[j]
		if load(b) < load(a) {
			return b.up, false
		}
		return a.up, false
	}
	return nil, false
}

// failOpen picks an origin for a request when every origin of the site is
// marked down and none is due for a trial: the first with the fewest
// consecutive failures.
// Refusing would turn one origin's bad answers for some URLs (three 503s
// for one object) into 502s for every object of the site, and a site with
// a single origin would be down whenever it stumbled; nginx never marks
// the only server of a group unavailable for the same reason. An answer
// brings the origin back up; a failure leaves it down.
func (s *site) failOpen() *upstream {
	var best *upstream
	bestFails := 0
	for _, m := range s.members {
		f := m.up.state.consecutiveFailures()
		if best == nil || f < bestFails {
			best, bestFails = m.up, f
		}
	}
	return best
}

// load is requests in flight per unit of weight.
func load(m member) float64 {
	return float64(m.up.state.outstanding.Load()) / float64(m.weight)
}

// drawWeighted returns the index of a member drawn with probability
// proportional to its weight, skipping index skip; total is the sum of the
// weights of the members considered.
func drawWeighted(ms []member, total, skip int) int {
	r := rand.IntN(total)
	for i, m := range ms {
		if i == skip {
			continue
		}
		if r < m.weight {
			return i
		}
		r -= m.weight
	}
	for i := len(ms) - 1; i >= 0; i-- { // unreachable with consistent totals
		if i != skip {
			return i
		}
	}
	return 0
}

// hasUntried reports whether an origin not yet tried could take a retry.
func (s *site) hasUntried(tried []*upstream, now time.Time) bool {
	for _, m := range s.members {
		if !slices.Contains(tried, m.up) && (m.up.state.isUp() || m.up.state.trialDue(now)) {
			return true
		}
	}
	return false
}

// OriginStatus is one origin's state, for the admin listener.
type OriginStatus struct {
	URL                 string    `json:"url"`
	Sites               []string  `json:"sites"`
	Up                  bool      `json:"up"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Outstanding         int64     `json:"outstanding"`
	Requests            int64     `json:"requests"`
	Failures            int64     `json:"failures"`
	BytesReceived       int64     `json:"bytes_received"`
	LastError           string    `json:"last_error,omitempty"`
	LastChange          time.Time `json:"last_change"`
	NextTrial           time.Time `json:"next_trial,omitzero"`
}

// Status returns every origin's state, sorted by URL.
func (p *Pool) Status() []OriginStatus {
	snap := p.cur.Load()
	if snap == nil {
		return nil
	}
	out := make([]OriginStatus, 0, len(snap.upstreams))
	for url, u := range snap.upstreams {
		st := u.state
		os := OriginStatus{
			URL:           url,
			Outstanding:   st.outstanding.Load(),
			Requests:      st.requests.Load(),
			Failures:      st.failures.Load(),
			BytesReceived: st.bytesIn.Load(),
		}
		st.mu.Lock()
		os.Up = !st.down
		os.ConsecutiveFailures = st.consecFails
		os.LastError = st.lastErr
		os.LastChange = st.lastChange
		if st.down {
			os.NextTrial = st.nextTrial
		}
		st.mu.Unlock()
		for name, s := range snap.sites {
			if slices.ContainsFunc(s.members, func(m member) bool { return m.up == u }) {
				os.Sites = append(os.Sites, name)
			}
		}
		slices.Sort(os.Sites)
		out = append(out, os)
	}
	slices.SortFunc(out, func(a, b OriginStatus) int {
		switch {
		case a.URL < b.URL:
			return -1
		case a.URL > b.URL:
			return 1
		}
		return 0
	})
	return out
}
