package policy

// The reference engine: the policy tick as first written (commit 7fd3156
// and its follow-ups, before the single-core speed work), kept verbatim
// but for names. It is the straightforward version: maps keyed by strings
// per session, a full sort of the stop candidates, a formatted reason per
// stopped session. TestTickMatchesReference checks that Engine decides
// exactly as it does; keep it unchanged unless the policy itself changes
// (then change both, and say why).

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// refEngine runs the policy tick after tick. It holds what must persist
// between ticks: the observed peak, each swarm's response curve and the
// sessions stopped by the EBU cap. Everything else is computed from the
// observation; the same observations give the same decisions.
//
// Create one with newRefEngine; the zero value is not usable. It is not safe
// for concurrent use: one policy loop owns it.
type refEngine struct {
	p      Params
	peak   PeakTracker
	curves map[string]*refSwarmState
	stops  map[string]time.Time // session ID -> end of its stop hold
	tick   uint64

	// Scratch reused from tick to tick: a tick over 1M sessions must not
	// allocate per session.
	swIdx map[string]int32
	sw    []refSwarmAgg
	ss    []refSessAgg
	cands []StopCandidate
	ain   []AllocInput
	aout  []float64
}

type refSwarmState struct {
	curve    ResponseCurve
	lastTick uint64
}

// refSwarmAgg is one swarm's totals for the tick.
type refSwarmAgg struct {
	key        string
	site       string
	video      bool
	implicit   bool
	basicBps   float64
	siteFrac   float64 // the site's upload fraction, when siteSet
	siteSet    bool
	leechers   int
	seeds      int
	sumRateBps float64
	edgeBps    float64
	urgentBps  float64
	guarantee  float64 // sum of the sessions' floor needs
	need       float64 // sum of what the sessions could use beyond them
	wantBps    float64
	eligible   int // sessions that take part in the allocation
	class      Classification
	state      *refSwarmState
	curve      Curve
	extraBps   float64 // the swarm's share of the headroom beyond guarantees
	allowBps   float64
}

// refSessAgg is one session's rates (bits/s) and shares for the tick.
type refSessAgg struct {
	swarm     int32 // -1: none
	reason    ReasonCode
	stopped   bool
	bad       bool
	rateBps   float64 // total download rate
	urgentBps float64 // urgent edge
	extraBps  float64 // non-urgent edge
	upBps     float64
	floorBps  float64
	guarantee float64 // non-urgent edge needed to reach the floor
	need      float64 // non-urgent edge it could use beyond that
}

// newRefEngine returns an engine with the given parameters.
func newRefEngine(p Params) (*refEngine, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy parameters: %w", err)
	}
	return &refEngine{
		p:      p,
		peak:   PeakTracker{Window: p.PeakWindow, Warmup: p.PeakWarmup},
		curves: map[string]*refSwarmState{},
		stops:  map[string]time.Time{},
		swIdx:  map[string]int32{},
	}, nil
}

// Params returns the engine's parameters.
func (e *refEngine) Params() Params { return e.p }

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
func (e *refEngine) Tick(obs *Observation, out *Decision) {
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
	egress, extraTotal := e.aggregate(obs, out, sec)

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
	if capKnown {
		out.EBU = EBU(extraTotal, out.CapacityBps)
		out.HeadroomBps = e.p.EBUCap * out.CapacityBps
		e.stopOverCap(obs, out)
	}
	e.applyHeldStops(obs)
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
func (e *refEngine) tickWithoutRates(obs *Observation, out *Decision) {
	e.indexSwarms(obs, out)
	for i := range obs.Sessions {
		s := &obs.Sessions[i]
		j := e.swarmOf(s, out)
		floor := e.floorOf(s, j)
		if j >= 0 {
			if s.Seed {
				e.sw[j].seeds++
			} else {
				e.sw[j].leechers++
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
		a := &e.sw[j]
		a.class = Classify(SwarmStats{Leechers: a.leechers, Seeds: a.seeds, BasicRateBps: a.basicBps, Video: a.video, AvgRateBps: math.NaN()})
		e.swarmDecision(a, out)
	}
}

// indexSwarms fills e.sw and e.swIdx from the listed swarms.
func (e *refEngine) indexSwarms(obs *Observation, out *Decision) {
	clear(e.swIdx)
	e.sw = e.sw[:0]
	for _, s := range obs.Swarms {
		if _, dup := e.swIdx[s.Key]; dup || s.Key == "" {
			out.Degraded.DuplicateSwarms++
			continue
		}
		e.swIdx[s.Key] = int32(len(e.sw))
		f, set := e.p.SiteUploadFractions[s.Site]
		e.sw = append(e.sw, refSwarmAgg{
			key: s.Key, site: s.Site, video: s.Video, basicBps: e.basicOf(s.BitrateBps, s.Site),
			siteFrac: f, siteSet: set && s.Site != "",
		})
	}
}

func (e *refEngine) basicOf(bitrateBps int64, site string) float64 {
	if bitrateBps > 0 {
		return float64(bitrateBps)
	}
	if b, ok := e.p.SiteBitrateBps[site]; ok && b > 0 {
		return b
	}
	return e.p.BasicRateBps
}

// swarmOf returns the index of the session's swarm, adding an implicit one
// for an unlisted key; -1 for a session without a swarm.
func (e *refEngine) swarmOf(s *SessionObs, out *Decision) int32 {
	if s.Swarm == "" {
		out.Degraded.NoSwarm++
		return -1
	}
	if j, ok := e.swIdx[s.Swarm]; ok {
		return j
	}
	j := int32(len(e.sw))
	e.swIdx[s.Swarm] = j
	e.sw = append(e.sw, refSwarmAgg{key: s.Swarm, implicit: true, basicBps: e.p.BasicRateBps})
	out.Degraded.ImplicitSwarms++
	return j
}

func (e *refEngine) floorOf(s *SessionObs, j int32) float64 {
	if s.FloorBps > 0 {
		return float64(s.FloorBps)
	}
	if j >= 0 {
		return e.sw[j].basicBps
	}
	return e.p.BasicRateBps
}

// budgetOf is UploadBudgetBps with the fraction of Params.UploadFractionFor,
// the site's part looked up once per swarm.
func (e *refEngine) budgetOf(s *SessionObs, j int32) float64 {
	f, set := 0.0, false
	if j >= 0 && e.sw[j].siteSet {
		f, set = e.sw[j].siteFrac, true
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

// aggregate computes each session's rates, floor need and usable extra,
// and each swarm's totals and class. It returns the edge egress and its
// non-urgent part.
func (e *refEngine) aggregate(obs *Observation, out *Decision, sec float64) (egressBps, extraBps float64) {
	e.indexSwarms(obs, out)
	e.ss = slices.Grow(e.ss[:0], len(obs.Sessions))[:len(obs.Sessions)]
	bps := 8 / sec
	for i := range obs.Sessions {
		s := &obs.Sessions[i]
		a := &e.ss[i]
		j := e.swarmOf(s, out)
		*a = refSessAgg{swarm: j, floorBps: e.floorOf(s, j)}
		if s.EdgeUrgentBytes < 0 || s.EdgeNonUrgentBytes < 0 || s.PeerBytes < 0 || s.UploadedBytes < 0 ||
			s.DeclaredUploadBps < 0 || s.DemandBps < 0 || s.FloorBps < 0 {
			// Nothing it reported can be trusted: serve its floor.
			a.bad, a.reason, a.guarantee = true, ReasonBadReport, a.floorBps
			out.Degraded.BadReports++
		} else {
			a.urgentBps = float64(s.EdgeUrgentBytes) * bps
			a.extraBps = float64(s.EdgeNonUrgentBytes) * bps
			a.upBps = float64(s.UploadedBytes) * bps
			peer := float64(s.PeerBytes) * bps
			a.rateBps = a.urgentBps + a.extraBps + peer
			egressBps += a.urgentBps + a.extraBps
			extraBps += a.extraBps
			if j >= 0 && !s.Seed {
				// The floor is kept whatever happens; beyond it the
				// session could use up to its demand.
				have := peer + a.urgentBps
				if !s.MarksUrgent {
					a.guarantee = math.Max(0, a.floorBps-have)
				}
				want := math.Min(float64(s.DemandBps), maxDemandBps)
				if want <= 0 {
					want = math.Max(e.p.HighRateBps, a.floorBps)
				}
				a.need = math.Max(0, want-have-a.guarantee)
				w := &e.sw[j]
				w.need += a.need
				w.wantBps += want
				w.eligible++
			}
		}
		switch {
		case j < 0:
			if !a.bad {
				a.reason, a.guarantee = ReasonNoSwarm, a.floorBps
			}
		case s.Seed:
			a.reason = ReasonSeed
			e.sw[j].seeds++
		default:
			w := &e.sw[j]
			w.leechers++
			w.sumRateBps += a.rateBps
		}
		if j >= 0 {
			w := &e.sw[j]
			w.edgeBps += a.urgentBps + a.extraBps
			w.urgentBps += a.urgentBps
			w.guarantee += a.guarantee
		}
		out.GuaranteeBps += a.guarantee
	}
	for j := range e.sw {
		w := &e.sw[j]
		avg := 0.0
		if w.leechers > 0 {
			avg = w.sumRateBps / float64(w.leechers)
		}
		w.class = Classify(SwarmStats{Leechers: w.leechers, Seeds: w.seeds, AvgRateBps: avg, BasicRateBps: w.basicBps, Video: w.video})
	}
	return egressBps, extraBps
}

// stop takes a session out of the allocation: it keeps its floor
// guarantee only. The swarms' totals are recounted by recountNeeds.
func (e *refEngine) stop(a *refSessAgg, reason ReasonCode) bool {
	if a.stopped || a.bad || a.swarm < 0 || a.reason == ReasonSeed {
		return false
	}
	a.stopped, a.reason, a.need = true, reason, 0
	return true
}

// recountNeeds recomputes the swarms' needs and eligible sessions after
// stops (recounting rather than subtracting keeps a huge need, from a
// session that reported an absurd demand, from swamping the others in
// float rounding).
func (e *refEngine) recountNeeds() {
	for j := range e.sw {
		e.sw[j].need, e.sw[j].eligible = 0, 0
	}
	for i := range e.ss {
		if a := &e.ss[i]; a.reason == ReasonAllocated && a.swarm >= 0 {
			w := &e.sw[a.swarm]
			w.need += a.need
			w.eligible++
		}
	}
}

// stopOverCap applies CloudTracker's rule when EBU is over the cap: the k
// sessions with the highest download rates among the N drawing non-urgent
// edge egress stop non-urgent fetches for StopHold.
func (e *refEngine) stopOverCap(obs *Observation, out *Decision) {
	if !(out.EBU > e.p.EBUCap) {
		return
	}
	e.cands = e.cands[:0]
	for i := range e.ss {
		if a := &e.ss[i]; a.extraBps > 0 && !a.bad && a.swarm >= 0 && a.reason != ReasonSeed {
			e.cands = append(e.cands, StopCandidate{Index: i, ID: obs.Sessions[i].ID, RateBps: a.rateBps})
		}
	}
	out.StopN = len(e.cands)
	out.StopK = StopCount(out.StopN, out.EBU, e.p.EBUCap)
	until := obs.Now.Add(e.p.StopHold)
	for _, c := range SelectStops(e.cands, out.StopK) {
		e.stop(&e.ss[c.Index], ReasonStopped)
		e.stops[c.ID] = until
	}
	e.recountNeeds()
}

// applyHeldStops marks sessions stopped by earlier ticks and forgets stops
// whose hold ended.
func (e *refEngine) applyHeldStops(obs *Observation) {
	if len(e.stops) == 0 {
		return
	}
	for id, until := range e.stops {
		if !until.After(obs.Now) {
			delete(e.stops, id)
		}
	}
	changed := false
	for i := range e.ss {
		if _, held := e.stops[obs.Sessions[i].ID]; held {
			changed = e.stop(&e.ss[i], ReasonStopHeld) || changed
		}
	}
	if changed {
		e.recountNeeds()
	}
}

// allocate splits the headroom left after the guarantees across swarms by
// their response curves, explores around the optimum, and records each
// swarm's extra. It returns the slack per eligible session: the headroom
// no swarm can use now.
func (e *refEngine) allocate(out *Decision) (slackPerSession float64) {
	extra := out.HeadroomBps - out.GuaranteeBps
	if extra <= 0 {
		out.FloorsOverCap = out.GuaranteeBps > out.HeadroomBps
		return 0
	}
	e.ain = slices.Grow(e.ain[:0], len(e.sw))[:len(e.sw)]
	e.aout = slices.Grow(e.aout[:0], len(e.sw))[:len(e.sw)]
	for j := range e.sw {
		w := &e.sw[j]
		e.ain[j] = AllocInput{}
		if w.leechers == 0 {
			continue
		}
		st := e.curves[w.key]
		if st == nil {
			st = &refSwarmState{curve: ResponseCurve{BetaBps: w.basicBps, Memory: e.p.CurveMemory}}
			e.curves[w.key] = st
		}
		st.lastTick = e.tick
		st.curve.Observe(w.edgeBps, w.sumRateBps)
		w.state = st
		c, ok := st.curve.Fit()
		if !ok {
			c = priorCurve(w.leechers, w.basicBps)
		}
		w.curve = c
		// The allocation is of total edge bandwidth (the curve's b): the
		// swarm keeps its urgent egress and guarantees, and can use up to
		// its sessions' needs on top, or less where its curve saturates.
		lo := w.urgentBps + w.guarantee
		hi := lo + math.Max(w.need, 0)
		if sat := c.EdgeForRate(w.wantBps); sat < hi {
			hi = math.Max(sat, lo)
		}
		e.ain[j] = AllocInput{Curve: c, MinBps: lo, MaxBps: hi}
	}
	leftover := Allocate(e.ain, extra, e.aout)

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
	for j := range e.sw {
		eligible += e.sw[j].eligible
	}
	if slack := extra - used; slack > 0 {
		return slack / float64(max(eligible, 1))
	}
	return 0
}

// decide writes the session decisions (guarantee, plus the swarm's extra
// in proportion to the session's need, plus slack) and the swarm
// decisions.
func (e *refEngine) decide(obs *Observation, out *Decision, capKnown bool, slack float64) {
	extraAfter := 0.0
	for i := range e.ss {
		a := &e.ss[i]
		s := &obs.Sessions[i]
		d := &out.Sessions[i]
		budget := e.budgetOf(s, a.swarm)
		d.ID = s.ID
		d.FloorBps = toBps(a.floorBps)
		d.AllowanceBps = 0
		d.Unlimited = false
		d.Stopped = a.stopped
		d.UploadBudgetBps = toBps(budget)
		d.AtUploadBudget = budget <= 0 || a.upBps >= budget*(1-atBudgetTolerance)
		d.Reason = Reason{Code: a.reason}
		allow := a.guarantee
		switch {
		case a.reason == ReasonAllocated && !capKnown:
			d.Unlimited = true
			d.Reason.Code = ReasonMeasuringPeak
		case a.reason == ReasonAllocated:
			if w := &e.sw[a.swarm]; w.need > 0 && a.need > 0 {
				allow += a.need * math.Min(1, w.extraBps/w.need)
			}
			allow += slack
			if out.FloorsOverCap {
				d.Reason.Code = ReasonFloorsOverCap
			}
		case a.reason == ReasonStopped:
			d.Reason.Detail = fmt.Sprintf("EBU %.3f over cap %.2f: download rate %.0f bit/s is among the %d highest of %d sessions drawing non-urgent edge egress; non-urgent edge fetches stop for %s (floor %.0f bit/s kept)",
				out.EBU, e.p.EBUCap, a.rateBps, out.StopK, out.StopN, e.p.StopHold, a.floorBps)
		}
		if a.stopped {
			out.Stopped++
		}
		if d.Unlimited {
			extraAfter += a.extraBps
			continue
		}
		d.AllowanceBps = toBps(allow)
		out.AllocatedBps += allow
		extraAfter += math.Min(a.extraBps, allow)
		if a.swarm >= 0 {
			e.sw[a.swarm].allowBps += allow
		}
	}
	if capKnown {
		out.EBUAfter = EBU(extraAfter, out.CapacityBps)
	}
	for j := range e.sw {
		e.swarmDecision(&e.sw[j], out)
	}
}

func (e *refEngine) swarmDecision(w *refSwarmAgg, out *Decision) {
	avg := 0.0
	if w.leechers > 0 {
		avg = w.sumRateBps / float64(w.leechers)
	}
	d := SwarmDecision{
		Key: w.key, Implicit: w.implicit, Class: w.class.Class, Links: w.class.Links,
		Leechers: w.leechers, Seeds: w.seeds, AvgRateBps: avg, BasicRateBps: w.basicBps,
		EdgeBps: w.edgeBps, GuaranteeBps: w.guarantee, AllowanceBps: w.allowBps, Curve: w.curve,
		SlurpieProbability: SlurpieProbability(e.p.SlurpieK, w.leechers+w.seeds),
	}
	if w.state != nil {
		d.CurveSamples = w.state.curve.Samples()
	}
	out.ClassCounts[w.class.Class]++
	out.Swarms = append(out.Swarms, d)
}

// evictCurves forgets the curves of swarms not seen for five memories.
func (e *refEngine) evictCurves() {
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
