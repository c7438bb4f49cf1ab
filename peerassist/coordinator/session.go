package coordinator

import (
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// session is one viewer's registration: issued on its first announce, kept
// across reconnections (the client sends x_session back) and for
// PeerTimeout after its socket is gone. Created by the announce handler;
// fields are guarded by Coordinator.mu unless atomic.
type session struct {
	id      string
	c       *conn // nil while detached
	loc     region.Locality
	site    string
	caps    signal.Caps
	started time.Time

	detachedAt time.Time

	// Cumulative counters the client reported (x_report) and when.
	fromPeersBytes, fromEdgeBytes, uploadedBytes int64
	lastReport                                   time.Time

	// accusations: distinct peers this session reported bad chunks from,
	// within the bad-chunk window (the false-accuser rule).
	accusations []accused

	edgeServedBytes atomic.Int64
	atBudget        atomic.Bool
	swarm           atomic.Pointer[swarm] // the swarm of its latest announce
	policy          atomic.Pointer[signal.Policy]
	limiter         atomic.Pointer[limiterRef]
}

type accused struct {
	sw swarmKey
	id signal.ID
	at time.Time
}

// SessionInfo is a snapshot of one session, for the policy loop and the
// admission hook.
type SessionInfo struct {
	ID        string
	Locality  region.Locality
	Site      string
	Connected bool
	Started   time.Time
	// Swarm is the swarm of the session's latest announce (zero if none).
	Swarm SwarmID
	// Seed is true when the session needs nothing: its peers in every
	// swarm it is in hold the whole content (they announced left 0 or
	// completed). A viewer seeding one file while it fetches another is
	// not a seed.
	Seed bool
	// Caps is what the client declared (x_caps).
	Caps signal.Caps
	// EdgeServedBytes counts the body bytes the edge served this session
	// over HTTP (from Served).
	EdgeServedBytes int64
	// FromPeersBytes, FromEdgeBytes and UploadedBytes are the client's
	// cumulative x_report counters; LastReport is when they came (zero if
	// never).
	FromPeersBytes, FromEdgeBytes, UploadedBytes int64
	LastReport                                   time.Time
	// AtUploadBudget is the flag set by SetUploadBudgetReached.
	AtUploadBudget bool
	// Policy is the last policy pushed, nil if none.
	Policy *signal.Policy
}

// SwarmID names a swarm.
type SwarmID struct {
	Region   string
	InfoHash signal.ID
}

// SwarmInfo is a snapshot of one swarm.
type SwarmInfo struct {
	SwarmID
	Peers, Complete, Incomplete int
	// EdgeServedBytes counts what the edge served to sessions whose latest
	// announce was in this swarm; the other counters sum its members'
	// x_report increments.
	EdgeServedBytes                              int64
	FromPeersBytes, FromEdgeBytes, UploadedBytes int64
}

// info snapshots the session. Called with co.mu held.
func (s *session) info() SessionInfo {
	si := SessionInfo{
		ID: s.id, Locality: s.loc, Site: s.site, Connected: s.c != nil, Started: s.started, Caps: s.caps,
		EdgeServedBytes: s.edgeServedBytes.Load(), FromPeersBytes: s.fromPeersBytes, FromEdgeBytes: s.fromEdgeBytes,
		UploadedBytes: s.uploadedBytes, LastReport: s.lastReport, AtUploadBudget: s.atBudget.Load(), Policy: s.policy.Load(),
	}
	if sw := s.swarm.Load(); sw != nil {
		si.Swarm = SwarmID{Region: sw.key.region, InfoHash: sw.key.infoHash}
		if s.c != nil {
			si.Seed = len(s.c.peers) > 0
			for _, p := range s.c.peers {
				si.Seed = si.Seed && p.complete
			}
		}
	}
	return si
}

func (co *Coordinator) lookupSession(id string) *session {
	if v, ok := co.sessions.Load(id); ok {
		return v.(*session)
	}
	return nil
}

// Limiter enforces the policy on one session's HTTP requests to the edge.
// The policy loop gives each session its own (SetLimiter, or the factory
// of SetLimiterFactory for sessions that appear between its ticks). Its
// methods are called on the HTTP path, once per request of the session,
// possibly concurrently: they must be fast and safe for concurrent use.
type Limiter interface {
	// Admit decides whether the edge serves a request now (see
	// edge.SessionGate.Admit).
	Admit(urgent bool) (ok bool, retryAfter time.Duration, reason string)
	// Served records body bytes the edge sent for a request of the
	// session (url is the request's path and query).
	Served(url string, bytes int64, urgent bool)
}

// NewLimiterFunc returns the Limiter of a session that has none yet; it is
// called at most about once per session, on its first request.
type NewLimiterFunc func(SessionInfo) Limiter

type limiterRef struct{ l Limiter }

// limiterOf returns the session's Limiter, creating it with the factory
// when it has none; nil without either.
func (co *Coordinator) limiterOf(s *session) Limiter {
	if r := s.limiter.Load(); r != nil {
		return r.l
	}
	f := co.newLimiter.Load()
	if f == nil {
		return nil
	}
	co.mu.Lock()
	info := s.info()
	co.mu.Unlock()
	l := (*f)(info)
	if l == nil {
		return nil
	}
	if s.limiter.CompareAndSwap(nil, &limiterRef{l}) {
		return l
	}
	if r := s.limiter.Load(); r != nil {
		return r.l // another request installed one first
	}
	return l
}

// Admit implements edge.SessionGate (not imported here, so that this package
// builds without the edge server; coordinator_test checks the method set).
// Unknown sessions are always admitted (the session may just have
// expired). A known session is asked its Limiter when it has one (or the
// factory makes one); otherwise the hook installed with SetAdmission
// decides, and without one the request is admitted.
//
// With Limiters the call takes no lock: a lock-free map lookup and the
// Limiter's own per-session state. The SetAdmission hook, which gets a
// full SessionInfo snapshot, takes the coordinator's lock.
func (co *Coordinator) Admit(sessionID string, urgent bool) (bool, time.Duration, string) {
	s := co.lookupSession(sessionID)
	if s == nil {
		return true, 0, ""
	}
	if l := co.limiterOf(s); l != nil {
		return l.Admit(urgent)
	}
	f := co.admit.Load()
	if f == nil {
		return true, 0, ""
	}
	co.mu.Lock()
	info := s.info()
	co.mu.Unlock()
	return (*f)(info, urgent)
}

// Served implements edge.SessionGate: it counts bytes the edge served to a
// session and to the swarm of its latest announce, as non-urgent.
func (co *Coordinator) Served(sessionID, site, url string, bytes int64) {
	co.ServedUrgent(sessionID, site, url, bytes, false)
}

// ServedUrgent implements edge.UrgencyGate: Served, knowing whether the
// request was marked urgent. The session's Limiter is told too.
func (co *Coordinator) ServedUrgent(sessionID, site, url string, bytes int64, urgent bool) {
	if bytes <= 0 {
		return
	}
	s := co.lookupSession(sessionID)
	if s == nil {
		co.unknownServed.Add(bytes)
		return
	}
	s.edgeServedBytes.Add(bytes)
	if sw := s.swarm.Load(); sw != nil {
		sw.edgeServedBytes.Add(bytes)
	}
	co.tel.edgeServed.Add(bytes)
	if l := co.limiterOf(s); l != nil {
		l.Served(url, bytes, urgent)
	}
}

// SetAdmission installs the admission hook for sessions without a Limiter
// (nil admits them all). It gets a snapshot of the session, taken under the
// coordinator's lock on every request: for tests and simple policies; the
// policy loop uses Limiters.
func (co *Coordinator) SetAdmission(f AdmitFunc) {
	if f == nil {
		co.admit.Store(nil)
		return
	}
	co.admit.Store(&f)
}

// SetLimiter installs (or, with nil, removes) a session's Limiter.
func (co *Coordinator) SetLimiter(sessionID string, l Limiter) error {
	s := co.lookupSession(sessionID)
	if s == nil {
		return ErrUnknownSession
	}
	if l == nil {
		s.limiter.Store(nil)
	} else {
		s.limiter.Store(&limiterRef{l})
	}
	return nil
}

// SetLimiterFactory installs the factory that gives a session without a
// Limiter one on its first request (nil: such sessions fall back to the
// SetAdmission hook).
func (co *Coordinator) SetLimiterFactory(f NewLimiterFunc) {
	if f == nil {
		co.newLimiter.Store(nil)
		return
	}
	co.newLimiter.Store(&f)
}

// Sessions returns a snapshot of every session, connected or not.
func (co *Coordinator) Sessions() []SessionInfo {
	list := make([]*session, 0, co.sessionCount.Load())
	co.sessions.Range(func(_, v any) bool {
		list = append(list, v.(*session))
		return true
	})
	out := make([]SessionInfo, len(list))
	co.mu.Lock()
	for i, s := range list {
		out[i] = s.info()
	}
	co.mu.Unlock()
	return out
}

// Session returns a snapshot of one session.
func (co *Coordinator) Session(id string) (SessionInfo, bool) {
	s := co.lookupSession(id)
	if s == nil {
		return SessionInfo{}, false
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	return s.info(), true
}

// Swarms returns a snapshot of every swarm.
func (co *Coordinator) Swarms() []SwarmInfo {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := make([]SwarmInfo, 0, len(co.swarms))
	for _, sw := range co.swarms {
		out = append(out, SwarmInfo{
			SwarmID: SwarmID{Region: sw.key.region, InfoHash: sw.key.infoHash},
			Peers:   len(sw.peers), Complete: sw.complete, Incomplete: sw.incomplete(),
			EdgeServedBytes: sw.edgeServedBytes.Load(), FromPeersBytes: sw.fromPeersBytes,
			FromEdgeBytes: sw.fromEdgeBytes, UploadedBytes: sw.uploadedBytes,
		})
	}
	return out
}

// SetUploadBudgetReached marks a session as at (or below) its upload
// budget: while marked, its peers are routed no offers.
func (co *Coordinator) SetUploadBudgetReached(sessionID string, at bool) error {
	s := co.lookupSession(sessionID)
	if s == nil {
		return ErrUnknownSession
	}
	s.atBudget.Store(at)
	return nil
}

// PushPolicy sends p to the session as an x_policy message (on the swarm of
// its latest announce, so standard clients ignore it) and remembers it.
func (co *Coordinator) PushPolicy(sessionID string, p signal.Policy) error {
	s := co.lookupSession(sessionID)
	if s == nil {
		return ErrUnknownSession
	}
	s.policy.Store(&p)
	co.mu.Lock()
	c := s.c
	var ih signal.ID
	if c != nil {
		ih = c.lastInfoHash
	}
	co.mu.Unlock()
	if c == nil || !c.isOpen() {
		return ErrNotConnected
	}
	resp := signal.Response{Kind: signal.KindPolicy, Policy: &p, InfoHash: ih}
	buf := make([]byte, maxFrameHeader, 256)
	buf = resp.AppendJSON(buf)
	start := frameHeader(buf[:maxFrameHeader], opText, len(buf)-maxFrameHeader)
	c.write(buf[start:])
	return nil
}
