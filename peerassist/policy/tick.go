package policy

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Observation is what the edge saw during one tick: the input of
// Engine.Tick. Byte counters cover the period (Interval) ending at Now.
type Observation struct {
	// Now is the end of the observed period.
	Now time.Time
	// Interval is the period's length (the tick). Without a positive
	// interval no rate is known and every session is served its floor.
	Interval time.Duration
	// EdgeEgressBytes is all the edge sent in the period, including to
	// clients without a session; it feeds the observed peak. 0 (or less
	// than the sessions' edge bytes) means the sessions' edge bytes.
	EdgeEgressBytes int64
	// Swarms describes the swarms sessions belong to. A session may name a
	// swarm that is not listed; it then gets the default basic rate.
	Swarms []SwarmObs
	// Sessions are the peer-assisted sessions the edge knows. IDs are
	// assumed unique.
	Sessions []SessionObs
}

// SwarmObs describes one swarm.
type SwarmObs struct {
	// Key identifies the swarm (the coordinator's swarm ID).
	Key string
	// Site is the site the swarm's content belongs to (upload fractions and
	// bitrate by site).
	Site string
	// Video marks a video stream (CloudTracker's high-demand class).
	Video bool
	// BitrateBps is the stream bitrate where known: the swarm's basic rate.
	// 0 uses the site's bitrate, else Params.BasicRateBps.
	BitrateBps int64
}

// SessionObs is one session's counters for the period. Negative counters
// are a bad report: the session is served its floor.
type SessionObs struct {
	ID    string
	Swarm string
	// ASN is the session's ISP (for per-ISP upload fractions); 0 unknown.
	ASN uint32
	// Seed is true when the session holds the whole content.
	Seed bool
	// EdgeUrgentBytes and EdgeNonUrgentBytes are what the edge served the
	// session, split by the requests' urgency (urgent beyond the floor
	// counts as non-urgent). PeerBytes is what it reported receiving from
	// peers and UploadedBytes what it reported sending to peers.
	EdgeUrgentBytes    int64
	EdgeNonUrgentBytes int64
	PeerBytes          int64
	UploadedBytes      int64
	// DeclaredUploadBps is the upload capacity the peer declared; 0 uses
	// Params.DefaultUploadBps.
	DeclaredUploadBps int64
	// UploadOff is true when the peer (or its user) does not upload.
	UploadOff bool
	// DemandBps is the rate the session wants (a player's target fetch
	// rate, a download's link rate); 0 assumes Params.HighRateBps.
	DemandBps int64
	// FloorBps overrides the session's floor (e.g. the rendition it plays);
	// 0 uses the swarm's basic rate.
	FloorBps int64
	// MarksUrgent is true when the client marks the requests it needs now
	// (edge.UrgentHeader), as the web client and the Go peer do: the edge
	// then keeps its floor on the urgent path and its allowance need not
	// reserve it. For a client that never marks urgency the allowance
	// always includes what it lacks to reach its floor.
	MarksUrgent bool
}

// CapacitySource says where the capacity behind EBU came from.
type CapacitySource uint8

const (
	// CapacityUnknown: no configured capacity and the observed peak is
	// still warming up. The cap is not enforced.
	CapacityUnknown CapacitySource = iota
	// CapacityConfigured: Params.EdgeCapacityBps.
	CapacityConfigured
	// CapacityObservedPeak: the PeakTracker's peak (B_max).
	CapacityObservedPeak
)

func (c CapacitySource) String() string {
	switch c {
	case CapacityConfigured:
		return "configured"
	case CapacityObservedPeak:
		return "observed_peak"
	default:
		return "unknown"
	}
}

// ReasonCode says why a session got its allowance.
type ReasonCode uint8

const (
	// ReasonAllocated: the allowance is the session's share of the
	// allocation (its guarantee plus its share of the swarm's extra).
	ReasonAllocated ReasonCode = iota
	// ReasonStopped: EBU was over the cap and the session is among the k
	// with the highest download rates; it keeps its floor guarantee only.
	ReasonStopped
	// ReasonStopHeld: stopped by an earlier tick, within stop_hold.
	ReasonStopHeld
	// ReasonFloorsOverCap: the floors alone exceed the cap; every session
	// keeps its floor guarantee and nothing more.
	ReasonFloorsOverCap
	// ReasonMeasuringPeak: no capacity is known yet; no limit.
	ReasonMeasuringPeak
	// ReasonMissingInterval: the observation had no valid interval; the
	// session is allowed its floor.
	ReasonMissingInterval
	// ReasonBadReport: the session's counters were invalid; it is allowed
	// its floor.
	ReasonBadReport
	// ReasonNoSwarm: the session names no swarm; it is allowed its floor.
	ReasonNoSwarm
	// ReasonSeed: the session holds the whole content and needs nothing.
	ReasonSeed
	numReasons
)

var reasonNames = [numReasons]string{
	"allocated", "stopped_ebu", "stop_held", "floors_over_cap", "measuring_peak",
	"missing_interval", "bad_report", "no_swarm", "seed",
}

func (r ReasonCode) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reason is a decision's reason: a code for metrics and, for stops, a
// sentence for the span event.
type Reason struct {
	Code   ReasonCode
	Detail string
}

// SessionDecision is what the edge enforces for one session until the next
// tick, and what it pushes to the peer in its policy message.
type SessionDecision struct {
	// ID is the session's (decisions are in the observation's order).
	ID string
	// FloorBps is the session's basic rate: urgent requests within it are
	// always served.
	FloorBps int64
	// AllowanceBps is the non-urgent edge egress the session may draw;
	// meaningless when Unlimited.
	AllowanceBps int64
	Unlimited    bool
	// Stopped is true when the EBU cap stopped the session's non-urgent
	// edge fetches (this tick or within stop_hold): it should use peers.
	Stopped bool
	// UploadBudgetBps is the most the peer should upload.
	UploadBudgetBps int64
	// AtUploadBudget is true when the peer's reported uploads reached its
	// budget: route no more requests to it.
	AtUploadBudget bool
	Reason         Reason
}

// SwarmDecision is one swarm's class and share of the edge.
type SwarmDecision struct {
	Key string
	// Implicit is true for a swarm named by sessions but not listed.
	Implicit bool
	Class    Class
	// Links is CloudTracker's n for the class (see Classification).
	Links           int
	Leechers, Seeds int
	AvgRateBps      float64
	BasicRateBps    float64
	// EdgeBps is the edge egress the swarm drew (urgent and non-urgent).
	EdgeBps float64
	// GuaranteeBps is the non-urgent edge egress its sessions need to keep
	// their floors; AllowanceBps is the total of its sessions' allowances.
	GuaranteeBps, AllowanceBps float64
	// Curve is the swarm's fitted response curve, from CurveSamples ticks.
	Curve        Curve
	CurveSamples int
	// SlurpieProbability is k/n for chunks nobody in the swarm holds.
	SlurpieProbability float64
}

// Degraded counts observations the tick could not use as given.
type Degraded struct {
	// BadReports are sessions with negative counters.
	BadReports int
	// NoSwarm are sessions without a swarm key.
	NoSwarm int
	// ImplicitSwarms are swarms named by sessions but not listed.
	ImplicitSwarms int
	// DuplicateSwarms are listed swarms whose key was listed before (the
	// first wins) or is empty.
	DuplicateSwarms int
}

// Decision is the outcome of one tick.
type Decision struct {
	Now      time.Time
	Interval time.Duration
	// Tick counts the engine's ticks, from 1.
	Tick uint64

	CapacityBps    float64
	CapacitySource CapacitySource
	// EgressBps is all edge egress in the period; ExtraEgressBps the
	// non-urgent part to peer-assisted sessions.
	EgressBps, ExtraEgressBps float64
	// EBU is ExtraEgressBps / CapacityBps; EBUAfter the EBU if every
	// session keeps its rate within its new allowance. Both 0 when the
	// capacity is unknown.
	EBU, EBUAfter float64
	Cap           float64
	// HeadroomBps is Cap*CapacityBps: the non-urgent egress to share.
	// GuaranteeBps is what the floors take of it; AllocatedBps the sum of
	// the (limited) allowances.
	HeadroomBps, GuaranteeBps, AllocatedBps float64
	// FloorsOverCap is true when the guarantees alone exceed the headroom:
	// the floors win and EBU may stay over the cap.
	FloorsOverCap bool
	// JoinAllowanceBps is the non-urgent allowance for sessions that join
	// before the next tick: the headroom no swarm uses now, per session
	// (JoinUnlimited while the capacity is unknown). Their floors hold
	// through urgent requests.
	JoinAllowanceBps int64
	JoinUnlimited    bool
	// StopN and StopK are CloudTracker's N (sessions drawing non-urgent
	// edge egress) and k (stopped this tick) when EBU was over the cap.
	StopN, StopK int
	// Stopped counts sessions stopped this tick or held from earlier ones.
	Stopped int
	// ClassCounts counts swarms by class.
	ClassCounts [NumClasses]int
	Degraded    Degraded
	// Sessions has one decision per observed session, in the same order.
	Sessions []SessionDecision
	// Swarms has one decision per listed swarm (in order, duplicates
	// dropped), then the implicit ones.
	Swarms []SwarmDecision
}

// Engine runs the policy tick after tick. It holds what must persist
// between ticks: the observed peak, each swarm's response curve and the
// sessions stopped by the EBU cap. Everything else is computed from the
// observation; the same observations give the same decisions.
//
// Create one with NewEngine; the zero value is not usable. It is not safe
// for concurrent use: one policy loop owns it.
type Engine struct {
	p      Params
	peak   PeakTracker
	curves map[string]*swarmState
	stops  map[string]time.Time // session ID -> end of its stop hold
	tick   uint64

	// Scratch reused from tick to tick, so that a tick over 1M sessions
	// allocates nothing once the slices have grown.
	//
	// Swarms are numbered densely each tick (swIdx) and sessions refer to
	// them by number. What the passes over sessions read and add to per
	// swarm, in the random order sessions come in, is packed apart from
	// the rest: swarmInfo, swarmSums (one cache line) and swarmShare, a
	// few hundred KB for 10,000 swarms that stay in cache. Per session,
	// sessAgg keeps what decide needs: of the observation it reads only
	// the ID again.
	swIdx   map[string]int32
	sw      []swarmAgg   // identity, class, curve and allocation
	sums    []swarmSums  // totals of the aggregate pass
	shares  []swarmShare // what decide reads and adds to per session
	info    []swarmInfo  // what aggregate reads per session
	ss      []sessAgg
	guess   swarmGuesser
	sink    byte         // keeps touchKeys' reads
	ranked  []rankedStop // stop candidates
	hist    []int32      // selectTop's counters
	held    heldFilter
	details stopDetails
	ain     []AllocInput
	water   []waterTerm // Allocate's scratch
	aout    []float64
}

type swarmState struct {
	curve    ResponseCurve
	lastTick uint64
	// rebase: the parameters changed (SetParams) in a way that may have
	// moved the swarm's basic rate, the curve's offset: checked, and the
	// curve restarted if so, the next time the swarm is allocated.
	rebase bool
}

// swarmAgg is what the tick knows of a swarm beyond its totals.
type swarmAgg struct {
	key      string
	video    bool
	implicit bool
	class    Classification
	state    *swarmState
	curve    Curve
	extraBps float64 // the swarm's share of the headroom beyond guarantees
}

// swarmSums are a swarm's totals over its sessions, in one 64-byte cache
// line.
type swarmSums struct {
	edgeBps    float64 // edge egress (urgent and non-urgent)
	urgentBps  float64
	sumRateBps float64 // leechers' download rates
	guarantee  float64 // sum of the sessions' floor needs
	need       float64 // sum of what the sessions could use beyond them
	wantBps    float64

	leechers, seeds int32
	eligible        int32 // sessions that take part in the allocation
}

// swarmShare is what decide reads and adds up per session.
type swarmShare struct {
	perNeed  float64 // min(1, extra/need): the part of its need a session gets
	allowBps float64 // sum of the sessions' allowances
	hasNeed  bool    // need > 0 (perNeed is meaningful)
}

// swarmInfo is what aggregate reads of a swarm per session.
type swarmInfo struct {
	key      string
	basicBps float64 // basic rate: the default floor of its sessions
	siteFrac float64 // the site's upload fraction, when siteSet
	siteSet  bool
}

// sessAgg is what the aggregate pass found of a session, for decide.
type sessAgg struct {
	swarm     int32 // -1: none
	reason    ReasonCode
	stopped   bool
	atBudget  bool    // its uploads reached its budget
	floorBps  float64 // its basic rate
	guarantee float64 // non-urgent edge needed to reach the floor
	need      float64 // non-urgent edge it could use beyond that
	extraBps  float64 // non-urgent edge it drew
	rateBps   float64 // total download rate
	budgetBps float64 // upload budget
}

// NewEngine returns an engine with the given parameters.
func NewEngine(p Params) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy parameters: %w", err)
	}
	return &Engine{
		p:      p,
		peak:   PeakTracker{Window: p.PeakWindow, Warmup: p.PeakWarmup},
		curves: map[string]*swarmState{},
		stops:  map[string]time.Time{},
		swIdx:  map[string]int32{},
	}, nil
}

// Params returns the engine's parameters.
func (e *Engine) Params() Params { return e.p }

// SetParams replaces the engine's parameters from the next Tick (a
// configuration reload). Invalid parameters change nothing and are
// returned as the error. What the engine learned is kept where it still
// applies:
//   - the observed peak: its buckets are regrouped under a new PeakWindow
//     (see PeakTracker.SetWindow), and a new PeakWarmup counts from the
//     first observation, so a warm edge stays warm unless the warm-up grew
//     past its age;
//   - response curves: kept, forgetting at the new CurveMemory from their
//     next sample; the curve of a swarm whose basic rate changed (a site's
//     bitrate, or BasicRateBps) starts again, because its samples were fit
//     on the old offset and measured the demand of the old stream;
//   - stops held by the EBU cap: kept, each now ending StopHold after it
//     began.
//
// Rates, fractions, the cap, the capacity, SlurpieK and Exploration are
// read afresh by every tick. p's maps are the engine's from now on: the
// caller must not change them.
func (e *Engine) SetParams(p Params) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("policy parameters: %w", err)
	}
	old := e.p
	e.p = p
	e.peak.SetWindow(p.PeakWindow)
	e.peak.Warmup = p.PeakWarmup
	if d := p.StopHold - old.StopHold; d != 0 {
		for id, until := range e.stops {
			e.stops[id] = until.Add(d)
		}
	}
	rebase := p.BasicRateBps != old.BasicRateBps || !maps.Equal(p.SiteBitrateBps, old.SiteBitrateBps)
	for _, st := range e.curves {
		st.curve.Memory = p.CurveMemory
		st.rebase = st.rebase || rebase
	}
	return nil
}

// Tick turns one period's observations into decisions, written into out.
// out's slices are reused: keep one Decision between calls to avoid
// allocating, and copy what must outlive the next call.
//
// The steps: aggregate sessions into swarms and classify them; take the
// capacity (configured, or the observed peak once warm); if EBU is over
// the cap, stop the k sessions with the highest download rates; give every
// session what it needs to keep its floor; split the rest of the headroom
// across swarms by their response curves (with exploration), and within a
// swarm in proportion to what each session could use; spread what no
// swarm can use evenly as slack.
//
// The cost is linear in the sessions plus the allocation over the swarms:
// a pass over the observation (aggregate) and one writing the decisions,
// and when EBU is over the cap or stops are held, passes to choose the k
// fastest (a radix select, not a sort) and to find held IDs (through a
// Bloom filter). Once its scratch and out have grown, a tick allocates
// nothing per session: a tick under the cap allocates nothing at all (new
// swarms' curves aside), one over it the stop reasons (in shared chunks of
// 64 KB) and the stops map's growth. BenchmarkTickVsAllocate and BenchmarkTickVsReference measure
// it.
func (e *Engine) Tick(obs *Observation, out *Decision) {
	e.tick++
	sessions := slices.Grow(out.Sessions[:0], len(obs.Sessions))[:len(obs.Sessions)]
	*out = Decision{
		Now: obs.Now, Interval: obs.Interval, Tick: e.tick, Cap: e.p.EBUCap,
		Sessions: sessions, Swarms: out.Swarms[:0],
	}
	sec := obs.Interval.Seconds()
	if !(sec > 0) || math.IsInf(sec, 0) {
		e.tickWithoutRates(obs, out)
		return
	}
	bps := 8 / sec // bytes in the period to bits/s
	egress, extraTotal := e.aggregate(obs, out, bps)

	// Capacity: configured, or the observed peak once it is warm.
	out.EgressBps = math.Max(egress, float64(max(obs.EdgeEgressBytes, 0))*8/sec)
	out.ExtraEgressBps = extraTotal
	e.peak.Observe(obs.Now, out.EgressBps)
	switch peak, ok := e.peak.Peak(obs.Now); {
	case e.p.EdgeCapacityBps > 0:
		out.CapacityBps, out.CapacitySource = e.p.EdgeCapacityBps, CapacityConfigured
	case ok:
		out.CapacityBps, out.CapacitySource = peak, CapacityObservedPeak
	}
	capKnown := out.CapacitySource != CapacityUnknown
	stopped := false
	if capKnown {
		out.EBU = EBU(extraTotal, out.CapacityBps)
		out.HeadroomBps = e.p.EBUCap * out.CapacityBps
		stopped = e.stopOverCap(obs, out)
	}
	if e.applyHeldStops(obs) || stopped {
		e.recountNeeds()
	}
	slack := 0.0
	if capKnown {
		slack = e.allocate(out)
		out.JoinAllowanceBps = toBps(slack)
	} else {
		out.JoinUnlimited = true
	}
	e.decide(obs, out, capKnown, slack)
	e.evictCurves()
}

// tickWithoutRates serves every session its floor: without an interval no
// rate, EBU or curve can be computed.
func (e *Engine) tickWithoutRates(obs *Observation, out *Decision) {
	e.indexSwarms(obs, out)
	for i := range obs.Sessions {
		s := &obs.Sessions[i]
		j := e.swarmOf(s.Swarm, out)
		floor := e.floorOf(s, j)
		if j >= 0 {
			if s.Seed {
				e.sums[j].seeds++
			} else {
				e.sums[j].leechers++
			}
		}
		out.Sessions[i] = SessionDecision{
			ID: s.ID, FloorBps: toBps(floor), AllowanceBps: toBps(floor),
			UploadBudgetBps: toBps(e.budgetOf(s, j)),
			Reason:          Reason{Code: ReasonMissingInterval, Detail: "observation has no valid interval: serving the floor"},
		}
		out.GuaranteeBps += floor
	}
	out.AllocatedBps = out.GuaranteeBps
	out.JoinAllowanceBps = toBps(e.p.BasicRateBps)
	for j := range e.sw {
		w, sum := &e.sw[j], &e.sums[j]
		w.class = Classify(SwarmStats{Leechers: int(sum.leechers), Seeds: int(sum.seeds), BasicRateBps: e.info[j].basicBps, Video: w.video, AvgRateBps: math.NaN()})
		e.swarmDecision(j, out)
	}
}

// indexSwarms numbers the listed swarms densely, from 0 in their order,
// and resets their per-tick state.
func (e *Engine) indexSwarms(obs *Observation, out *Decision) {
	clear(e.swIdx)
	e.sw, e.sums, e.shares, e.info = e.sw[:0], e.sums[:0], e.shares[:0], e.info[:0]
	for _, s := range obs.Swarms {
		if _, dup := e.swIdx[s.Key]; dup || s.Key == "" {
			out.Degraded.DuplicateSwarms++
			continue
		}
		f, set := e.p.SiteUploadFractions[s.Site]
		e.addSwarm(s.Key, s.Video, false, e.basicOf(s.BitrateBps, s.Site), f, set && s.Site != "")
	}
}

func (e *Engine) addSwarm(key string, video, implicit bool, basicBps, siteFrac float64, siteSet bool) int32 {
	j := int32(len(e.sw))
	e.swIdx[key] = j
	e.sw = append(e.sw, swarmAgg{key: key, video: video, implicit: implicit})
	e.sums = append(e.sums, swarmSums{})
	e.shares = append(e.shares, swarmShare{})
	e.info = append(e.info, swarmInfo{key: key, basicBps: basicBps, siteFrac: siteFrac, siteSet: siteSet})
	return j
}

func (e *Engine) basicOf(bitrateBps int64, site string) float64 {
	if bitrateBps > 0 {
		return float64(bitrateBps)
	}
	if b, ok := e.p.SiteBitrateBps[site]; ok && b > 0 {
		return b
	}
	return e.p.BasicRateBps
}

// swarmOf returns the index of the swarm with the given key, adding an
// implicit one for an unlisted key; -1 for a session without a swarm.
func (e *Engine) swarmOf(key string, out *Decision) int32 {
	if key == "" {
		out.Degraded.NoSwarm++
		return -1
	}
	if j, ok := e.swIdx[key]; ok {
		return j
	}
	out.Degraded.ImplicitSwarms++
	return e.addSwarm(key, false, true, e.p.BasicRateBps, 0, false)
}

func (e *Engine) floorOf(s *SessionObs, j int32) float64 {
	if s.FloorBps > 0 {
		return float64(s.FloorBps)
	}
	if j >= 0 {
		return e.info[j].basicBps
	}
	return e.p.BasicRateBps
}

// budgetOf is UploadBudgetBps with the fraction of Params.UploadFractionFor,
// the site's part looked up once per swarm.
func (e *Engine) budgetOf(s *SessionObs, j int32) float64 {
	f, set := 0.0, false
	if j >= 0 && e.info[j].siteSet {
		f, set = e.info[j].siteFrac, true
	}
	if len(e.p.ISPUploadFractions) > 0 && s.ASN != 0 {
		if v, ok := e.p.ISPUploadFractions[s.ASN]; ok {
			if !set || v < f {
				f = v
			}
			set = true
		}
	}
	if !set {
		f = e.p.UploadFraction
	}
	return UploadBudgetBps(f, float64(s.DeclaredUploadBps), e.p.DefaultUploadBps, s.UploadOff)
}

// sessionRates is one session's rates and needs for the tick, in bits/s.
type sessionRates struct {
	bad       bool    // negative counters: nothing it reported is used
	floorBps  float64 // its basic rate
	urgentBps float64 // urgent edge
	extraBps  float64 // non-urgent edge
	upBps     float64
	rateBps   float64 // total download rate
	guarantee float64 // non-urgent edge needed to reach the floor
	need      float64 // non-urgent edge it could use beyond that
	wantBps   float64 // what it could use in all (leechers in a swarm)
}

// sessionRates computes a session's rates from its observation and its
// swarm's basic rate alone, so every pass of a tick that needs them gets
// the same values by recomputing them. The explicit float64 conversions
// round each product: Go may fuse a multiply-add on some architectures,
// and differently where the result is used differently.
func (e *Engine) sessionRates(s *SessionObs, j int32, bps float64) (r sessionRates) {
	r.floorBps = e.floorOf(s, j)
	if s.EdgeUrgentBytes < 0 || s.EdgeNonUrgentBytes < 0 || s.PeerBytes < 0 || s.UploadedBytes < 0 ||
		s.DeclaredUploadBps < 0 || s.DemandBps < 0 || s.FloorBps < 0 {
		// Nothing it reported can be trusted: serve its floor.
		r.bad, r.guarantee = true, r.floorBps
		return r
	}
	r.urgentBps = float64(float64(s.EdgeUrgentBytes) * bps)
	r.extraBps = float64(float64(s.EdgeNonUrgentBytes) * bps)
	r.upBps = float64(float64(s.UploadedBytes) * bps)
	peer := float64(float64(s.PeerBytes) * bps)
	r.rateBps = r.urgentBps + r.extraBps + peer
	switch {
	case j < 0:
		r.guarantee = r.floorBps
	case !s.Seed:
		// The floor is kept whatever happens; beyond it the session
		// could use up to its demand.
		have := peer + r.urgentBps
		if !s.MarksUrgent {
			r.guarantee = max(0, r.floorBps-have)
		}
		want := min(float64(s.DemandBps), maxDemandBps)
		if want <= 0 {
			want = max(e.p.HighRateBps, r.floorBps)
		}
		r.wantBps = want
		r.need = max(0, want-have-r.guarantee)
	}
	return r
}

// aggregate computes each session's swarm, reason and need, and each
// swarm's totals and class. It returns the edge egress and its non-urgent
// part.
func (e *Engine) aggregate(obs *Observation, out *Decision, bps float64) (egressBps, extraBps float64) {
	e.indexSwarms(obs, out)
	e.ss = slices.Grow(e.ss[:0], len(obs.Sessions))[:len(obs.Sessions)]
	guess := &e.guess
	guess.delta, guess.misses, guess.byPrev = 0, 0, false
	sessions := obs.Sessions
	for i := range sessions {
		s := &sessions[i]
		if i%readAhead == 0 && (guess.byPrev || guess.misses > 0) {
			e.sink ^= touchKeys(sessions[min(i+readAhead, len(sessions)):min(i+2*readAhead, len(sessions))])
		}
		paused := guess.misses >= 16
		if !paused {
			guess.ring[i&15] = e.ss[i].swarm // the last tick's, about to be overwritten
		}
		// The guess that hit last, inline; the others in find.
		j := int32(-1)
		if s.Swarm == "" {
			out.Degraded.NoSwarm++
		} else if p := i + guess.delta; !paused && !guess.byPrev && p >= i && p < len(e.ss) && e.isSwarm(e.ss[p].swarm, s.Swarm) {
			j = e.ss[p].swarm
			guess.misses = 0
		} else if !paused && guess.byPrev && i > 0 && e.isSwarm(e.ss[i-1].swarm, s.Swarm) {
			j = e.ss[i-1].swarm
			guess.misses = 0
		} else if paused && i%16 != 0 {
			j = e.swarmOf(s.Swarm, out)
		} else if j = guess.find(e.ss, e.info, i, s.Swarm); j < 0 {
			j = e.swarmOf(s.Swarm, out)
		}
		r := e.sessionRates(s, j, bps)
		budget := e.budgetOf(s, j)
		a := sessAgg{
			swarm: j, reason: ReasonAllocated,
			atBudget: budget <= 0 || r.upBps >= budget*(1-atBudgetTolerance),
			floorBps: r.floorBps, guarantee: r.guarantee, extraBps: r.extraBps, rateBps: r.rateBps, budgetBps: budget,
		}
		switch {
		case r.bad:
			a.reason = ReasonBadReport
			out.Degraded.BadReports++
		default:
			egressBps += r.urgentBps + r.extraBps
			extraBps += r.extraBps
		}
		switch {
		case j < 0:
			if !r.bad {
				a.reason = ReasonNoSwarm
			}
		case s.Seed:
			a.reason = ReasonSeed
		}
		if j >= 0 {
			w := &e.sums[j]
			if !r.bad && !s.Seed {
				a.need = r.need
				w.need += r.need
				w.wantBps += r.wantBps
				w.eligible++
			}
			if s.Seed {
				w.seeds++
			} else {
				w.leechers++
				w.sumRateBps += r.rateBps
			}
			w.edgeBps += r.urgentBps + r.extraBps
			w.urgentBps += r.urgentBps
			w.guarantee += r.guarantee
		}
		out.GuaranteeBps += r.guarantee
		e.ss[i] = a
	}
	for j := range e.sw {
		w, sum := &e.sw[j], &e.sums[j]
		avg := 0.0
		if sum.leechers > 0 {
			avg = sum.sumRateBps / float64(sum.leechers)
		}
		w.class = Classify(SwarmStats{Leechers: int(sum.leechers), Seeds: int(sum.seeds), AvgRateBps: avg, BasicRateBps: e.info[j].basicBps, Video: w.video})
	}
	return egressBps, extraBps
}

// readAhead is how many sessions ahead aggregate reads the sessions' swarm
// keys (touchKeys).
const readAhead = 16

// touchKeys reads the first byte of each session's swarm key and returns
// them xored (for the caller to keep, so the reads stay). The keys are
// strings the caller allocated, anywhere in memory: read one at a time as
// each session is aggregated, each can cost a cache miss that stalls the
// pass (tens of ns, as much as the rest of the session's work). Read in a
// burst some sessions ahead, the misses overlap. Aggregate does it while
// the sessions do not follow the last tick's order (in that order the
// keys were read in the same order last tick, and likely lie in it).
func touchKeys(ss []SessionObs) (x byte) {
	for i := range ss {
		if k := ss[i].Swarm; len(k) > 0 {
			x ^= k[0]
		}
	}
	return x
}

// swarmGuesser saves most of the map lookups that find each session's
// swarm by its key, by guessing and checking the guess against the key
// (keys that share their bytes, as when the caller passes the swarm's own
// key string, compare in O(1)). Callers list sessions in much the same
// order tick after tick, with a few joining and leaving, or swarm by
// swarm. So the guesses are: the swarm of the session at the same place in
// the last tick, allowing for the shift that sessions leaving or joining
// before it caused (delta, followed one place at a time); and the swarm
// of the previous session. The one that hit last is tried first, inline
// in aggregate. The last tick's swarms are in e.ss until aggregate
// overwrites them, those of the 15 places before the current one in ring.
// When sessions come in an order no guess follows (a miss costs up to four
// string comparisons, more than a lookup), guessing pauses: after 16
// sessions in a row that no guess found, it is tried on one session in 16
// until it hits again.
type swarmGuesser struct {
	ring   [16]int32 // the last tick's swarm at places i-15..i, by place%16
	delta  int       // this tick's place i held the last tick's i+delta
	misses int       // sessions in a row that no guess found
	byPrev bool      // the last hit was the previous session's swarm
}

// find returns the swarm of the session at place i with the given key, or
// -1 when no guess is right; aggregate has tried the first guess (the same
// place shifted by delta) inline.
func (g *swarmGuesser) find(ss []sessAgg, info []swarmInfo, i int, key string) int32 {
	if i > 0 {
		if j := ss[i-1].swarm; j >= 0 && info[j].key == key {
			g.misses, g.byPrev = 0, true
			return j
		}
	}
	for _, d := range [...]int{0, 1, -1} {
		if j := g.last(ss, i, i+g.delta+d); uint(j) < uint(len(info)) && info[j].key == key {
			g.delta += d
			g.misses, g.byPrev = 0, false
			return j
		}
	}
	g.misses++
	return -1
}

// last returns the swarm index of the last tick's session at place p, or
// -1 if it is not at hand; i is the place aggregate is at.
func (g *swarmGuesser) last(ss []sessAgg, i, p int) int32 {
	switch {
	case p >= i && p < len(ss):
		return ss[p].swarm
	case p < i && p > i-16 && p >= 0:
		return g.ring[p&15]
	}
	return -1
}

// isSwarm reports whether j is the index of this tick's swarm with key.
func (e *Engine) isSwarm(j int32, key string) bool {
	return uint(j) < uint(len(e.info)) && e.info[j].key == key
}

// stop takes a session out of the allocation: it keeps its floor
// guarantee only. The swarms' totals are recounted by recountNeeds.
func (e *Engine) stop(a *sessAgg, reason ReasonCode) bool {
	if a.stopped || a.reason == ReasonBadReport || a.swarm < 0 || a.reason == ReasonSeed {
		return false
	}
	a.stopped, a.reason, a.need = true, reason, 0
	return true
}

// recountNeeds recomputes the swarms' needs and eligible sessions after
// stops (recounting rather than subtracting keeps a huge need, from a
// session that reported an absurd demand, from swamping the others in
// float rounding).
func (e *Engine) recountNeeds() {
	for j := range e.sums {
		e.sums[j].need, e.sums[j].eligible = 0, 0
	}
	for i := range e.ss {
		if a := &e.ss[i]; a.reason == ReasonAllocated && a.swarm >= 0 {
			w := &e.sums[a.swarm]
			w.need += a.need
			w.eligible++
		}
	}
}

// stopOverCap applies CloudTracker's rule when EBU is over the cap: the k
// sessions with the highest download rates among the N drawing non-urgent
// edge egress stop non-urgent fetches for StopHold. It returns whether it
// stopped any: the swarms' needs must then be recounted.
func (e *Engine) stopOverCap(obs *Observation, out *Decision) bool {
	if !(out.EBU > e.p.EBUCap) {
		return false
	}
	e.ranked = e.ranked[:0]
	for i := range e.ss {
		// Allocated here means: a valid report, in a swarm, not a seed.
		if a := &e.ss[i]; a.reason == ReasonAllocated && a.extraBps > 0 {
			e.ranked = append(e.ranked, rankedStop{key: rateKey(a.rateBps), idx: int32(i)})
		}
	}
	out.StopN = len(e.ranked)
	out.StopK = StopCount(out.StopN, out.EBU, e.p.EBUCap)
	if len(e.hist) == 0 {
		e.hist = make([]int32, 1<<16)
	}
	until := obs.Now.Add(e.p.StopHold)
	idOf := func(i int32) string { return obs.Sessions[i].ID }
	for _, c := range selectTop(e.ranked, out.StopK, idOf, e.hist) {
		e.stop(&e.ss[c.idx], ReasonStopped)
		e.stops[obs.Sessions[c.idx].ID] = until
	}
	return out.StopK > 0
}

// applyHeldStops marks sessions stopped by earlier ticks and forgets stops
// whose hold ended. It returns whether it stopped any.
func (e *Engine) applyHeldStops(obs *Observation) bool {
	if len(e.stops) == 0 {
		return false
	}
	for id, until := range e.stops {
		if !until.After(obs.Now) {
			delete(e.stops, id)
		}
	}
	if len(e.stops) == 0 {
		return false
	}
	e.held.reset(len(e.stops))
	for id := range e.stops {
		e.held.add(id)
	}
	changed := false
	for i := range e.ss {
		// Only sessions still allocated can be stopped (see stop).
		if a := &e.ss[i]; a.reason == ReasonAllocated {
			if id := obs.Sessions[i].ID; e.held.mayHold(id) {
				if _, held := e.stops[id]; held {
					changed = e.stop(a, ReasonStopHeld) || changed
				}
			}
		}
	}
	return changed
}

// allocate splits the headroom left after the guarantees across swarms by
// their response curves, explores around the optimum, and records each
// swarm's extra and the part of its sessions' needs it covers. It returns
// the slack per eligible session: the headroom no swarm can use now.
func (e *Engine) allocate(out *Decision) (slackPerSession float64) {
	slack := e.allocateExtra(out)
	for j := range e.sums {
		if need := e.sums[j].need; need > 0 {
			e.shares[j].hasNeed = true
			e.shares[j].perNeed = math.Min(1, e.sw[j].extraBps/need)
		}
	}
	return slack
}

func (e *Engine) allocateExtra(out *Decision) (slackPerSession float64) {
	extra := out.HeadroomBps - out.GuaranteeBps
	if extra <= 0 {
		out.FloorsOverCap = out.GuaranteeBps > out.HeadroomBps
		return 0
	}
	e.ain = slices.Grow(e.ain[:0], len(e.sw))[:len(e.sw)]
	e.aout = slices.Grow(e.aout[:0], len(e.sw))[:len(e.sw)]
	for j := range e.sw {
		w, sum := &e.sw[j], &e.sums[j]
		e.ain[j] = AllocInput{}
		if sum.leechers == 0 {
			continue
		}
		st := e.curves[w.key]
		if st != nil && st.rebase {
			st.rebase = false
			if st.curve.BetaBps != e.info[j].basicBps {
				st = nil // fit on another basic rate: start again
			}
		}
		if st == nil {
			st = &swarmState{curve: ResponseCurve{BetaBps: e.info[j].basicBps, Memory: e.p.CurveMemory}}
			e.curves[w.key] = st
		}
		st.lastTick = e.tick
		st.curve.Observe(sum.edgeBps, sum.sumRateBps)
		w.state = st
		c, ok := st.curve.Fit()
		if !ok {
			c = priorCurve(int(sum.leechers), e.info[j].basicBps)
		}
		w.curve = c
		// The allocation is of total edge bandwidth (the curve's b): the
		// swarm keeps its urgent egress and guarantees, and can use up to
		// its sessions' needs on top, or less where its curve saturates.
		lo := sum.urgentBps + sum.guarantee
		hi := lo + math.Max(sum.need, 0)
		if sat := c.EdgeForRate(sum.wantBps); sat < hi {
			hi = math.Max(sat, lo)
		}
		e.ain[j] = AllocInput{Curve: c, MinBps: lo, MaxBps: hi}
	}
	leftover, water := allocate(e.ain, extra, e.aout, e.water)
	e.water = water

	// Explore: move each swarm's share up or down by Exploration, the sign
	// alternating by tick and swarm, so that every curve sees samples on
	// both sides of its operating point.
	used := 0.0
	for j := range e.sw {
		in := e.ain[j]
		b := e.aout[j]
		if eps := e.p.Exploration; eps > 0 && b > in.MinBps && in.MaxBps > in.MinBps {
			if (e.tick+fnv32(e.sw[j].key))&1 == 0 {
				eps = -eps
			}
			b = math.Min(math.Max(b*(1+eps), in.MinBps), in.MaxBps)
		}
		e.sw[j].extraBps = math.Max(0, b-in.MinBps)
		used += e.sw[j].extraBps
	}
	if target := extra - leftover; used > target && used > 0 {
		scale := target / used
		used = 0
		for j := range e.sw {
			e.sw[j].extraBps *= scale
			used += e.sw[j].extraBps
		}
	}
	// What no swarm can use now is spread over all eligible sessions as
	// slack, so a session whose demand grows before the next tick is not
	// held back while the edge has room under the cap.
	eligible := 0
	for j := range e.sums {
		eligible += int(e.sums[j].eligible)
	}
	if slack := extra - used; slack > 0 {
		return slack / float64(max(eligible, 1))
	}
	return 0
}

// decide writes the session decisions (guarantee, plus the swarm's extra
// in proportion to the session's need, plus slack) and the swarm
// decisions.
func (e *Engine) decide(obs *Observation, out *Decision, capKnown bool, slack float64) {
	extraAfter := 0.0
	details := &e.details
	if out.StopK > 0 {
		details.start(out, &e.p)
	}
	for i := range e.ss {
		a := &e.ss[i]
		d := SessionDecision{
			ID:              obs.Sessions[i].ID,
			FloorBps:        toBps(a.floorBps),
			Stopped:         a.stopped,
			UploadBudgetBps: toBps(a.budgetBps),
			AtUploadBudget:  a.atBudget,
			Reason:          Reason{Code: a.reason},
		}
		allow := a.guarantee
		switch {
		case a.reason == ReasonAllocated && !capKnown:
			d.Unlimited = true
			d.Reason.Code = ReasonMeasuringPeak
		case a.reason == ReasonAllocated:
			if sh := &e.shares[a.swarm]; sh.hasNeed && a.need > 0 {
				allow += a.need * sh.perNeed
			}
			allow += slack
			if out.FloorsOverCap {
				d.Reason.Code = ReasonFloorsOverCap
			}
		case a.reason == ReasonStopped:
			details.add(out, i, a.rateBps, a.floorBps)
		}
		if a.stopped {
			out.Stopped++
		}
		if d.Unlimited {
			extraAfter += a.extraBps
		} else {
			d.AllowanceBps = toBps(allow)
			out.AllocatedBps += allow
			extraAfter += min(a.extraBps, allow)
			if a.swarm >= 0 {
				e.shares[a.swarm].allowBps += allow
			}
		}
		out.Sessions[i] = d
	}
	details.flush(out)
	if capKnown {
		out.EBUAfter = EBU(extraAfter, out.CapacityBps)
	}
	for j := range e.sw {
		e.swarmDecision(j, out)
	}
}

// maxDemandBps bounds a session's reported demand (100 Gbit/s: more than
// any access link), so that an absurd report cannot distort its swarm's
// totals.
const maxDemandBps = 100e9

// atBudgetTolerance treats a peer within 2% of its upload budget as at it
// (reports are rounded to chunks).
const atBudgetTolerance = 0.02

func (e *Engine) swarmDecision(j int, out *Decision) {
	w, sum := &e.sw[j], &e.sums[j]
	avg := 0.0
	if sum.leechers > 0 {
		avg = sum.sumRateBps / float64(sum.leechers)
	}
	d := SwarmDecision{
		Key: w.key, Implicit: w.implicit, Class: w.class.Class, Links: w.class.Links,
		Leechers: int(sum.leechers), Seeds: int(sum.seeds), AvgRateBps: avg, BasicRateBps: e.info[j].basicBps,
		EdgeBps: sum.edgeBps, GuaranteeBps: sum.guarantee, AllowanceBps: e.shares[j].allowBps, Curve: w.curve,
		SlurpieProbability: SlurpieProbability(e.p.SlurpieK, int(sum.leechers+sum.seeds)),
	}
	if w.state != nil {
		d.CurveSamples = w.state.curve.Samples()
	}
	out.ClassCounts[w.class.Class]++
	out.Swarms = append(out.Swarms, d)
}

// evictCurves forgets the curves of swarms not seen for five memories.
func (e *Engine) evictCurves() {
	ttl := uint64(math.Ceil(5*e.p.CurveMemory)) + 1
	if e.tick%ttl != 0 {
		return
	}
	for k, st := range e.curves {
		if st.lastTick+ttl < e.tick {
			delete(e.curves, k)
		}
	}
}

func toBps(v float64) int64 {
	switch {
	case !(v > 0):
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	default:
		return int64(v)
	}
}

// fnv32 is FNV-1a: a stable hash of a swarm key for the exploration sign.
func fnv32(s string) uint64 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return uint64(h)
}
