package enforce

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/policy"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// sessionState is what the loop remembers of a session between ticks.
// Owned by Tick.
type sessionState struct {
	lim      *limiter // nil until the session has one
	seenTick uint64

	// Counters at the last tick, to take this tick's increments.
	base       counters
	baseServed int64 // the coordinator's EdgeServedBytes (sessions without a limiter)
	// Refusals in this tick's period.
	refused, urgentRefused int64

	// Rates from the client's x_report: the increments between its last
	// two reports over the time between them, held until the next report
	// (reports and ticks are not in step, so per-tick increments of the
	// cumulative counters would jump between 0 and twice the rate).
	repAt           time.Time
	repPeers, repUp int64
	repGap          time.Duration
	peerBps, upBps  float64

	// recent is what the session received (edge and peers) in its last
	// ticks, for floor violations: a viewer is short of its floor over
	// the limiter's horizon, not over one tick (a burst then a wait is
	// not a violation).
	recent     [floorWindowTicks]tickBytes
	recentNext int

	connected     bool
	atBudget      bool
	atBudgetKnown bool
	pushed        signal.Policy
	pushedAt      time.Time
	hasPushed     bool
}

// minReportGap is the shortest time between two reports a rate is taken
// over; closer reports are merged with the next.
const minReportGap = time.Second

// maxReportHold bounds how long a report's rates are held (the first
// report's gap is the whole session so far).
const maxReportHold = 2 * time.Minute

// Tick runs one policy tick at now: it snapshots the coordinator's sessions
// and swarms, turns this period's counters into a policy.Observation, runs
// the engine and applies the decision (limiters, upload-budget flags,
// x_policy pushes). The first call only takes the counters' baseline and
// returns nil. The returned decision is valid until the next call.
//
// Start calls Tick on the policy.tick; tests call it directly. Calls are
// serialized.
func (l *Loop) Tick(now time.Time) *policy.Decision {
	l.tickMu.Lock()
	defer l.tickMu.Unlock()
	began := time.Now()
	tick := l.ticks.Add(1)
	sessions := l.co.Sessions()
	swarms := l.co.Swarms()
	var egress int64
	if l.egress != nil {
		egress = l.egress()
	}
	if l.lastTickAt.IsZero() {
		l.baseline(tick, sessions)
		l.lastTickAt, l.lastEgress = now, egress
		return nil
	}
	st := l.set.Load() // Reload swaps it under tickMu: constant during the tick
	l.observe(st, tick, now, now.Sub(l.lastTickAt), sessions, swarms, egress)
	l.forgetVanished(tick)
	l.lastTickAt, l.lastEgress = now, egress

	ctx, span := l.tel.tracer.Start(context.Background(), "peerassist.policy.tick", trace.WithTimestamp(began))
	l.eng.Tick(&l.obs, &l.dec)
	d := &l.dec
	if d.JoinUnlimited {
		l.join.Store(&joinLimits{unlimited: true})
	} else {
		l.join.Store(&joinLimits{leftBytesPerSec: float64(d.JoinAllowanceBps) / 8})
	}
	as := l.apply(st, now, sessions, span)
	l.tel.record(ctx, d, &as, time.Since(began))
	span.SetAttributes(
		attribute.Int64("peerassist.policy.tick", int64(d.Tick)),
		attribute.Float64("peerassist.policy.ebu", d.EBU),
		attribute.Float64("peerassist.policy.ebu_after", d.EBUAfter),
		attribute.Float64("peerassist.policy.ebu_cap", d.Cap),
		attribute.Float64("peerassist.policy.capacity_bps", d.CapacityBps),
		attribute.String("peerassist.policy.capacity_source", d.CapacitySource.String()),
		attribute.Float64("peerassist.policy.egress_bps", d.EgressBps),
		attribute.Float64("peerassist.policy.extra_egress_bps", d.ExtraEgressBps),
		attribute.Int("peerassist.policy.sessions", len(d.Sessions)),
		attribute.Int("peerassist.policy.swarms", len(d.Swarms)),
		attribute.Int("peerassist.policy.stop.n", d.StopN),
		attribute.Int("peerassist.policy.stop.k", d.StopK),
		attribute.Int("peerassist.policy.stopped", d.Stopped),
		attribute.Bool("peerassist.policy.floors_over_cap", d.FloorsOverCap),
		attribute.Int64("peerassist.policy.join_allowance_bps", d.JoinAllowanceBps),
		attribute.Int("peerassist.policy.pushes", as.pushes),
		attribute.Int("peerassist.policy.push_errors", as.pushErrors),
		attribute.Int("peerassist.policy.floor_violations", as.floorViolations),
	)
	if g := d.Degraded; g != (policy.Degraded{}) {
		span.AddEvent("peerassist.policy.degraded", trace.WithAttributes(
			attribute.Int("peerassist.policy.bad_reports", g.BadReports),
			attribute.Int("peerassist.policy.no_swarm", g.NoSwarm),
			attribute.Int("peerassist.policy.implicit_swarms", g.ImplicitSwarms),
			attribute.Int("peerassist.policy.duplicate_swarms", g.DuplicateSwarms)))
	}
	span.End()
	if d.StopK > 0 {
		l.log.Info("policy: EBU over the cap; sessions stopped from non-urgent edge fetches",
			"ebu", round3(d.EBU), "ebu_cap", d.Cap, "ebu_after", round3(d.EBUAfter), "stopped", d.StopK, "of", d.StopN,
			"capacity_bps", int64(d.CapacityBps), "capacity_source", d.CapacitySource.String())
	}
	if as.pushErrors > 0 {
		l.log.Warn("policy: x_policy pushes failed", "failed", as.pushErrors, "pushed", as.pushes)
	}
	l.log.Debug("policy: tick", "tick", d.Tick, "sessions", len(d.Sessions), "swarms", len(d.Swarms),
		"ebu", round3(d.EBU), "ebu_after", round3(d.EBUAfter), "stopped", d.Stopped, "pushes", as.pushes,
		"duration", time.Since(began))
	if l.onTick != nil {
		l.onTick(d)
	}
	return d
}

// baseline records every session's counters without deciding anything.
func (l *Loop) baseline(tick uint64, sessions []coordinator.SessionInfo) {
	for i := range sessions {
		info := &sessions[i]
		st := l.state(info.ID, tick)
		if st.lim != nil {
			st.base = st.lim.counters()
		}
		st.baseServed = info.EdgeServedBytes
		st.connected = info.Connected
		if !info.LastReport.IsZero() {
			st.repAt, st.repPeers, st.repUp = info.LastReport, info.FromPeersBytes, info.UploadedBytes
		}
	}
}

// state returns the session's state, creating it, and marks it seen.
func (l *Loop) state(id string, tick uint64) *sessionState {
	st := l.sessions[id]
	if st == nil {
		st = &sessionState{}
		l.sessions[id] = st
	}
	st.seenTick = tick
	if st.lim == nil {
		st.lim = l.existingLimiter(id) // made by the factory since
	}
	return st
}

// observe fills l.obs from the snapshots: per session this period's edge
// bytes (urgent within the floor, and the rest), its peer and upload rates
// from x_report, its caps and ASN; per swarm its site and whether it is
// video.
func (l *Loop) observe(set *settings, tick uint64, now time.Time, interval time.Duration, sessions []coordinator.SessionInfo,
	swarms []coordinator.SwarmInfo, egress int64) {
	o := &l.obs
	o.Now, o.Interval = now, interval
	o.EdgeEgressBytes = max(egress-l.lastEgress, 0)
	o.Swarms, o.Sessions = o.Swarms[:0], o.Sessions[:0]
	l.obsInfo, l.obsSwarm = l.obsInfo[:0], l.obsSwarm[:0]
	clear(l.swarmIdx)
	for _, sw := range swarms {
		l.swarmOf(set, sw.SwarmID, "")
	}
	sec := interval.Seconds()
	for i := range sessions {
		info := &sessions[i]
		st := l.state(info.ID, tick)
		var urgent, extra int64
		st.refused, st.urgentRefused = 0, 0
		if st.lim != nil {
			c := st.lim.counters()
			urgent = max(c.urgentBytes-st.base.urgentBytes, 0)
			extra = max(c.extraBytes-st.base.extraBytes, 0)
			st.refused = max(c.refusals-st.base.refusals, 0)
			st.urgentRefused = max(c.urgentRefused-st.base.urgentRefused, 0)
			st.base = c
		} else {
			extra = max(info.EdgeServedBytes-st.baseServed, 0)
		}
		st.baseServed = info.EdgeServedBytes
		l.updateReportRates(set, st, info, now)
		if !info.Connected && urgent+extra == 0 {
			// A detached session that fetched nothing: not in the swarm's
			// counts. Its limiter keeps its last decision.
			continue
		}
		if info.Swarm == (coordinator.SwarmID{}) {
			// In no swarm (its locality is unknown or another region's):
			// not peer-assisted, it has no peers to turn to. The cap is
			// not its business.
			if st.lim != nil {
				st.lim.set(l.clock(), set.unassisted(info.Site, info.Caps))
			}
			continue
		}
		j := int32(l.swarmOf(set, info.Swarm, info.Site))
		marks := false
		if st.lim != nil {
			marks = st.lim.marksUrgent.Load()
			if st.lim.media.Load() {
				o.Swarms[j].Video = true
			}
		}
		// A declared stream bitrate is the viewer's floor where the site
		// gives none, and makes its swarm a video swarm.
		floor := set.declaredFloorBps(info.Site, info.Caps)
		if floor > 0 {
			o.Swarms[j].Video = true
		}
		s := policy.SessionObs{
			ID:                 info.ID,
			FloorBps:           int64(floor),
			ASN:                info.Locality.ASN,
			Seed:               info.Seed,
			EdgeUrgentBytes:    urgent,
			EdgeNonUrgentBytes: extra,
			DeclaredUploadBps:  info.Caps.UploadBps,
			UploadOff:          info.Caps.NoUpload,
			MarksUrgent:        marks,
		}
		if sec > 0 {
			s.PeerBytes = int64(st.peerBps * sec / 8)
			s.UploadedBytes = int64(st.upBps * sec / 8)
		}
		s.Swarm = o.Swarms[j].Key
		o.Sessions = append(o.Sessions, s)
		l.obsInfo = append(l.obsInfo, int32(i))
		l.obsSwarm = append(l.obsSwarm, j)
	}
}

// swarmOf returns the index of the swarm in l.obs.Swarms, adding it; a
// swarm takes the site of the first of its sessions that has one.
func (l *Loop) swarmOf(set *settings, id coordinator.SwarmID, site string) int {
	j, ok := l.swarmIdx[id]
	if !ok {
		j = len(l.obs.Swarms)
		l.swarmIdx[id] = j
		l.obs.Swarms = append(l.obs.Swarms, policy.SwarmObs{Key: swarmKey(id)})
	}
	if sw := &l.obs.Swarms[j]; sw.Site == "" && site != "" {
		sw.Site = site
		if b, ok := set.params.SiteBitrateBps[site]; ok && b > 0 {
			sw.Video = true
		}
	}
	return j
}

// swarmKey names a swarm in observations, decisions and telemetry:
// region/info_hash in hex.
func swarmKey(id coordinator.SwarmID) string {
	return id.Region + "/" + hex.EncodeToString(id.InfoHash[:])
}

// updateReportRates turns the session's cumulative x_report counters into
// rates (see sessionState).
func (l *Loop) updateReportRates(set *settings, st *sessionState, info *coordinator.SessionInfo, now time.Time) {
	if info.LastReport.After(st.repAt) {
		from, peers, up := st.repAt, st.repPeers, st.repUp
		if from.IsZero() {
			from, peers, up = info.Started, 0, 0
		}
		if gap := info.LastReport.Sub(from); gap >= minReportGap {
			sec := gap.Seconds()
			st.peerBps = float64(max(info.FromPeersBytes-peers, 0)) * 8 / sec
			st.upBps = float64(max(info.UploadedBytes-up, 0)) * 8 / sec
			st.repAt, st.repPeers, st.repUp, st.repGap = info.LastReport, info.FromPeersBytes, info.UploadedBytes, gap
		}
	}
	// A rate holds until twice the client's report period (at least four
	// ticks, at most two minutes unless the ticks are longer) passed
	// without a report: then the client is assumed idle.
	if !st.repAt.IsZero() && now.Sub(st.repAt) > max(min(2*st.repGap, maxReportHold), 4*set.tick) {
		st.peerBps, st.upBps = 0, 0
	}
}

// forgetVanished drops the state and limiters of sessions the coordinator
// forgot. A limiter made during this tick may belong to a session newer
// than the snapshot and is kept.
func (l *Loop) forgetVanished(tick uint64) {
	for id, st := range l.sessions {
		if st.seenTick != tick {
			delete(l.sessions, id)
		}
	}
	l.limMu.Lock()
	for id, lim := range l.limiters {
		if _, ok := l.sessions[id]; !ok && lim.born < tick {
			delete(l.limiters, id)
		}
	}
	l.limMu.Unlock()
}

// floorWindowTicks is how many ticks a floor violation looks back (30 s
// at the default 5 s tick: the floor bucket's debt horizon).
const floorWindowTicks = 6

// tickBytes is what a session received in one tick.
type tickBytes struct {
	bytes    int64
	interval time.Duration
}

// shortOfFloor records what the session received in this tick and reports
// whether it was refused what it needed while it received less than its
// floor over the recent ticks. What it needed: an urgent request for a
// client that marks them (its non-urgent ones have peers to go to), any
// request for one that does not.
func (ss *sessionState) shortOfFloor(o *policy.SessionObs, interval time.Duration, floorBps int64) bool {
	ss.recent[ss.recentNext] = tickBytes{o.EdgeUrgentBytes + o.EdgeNonUrgentBytes + o.PeerBytes, interval}
	ss.recentNext = (ss.recentNext + 1) % floorWindowTicks
	refused := ss.refused
	if o.MarksUrgent {
		refused = ss.urgentRefused
	}
	if refused == 0 || interval <= 0 {
		return false
	}
	var bytes int64
	var d time.Duration
	for _, r := range ss.recent {
		bytes += r.bytes
		d += r.interval
	}
	return float64(bytes)*8/d.Seconds() < float64(floorBps)
}

// applyStats are counts of one tick's application, for telemetry.
type applyStats struct {
	pushes, pushErrors, floorViolations, newStops int
	refusals, urgentRefusals                      int64
	allowances                                    []float64
}

// apply enforces the decision: each session's limiter gets its floor and
// allowance, the coordinator its upload-budget flag, the client an x_policy
// when it changed meaningfully. Stops become span events.
func (l *Loop) apply(set *settings, now time.Time, sessions []coordinator.SessionInfo, span trace.Span) applyStats {
	d := &l.dec
	var st applyStats
	st.allowances = l.allowScr[:0]
	swarmsMatch := len(d.Swarms) == len(l.obs.Swarms)
	mono := l.clock()
	for i := range d.Sessions {
		sd := &d.Sessions[i]
		info := &sessions[l.obsInfo[i]]
		ss := l.sessions[sd.ID]
		if ss == nil || info.ID != sd.ID {
			continue // cannot happen: decisions follow the observation's order
		}
		lim := limits{
			floorBytesPerSec: float64(sd.FloorBps) / 8,
			allowBytesPerSec: float64(sd.AllowanceBps) / 8,
			unlimited:        sd.Unlimited,
			burst:            set.burst,
			retryAfter:       set.tick,
			reason:           l.reasons[min(int(sd.Reason.Code), numReasonCodes-1)],
		}
		if !sd.Unlimited {
			st.allowances = append(st.allowances, float64(sd.AllowanceBps))
		}
		if ss.lim == nil {
			x, made := l.limiterFor(sd.ID, lim)
			if made {
				if err := l.co.SetLimiter(sd.ID, x); err != nil {
					// The session vanished since the snapshot.
					l.forgetLimiter(sd.ID)
					delete(l.sessions, sd.ID)
					continue
				}
			} else {
				x.set(mono, lim)
			}
			// Whatever it counted is after the snapshot: next tick's.
			ss.lim, ss.base = x, counters{}
		} else {
			ss.lim.set(mono, lim)
		}
		st.refusals += ss.refused
		st.urgentRefusals += ss.urgentRefused
		if ss.shortOfFloor(&l.obs.Sessions[i], l.obs.Interval, sd.FloorBps) {
			st.floorViolations++
		}

		if sd.Reason.Code == policy.ReasonStopped {
			st.newStops++
			span.AddEvent("peerassist.policy.stop", trace.WithAttributes(
				attribute.String("session.id", sd.ID),
				attribute.String("peerassist.swarm", l.obs.Sessions[i].Swarm),
				attribute.String("peerassist.policy.reason", sd.Reason.Code.String()),
				attribute.String("peerassist.policy.detail", sd.Reason.Detail),
				attribute.Int64("peerassist.policy.floor_bps", sd.FloorBps)))
		}

		if !ss.atBudgetKnown || ss.atBudget != sd.AtUploadBudget {
			if err := l.co.SetUploadBudgetReached(sd.ID, sd.AtUploadBudget); err == nil {
				ss.atBudget, ss.atBudgetKnown = sd.AtUploadBudget, true
			}
		}

		wasConnected := ss.connected
		ss.connected = info.Connected
		if !info.Connected {
			continue
		}
		p := signal.Policy{
			UploadBudgetBps:  sd.UploadBudgetBps,
			EdgeAllowanceBps: sd.AllowanceBps,
			UsePeers:         sd.Stopped,
			Reason:           sd.Reason.Code.String(),
		}
		if sd.Unlimited {
			p.EdgeAllowanceBps = -1
		}
		if j := l.obsSwarm[i]; j >= 0 && swarmsMatch {
			p.SlurpieProbability = d.Swarms[j].SlurpieProbability
		}
		if ss.hasPushed && wasConnected && !policyChanged(&ss.pushed, &p) && now.Sub(ss.pushedAt) < l.refresh {
			continue
		}
		switch err := l.co.PushPolicy(sd.ID, p); {
		case err == nil:
			ss.pushed, ss.pushedAt, ss.hasPushed = p, now, true
			st.pushes++
		case errors.Is(err, coordinator.ErrNotConnected), errors.Is(err, coordinator.ErrUnknownSession):
			// Pushed when it is back (or forgotten at the next tick).
			ss.hasPushed = false
		default:
			st.pushErrors++
			ss.hasPushed = false
		}
	}
	l.allowScr = st.allowances
	return st
}

// policyChanged reports whether a new x_policy differs meaningfully from
// the last one pushed: allowances move a little every tick (exploration,
// slack) and clients need not hear about it.
func policyChanged(old, p *signal.Policy) bool {
	stopReason := func(r string) bool {
		return r == policy.ReasonStopped.String() || r == policy.ReasonStopHeld.String()
	}
	switch {
	case old.UsePeers != p.UsePeers:
		return true
	case old.Reason != p.Reason && !(stopReason(old.Reason) && stopReason(p.Reason)):
		return true
	case (old.EdgeAllowanceBps < 0) != (p.EdgeAllowanceBps < 0), (old.EdgeAllowanceBps == 0) != (p.EdgeAllowanceBps == 0):
		return true
	case (old.UploadBudgetBps == 0) != (p.UploadBudgetBps == 0):
		return true
	}
	return relChange(float64(old.UploadBudgetBps), float64(p.UploadBudgetBps)) > 0.10 ||
		relChange(float64(old.EdgeAllowanceBps), float64(p.EdgeAllowanceBps)) > 0.25 ||
		relChange(old.SlurpieProbability, p.SlurpieProbability) > 0.25
}

func relChange(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
