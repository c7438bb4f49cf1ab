package enforce

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/policy"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// Coordinator is what the loop reads from and acts through:
// *coordinator.Coordinator implements it.
type Coordinator interface {
	Sessions() []coordinator.SessionInfo
	Swarms() []coordinator.SwarmInfo
	SetLimiter(sessionID string, l coordinator.Limiter) error
	SetLimiterFactory(f coordinator.NewLimiterFunc)
	SetUploadBudgetReached(sessionID string, at bool) error
	PushPolicy(sessionID string, p signal.Policy) error
}

var _ Coordinator = (*coordinator.Coordinator)(nil)

// Options configure a Loop.
type Options struct {
	// Policy is the config's policy section (tick, cap, capacity, rates,
	// fractions); Sites give per-site upload fractions and bitrates.
	Policy config.Policy
	Sites  []config.Site
	// Coordinator is the session registry the loop observes and acts on.
	// Required.
	Coordinator Coordinator
	// EgressBytes returns the body bytes the edge sent so far to every
	// client, with or without a session (edge.Server.Stats().BytesServed):
	// the observed peak capacity is measured on it. Nil counts only the
	// peer-assisted sessions' bytes.
	EgressBytes func() int64
	// Burst is how much of its allowance a session may save up while idle:
	// within a tick a session may draw its allowance for the tick plus the
	// burst (plus the overshoot of one response). A refused client waits
	// Retry-After, in whole seconds, so a burst under 1s wastes allowance.
	// Default 1s, at most the tick.
	Burst time.Duration
	// PolicyRefresh pushes a session's x_policy again after this long even
	// when it did not change (a client that reconnected, a lost message).
	// Default 60s.
	PolicyRefresh time.Duration
	// OnTick, when set, is called after every tick with its decision
	// (valid only during the call).
	OnTick func(*policy.Decision)
	// Logger receives the loop's events. Nil means slog.Default().
	Logger *slog.Logger
}

// Loop is the edge's policy loop (see the package documentation).
//
// Create it with New; the zero value is not usable. It is safe for
// concurrent use: Tick calls are serialized, and the limiters the loop
// hands to the coordinator are safe for concurrent use.
type Loop struct {
	co      Coordinator
	eng     *policy.Engine
	refresh time.Duration
	egress  func() int64
	onTick  func(*policy.Decision)
	log     *slog.Logger
	tel     *telemetry
	clock   func() time.Duration // the limiters' monotonic clock
	reasons [numReasonCodes]string
	// burstOpt is Options.Burst (0: derived from the tick).
	burstOpt time.Duration

	// set holds what Reload changes. Tick reads it under tickMu (Reload
	// swaps it under tickMu too, so a tick sees one); the HTTP path (the
	// limiter factory) loads it once per new session.
	set atomic.Pointer[settings]

	// limiters holds every session's limiter: the HTTP path creates them
	// for new sessions (through the coordinator's factory) while the loop
	// reads and updates them.
	limMu    sync.Mutex
	limiters map[string]*limiter
	join     atomic.Pointer[joinLimits]

	// The loop's own state (Tick).
	tickMu     sync.Mutex
	ticks      atomic.Uint64 // read by the factory (limiter.born)
	lastTickAt time.Time
	lastEgress int64
	sessions   map[string]*sessionState
	swarmIdx   map[coordinator.SwarmID]int
	obs        policy.Observation
	dec        policy.Decision
	// Parallel to obs.Sessions: the index in the snapshot and of the swarm.
	obsInfo  []int32
	obsSwarm []int32
	allowScr []float64

	runMu           sync.Mutex
	started, closed bool
	stop, done      chan struct{}
	// retick tells the running loop that the tick period changed.
	retick chan struct{}
}

// settings are the loop's parameters from the policy section and the
// sites. Immutable: Reload swaps in new ones.
type settings struct {
	params policy.Params
	tick   time.Duration
	// burst is what a session may save up of its allowance (Options.Burst,
	// else min(tick, 1s)).
	burst time.Duration
	// maxDeclaredBps bounds declared stream bitrates (policy
	// max_declared_bitrate_bps; 0: ignored).
	maxDeclaredBps float64
}

func (l *Loop) newSettings(c config.Policy, params policy.Params) *settings {
	st := &settings{params: params, tick: c.Tick.D(), burst: l.burstOpt, maxDeclaredBps: float64(c.MaxDeclaredBitrateBps)}
	if st.burst <= 0 {
		st.burst = min(st.tick, time.Second)
	}
	return st
}

// joinLimits are the limits of sessions that appear between ticks.
type joinLimits struct {
	// leftBytesPerSec is what is left of the decision's join allowance,
	// the headroom for sessions that join before the next tick (guarded
	// by limMu). Each joiner gets half of it, so however many join,
	// together they stay within it (QA: three peers joining at once each
	// took the whole headroom).
	leftBytesPerSec float64
	unlimited       bool
}

// numReasonCodes bounds policy.ReasonCode values (see reasonText).
const numReasonCodes = 16

// New builds a loop and installs its limiter factory in the coordinator:
// from then on every session's HTTP requests go through a limiter, which
// admits everything until the first tick decides.
func New(o Options) (*Loop, error) {
	if o.Coordinator == nil {
		return nil, errors.New("enforce: Options.Coordinator is required")
	}
	params, err := policy.ParamsFromConfig(o.Policy, o.Sites)
	if err != nil {
		return nil, fmt.Errorf("enforce: %w", err)
	}
	eng, err := policy.NewEngine(params)
	if err != nil {
		return nil, fmt.Errorf("enforce: %w", err)
	}
	l := &Loop{
		co: o.Coordinator, eng: eng, burstOpt: o.Burst, refresh: o.PolicyRefresh, egress: o.EgressBytes,
		onTick: o.OnTick, log: o.Logger, clock: monotonic,
		limiters: map[string]*limiter{}, sessions: map[string]*sessionState{},
		swarmIdx: map[coordinator.SwarmID]int{},
		stop:     make(chan struct{}), done: make(chan struct{}), retick: make(chan struct{}, 1),
	}
	l.set.Store(l.newSettings(o.Policy, params))
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.refresh <= 0 {
		l.refresh = time.Minute
	}
	for c := range l.reasons {
		l.reasons[c] = reasonText(policy.ReasonCode(c))
	}
	if l.tel, err = newTelemetry(params.PeakWindow); err != nil {
		return nil, fmt.Errorf("enforce: telemetry: %w", err)
	}
	l.join.Store(&joinLimits{unlimited: true})
	l.co.SetLimiterFactory(l.newSessionLimiter)
	return l, nil
}

// Start runs the loop in a goroutine: a first tick now takes the counters'
// baseline, then one tick per policy.tick. Stop it with Close.
func (l *Loop) Start() {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	if l.started || l.closed {
		return
	}
	l.started = true
	go l.run()
}

func (l *Loop) run() {
	defer close(l.done)
	l.Tick(time.Now())
	t := time.NewTicker(l.set.Load().tick)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.retick:
			// A new period (Reload): the next tick is one new period
			// from now.
			t.Reset(l.set.Load().tick)
		case <-t.C:
			// The time the tick runs, not the time it was due: the
			// counters are read now.
			l.Tick(time.Now())
		}
	}
}

// Close stops the loop (waiting for a tick in progress) and takes the
// limiters out of the coordinator's sessions, which are then admitted
// without limit.
func (l *Loop) Close() error {
	l.runMu.Lock()
	if l.closed {
		l.runMu.Unlock()
		return nil
	}
	l.closed = true
	started := l.started
	l.runMu.Unlock()
	close(l.stop)
	if started {
		<-l.done
	}
	l.co.SetLimiterFactory(nil)
	l.limMu.Lock()
	ids := make([]string, 0, len(l.limiters))
	for id := range l.limiters {
		ids = append(ids, id)
	}
	clear(l.limiters)
	l.limMu.Unlock()
	for _, id := range ids {
		_ = l.co.SetLimiter(id, nil)
	}
	return nil
}

// newSessionLimiter is the coordinator's limiter factory: a session that
// appeared since the last tick gets its site's floor and the decision's
// join allowance.
func (l *Loop) newSessionLimiter(s coordinator.SessionInfo) coordinator.Limiter {
	l.limMu.Lock()
	defer l.limMu.Unlock()
	if lim := l.limiters[s.ID]; lim != nil {
		return lim
	}
	st := l.set.Load()
	j := l.join.Load()
	share := j.leftBytesPerSec / 2
	lim := limits{
		floorBytesPerSec: st.floorBps(s.Site, s.Caps) / 8,
		allowBytesPerSec: share,
		unlimited:        j.unlimited,
		burst:            st.burst,
		retryAfter:       st.tick,
		reason:           reasonJoin,
	}
	if s.Swarm == (coordinator.SwarmID{}) {
		lim = st.unassisted(s.Site, s.Caps)
	} else if !j.unlimited {
		j.leftBytesPerSec -= share
	}
	x := newLimiter(s.ID, lim, l.clock)
	x.born = l.ticks.Load()
	l.limiters[s.ID] = x
	return x
}

// unassisted are the limits of a session in no swarm: no peers to turn to,
// so no limit (its urgent bytes are still counted against its floor).
func (st *settings) unassisted(site string, caps signal.Caps) limits {
	return limits{floorBytesPerSec: st.floorBps(site, caps) / 8, unlimited: true, burst: st.burst, retryAfter: st.tick}
}

// limiterFor returns the session's limiter and whether the loop made it
// now (it must then be installed).
func (l *Loop) limiterFor(id string, lim limits) (*limiter, bool) {
	l.limMu.Lock()
	defer l.limMu.Unlock()
	if x := l.limiters[id]; x != nil {
		return x, false
	}
	x := newLimiter(id, lim, l.clock)
	x.born = l.ticks.Load()
	l.limiters[id] = x
	return x, true
}

func (l *Loop) forgetLimiter(id string) {
	l.limMu.Lock()
	delete(l.limiters, id)
	l.limMu.Unlock()
}

func (l *Loop) existingLimiter(id string) *limiter {
	l.limMu.Lock()
	defer l.limMu.Unlock()
	return l.limiters[id]
}

// floorBps is a session's floor: its site's bitrate, else the stream
// bitrate it declared (see declaredFloorBps), else the basic rate.
func (st *settings) floorBps(site string, caps signal.Caps) float64 {
	if b, ok := st.params.SiteBitrateBps[site]; ok && b > 0 {
		return b
	}
	if f := st.declaredFloorBps(site, caps); f > 0 {
		return f
	}
	return st.params.BasicRateBps
}

// declaredFloorBps is the floor a session gets from the stream bitrate it
// declared (x_caps.bitrate_bps), at least the basic rate and at most
// policy.max_declared_bitrate_bps; 0 when the site sets a bitrate (the
// operator knows best), when the session declared none, or when declared
// bitrates are ignored.
func (st *settings) declaredFloorBps(site string, caps signal.Caps) float64 {
	if b, ok := st.params.SiteBitrateBps[site]; (ok && b > 0) || caps.BitrateBps <= 0 || st.maxDeclaredBps <= 0 {
		return 0
	}
	return max(st.params.BasicRateBps, min(float64(caps.BitrateBps), st.maxDeclaredBps))
}

const reasonJoin = "join: over the edge allowance of new sessions; fetch from peers"

// reasonText is the X-PA-Reason of a refusal under a decision's reason.
func reasonText(c policy.ReasonCode) string {
	switch c {
	case policy.ReasonStopped, policy.ReasonStopHeld:
		return c.String() + ": the edge is over its EBU cap; fetch non-urgent data from peers"
	case policy.ReasonFloorsOverCap:
		return c.String() + ": the edge serves floors only; fetch non-urgent data from peers"
	default:
		return c.String() + ": over the edge allowance; fetch from peers"
	}
}
