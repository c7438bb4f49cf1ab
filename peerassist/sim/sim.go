package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/peerassist/edgebox/peerassist/policy"
)

// Kind is what a scenario does with peers and the policy.
type Kind uint8

const (
	// PureCDN: the edge serves everything.
	PureCDN Kind = iota
	// PeerAssisted: peers upload a fixed fraction of their capacity; the
	// edge serves the rest without limits (the paper's model).
	PeerAssisted
	// WithPolicy: the policy engine runs every tick: upload budgets,
	// allowances under the EBU cap, floors.
	WithPolicy
)

// Scenario is one run over a workload.
type Scenario struct {
	Name string
	Kind Kind
	// UploadFraction is the peers' share of their upload (PeerAssisted).
	UploadFraction float64
}

// DefaultScenarios returns the runs the paper's comparisons need: pure
// CDN, peer assistance (full and, for updates, limited to 1/3 of the
// upload), and the policy.
func DefaultScenarios(c *Config) []Scenario {
	s := []Scenario{{Name: "pure-cdn", Kind: PureCDN}}
	if c.Mode == Update {
		s = append(s, Scenario{Name: "p2p-full", Kind: PeerAssisted, UploadFraction: 1},
			Scenario{Name: "p2p-limited", Kind: PeerAssisted, UploadFraction: 1.0 / 3})
	} else {
		s = append(s, Scenario{Name: "p2p", Kind: PeerAssisted, UploadFraction: c.UploadFraction})
	}
	return append(s, Scenario{Name: "policy", Kind: WithPolicy})
}

// Sample is one tick, all regions together. Rates are averages over the
// tick.
type Sample struct {
	TimeSec float64
	// Active counts sessions in swarms; Waiting update clients backing off.
	Active, Waiting int
	// EdgeBps is the edge egress: EdgeUrgentBps + EdgeNonUrgentBps.
	EdgeBps, EdgeUrgentBps, EdgeNonUrgentBps float64
	// EdgeUnknownBps is the part of EdgeBps that went to sessions the
	// coordinator did not know yet (an unannounced surge's arrivals in
	// their first tick): plain CDN clients, admitted without limit.
	EdgeUnknownBps float64
	PeerBps        float64
	// EBU is the non-urgent edge egress to peer-assisted sessions (those
	// the coordinator knows) over the edge capacity, all regions together;
	// EBUMax the highest region's. It is the policy's EBU. 0 without a
	// capacity, and 0 for pure CDN, which has no peer-assisted session.
	EBU, EBUMax float64
	// Stopped counts sessions stopped by the EBU cap (policy runs).
	Stopped         int
	FloorViolations int
}

// Summary is a run's totals. Rates are means over the run.
type Summary struct {
	Scenario string
	Sessions int
	// Unfinished counts sessions still active or waiting at the end.
	Unfinished int
	// MeanEdgeBps, P95EdgeBps and PeakEdgeBps describe the edge load over
	// the ticks; Savings is 1 - MeanEdgeBps/pure CDN's.
	MeanEdgeBps, P95EdgeBps, PeakEdgeBps float64
	Savings                              float64
	MeanPeerBps                          float64
	// FloorViolations counts session-ticks that got less than their
	// floor need; StallSeconds the VoD playback lost (including to links
	// slower than the bitrate).
	FloorViolations int
	StallSeconds    float64
	// CrossRegionBytes moved between peers of different regions (must be 0).
	CrossRegionBytes float64
	// UploadBytes and BudgetBytes are what peers uploaded and were allowed
	// to; OverBudget counts session-ticks that uploaded more.
	UploadBytes, BudgetBytes float64
	OverBudget               int
	// MeanEBU and MaxEBU are over the region-ticks; OverCapTicks counts
	// region-ticks over the cap and LongestOverCap the longest run of them
	// in one region. All 0 for pure CDN.
	MeanEBU, MaxEBU              float64
	OverCapTicks, LongestOverCap int
	// MaxEBUWithUnknown is the highest region-tick EBU had it counted the
	// non-urgent egress to sessions the coordinator did not know yet
	// (Sample.EdgeUnknownBps): what the cap would have to absorb if the
	// edge charged it to peer assistance. Equal to MaxEBU without an
	// unannounced surge.
	MaxEBUWithUnknown float64
	// Stops counts sessions newly stopped by the EBU cap.
	Stops int
	// ClassTicks counts swarm-ticks by class (policy runs).
	ClassTicks [policy.NumClasses]int
	// Wall is how long the run took.
	Wall time.Duration
}

// Result is one scenario's run.
type Result struct {
	Scenario Scenario
	Series   []Sample
	Summary  Summary
	// PeakBps is each region's peak edge load (B_max when unlimited).
	PeakBps []float64
}

// ErrTooManySessions is returned when a run exceeds Config.MaxActive.
var ErrTooManySessions = fmt.Errorf("sim: too many active sessions")

// session is one viewer or downloading client; its fields in bits are
// the current tick's.
type session struct {
	id          string
	swarmKey    swarmKey
	region, isp int
	swarm       *swarm
	downBps     float64
	upBps       float64
	// VoD
	lengthSec, watchSec, playedSec, bufferSec, fetchedSec, playNeedSec float64
	// Update
	sizeBits, gotBits float64
	// Policy: the allowance for non-urgent edge egress (+Inf: no decision
	// yet or unlimited) and the upload budget.
	allowanceBps, budgetBps float64
	// This tick, in bits.
	wantUrg, wantNon, peerUrg, peerNon, edgeUrg, edgeNon float64
	uploadCap, uploaded                                  float64
	done                                                 bool
	// unknown: the session has not announced itself to the coordinator
	// yet (an unannounced surge's arrival). For its first tick it is a
	// plain CDN client, as the edge treats a session it does not know: no
	// peers (it gets no offers), requests admitted without limit, bytes
	// charged to no session. unknownNow says it was so in this tick.
	unknown, unknownNow bool
}

type swarmKey struct{ isp, item int }

type swarm struct {
	key      string
	mapKey   swarmKey
	region   int
	sessions []*session
}

// regionState is one region's edge: its swarms, its waiting update
// clients and, in policy runs, its engine and last decision.
type regionState struct {
	idx        int
	waiting    []*session // update clients backing off, in arrival order
	downloads  int        // update clients admitted and not done
	name       string
	capBps     float64 // 0: unlimited
	swarms     []*swarm
	byKey      map[swarmKey]*swarm
	engine     *policy.Engine
	obs        policy.Observation
	dec        policy.Decision
	overCapRun int
	peakBps    float64
	// edgeBits is the edge egress of the last tick (obs.EdgeEgressBytes).
	edgeBits float64
}

// simulation is the state of one Run: regions, swarms and sessions, and
// the running totals. Each Run owns one; it is not safe for concurrent use
// (RunAll runs scenarios in parallel, each with its own).
type simulation struct {
	cfg     *Config
	sc      Scenario
	regions []*regionState
	params  policy.Params
	dt      float64
	active  int
	nextID  uint64
	sum     Summary
	ebuSum  float64
	ebuN    int
	wl      *workload
	arr     []arrival // scratch for a step's arrivals
}

// Run simulates one scenario. capBps gives each region's edge capacity (0
// or a nil slice: unlimited, unless the configuration sets one).
func Run(cfg Config, sc Scenario, capBps []float64) (*Result, error) {
	start := time.Now()
	s, err := newSimulation(cfg, sc, capBps)
	if err != nil {
		return nil, err
	}
	steps := int(cfg.Duration / cfg.Tick)
	res := &Result{Scenario: sc, Series: make([]Sample, 0, steps)}
	for step := range steps {
		smp, err := s.step(step)
		if err != nil {
			return nil, err
		}
		res.Series = append(res.Series, smp)
	}
	for _, rg := range s.regions {
		res.PeakBps = append(res.PeakBps, rg.peakBps)
	}
	s.sum.Unfinished = s.active
	s.finish(res)
	res.Summary.Wall = time.Since(start)
	return res, nil
}

// epoch is the simulated clock's start (any fixed time).
var epoch = time.Date(2007, 8, 13, 0, 0, 0, 0, time.UTC)

func newSimulation(cfg Config, sc Scenario, capBps []float64) (*simulation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &simulation{cfg: &cfg, sc: sc, dt: cfg.Tick.Seconds()}
	s.sum.Scenario = sc.Name
	if sc.Kind == WithPolicy {
		p, err := policy.ParamsFromConfig(cfg.Policy, nil)
		if err != nil {
			return nil, err
		}
		s.params = p
	}
	for r, reg := range cfg.Regions {
		rg := &regionState{idx: r, name: reg.Name, byKey: map[swarmKey]*swarm{}}
		rg.capBps = cfg.EdgeCapacityBps
		if rg.capBps == 0 && r < len(capBps) {
			rg.capBps = capBps[r]
		}
		if sc.Kind == WithPolicy {
			p := s.params
			if p.EdgeCapacityBps == 0 {
				p.EdgeCapacityBps = rg.capBps // 0: the engine measures the peak
			}
			e, err := policy.NewEngine(p)
			if err != nil {
				return nil, fmt.Errorf("region %s: %w", reg.Name, err)
			}
			rg.engine = e
		}
		s.regions = append(s.regions, rg)
	}
	s.wl = newWorkload(s.cfg)
	return s, nil
}

// step simulates tick number step: arrivals, transfers, and in policy
// runs each region's policy tick, whose decisions apply to the next step.
func (s *simulation) step(step int) (Sample, error) {
	t := float64(step) * s.dt
	s.arr = s.wl.next(t, s.dt, s.arr[:0])
	for i := range s.arr {
		s.add(&s.arr[i], s.wl)
	}
	if s.active > s.cfg.MaxActive {
		return Sample{}, fmt.Errorf("%w: %d at %s (max-active %d)", ErrTooManySessions, s.active, time.Duration(t*1e9), s.cfg.MaxActive)
	}
	smp := Sample{TimeSec: t}
	capSum, extraSum := 0.0, 0.0
	for _, rg := range s.regions {
		extra := s.tickRegion(rg, &smp)
		if rg.capBps > 0 {
			capSum += rg.capBps
			extraSum += extra
		}
		if rg.engine != nil {
			s.policyTick(rg, epoch.Add(time.Duration(float64(step+1)*s.dt*1e9)), &smp)
		}
		s.compact(rg)
	}
	if capSum > 0 && s.sc.Kind != PureCDN {
		smp.EBU = extraSum / capSum
	}
	for _, rg := range s.regions {
		smp.Waiting += len(rg.waiting)
	}
	smp.Active = s.active - smp.Waiting
	return smp, nil
}

func (s *simulation) add(a *arrival, wl *workload) {
	rg := s.regions[a.region]
	key := swarmKey{isp: a.isp, item: a.item}
	if s.cfg.Mode == Update && s.cfg.Update.SharePool {
		key.item = -1 // one pool per region and ISP
	}
	s.nextID++
	ss := &session{
		id: strconv.FormatUint(s.nextID, 36), region: a.region, isp: a.isp,
		downBps: a.downBps, upBps: a.upBps, allowanceBps: math.Inf(1),
	}
	s.active++
	s.sum.Sessions++
	switch s.sc.Kind {
	case PeerAssisted:
		ss.budgetBps = s.sc.UploadFraction * a.upBps
	case WithPolicy:
		// Until its first decision a session uploads at the default
		// fraction for its ISP (what the coordinator tells it on join).
		ss.budgetBps = s.params.UploadFractionFor("", s.cfg.ISPs[a.isp].ASN) * a.upBps
	}
	if s.cfg.Mode == VoD {
		ss.lengthSec, ss.watchSec = wl.itemSec[a.item], a.watchSec
	} else {
		ss.sizeBits = wl.itemBits[a.item]
	}
	ss.swarmKey = key
	ss.unknown = a.unannounced
	if s.cfg.Mode == Update {
		rg.waiting = append(rg.waiting, ss)
		return
	}
	s.join(rg, ss)
}

// admit lets waiting update clients start while the service's per-client
// share stays at or above MinClientRateBps.
func (s *simulation) admit(rg *regionState) {
	maxDownloads := int(s.regionServiceBps(rg) / s.cfg.Update.MinClientRateBps)
	n := 0
	for n < len(rg.waiting) && rg.downloads < max(maxDownloads, 1) {
		s.join(rg, rg.waiting[n])
		rg.downloads++
		n++
	}
	rg.waiting = append(rg.waiting[:0], rg.waiting[n:]...)
}

// join puts a session in its swarm.
func (s *simulation) join(rg *regionState, ss *session) {
	key := ss.swarmKey
	sw := rg.byKey[key]
	if sw == nil {
		name := "pool"
		if key.item >= 0 {
			name = strconv.Itoa(key.item)
		}
		sw = &swarm{key: rg.name + "/" + s.cfg.ISPs[key.isp].Name + "/" + name, mapKey: key, region: rg.idx}
		rg.byKey[key] = sw
		rg.swarms = append(rg.swarms, sw)
	}
	ss.swarm = sw
	sw.sessions = append(sw.sessions, ss)
	if rg.engine != nil && rg.dec.Tick > 0 && !rg.dec.JoinUnlimited && !ss.unknown {
		// The coordinator gives a session that joins between ticks the
		// decision's join allowance. One it does not know yet is admitted
		// without limit (and has no peers) until it announces.
		ss.allowanceBps = float64(rg.dec.JoinAllowanceBps)
	}
}

// tickRegion moves one tick's bits in a region and returns its non-urgent
// edge egress in bits/s.
func (s *simulation) tickRegion(rg *regionState, smp *Sample) (extraBps float64) {
	dt := s.dt
	// What each session wants this tick.
	level := 0.0
	if s.cfg.Mode == Update {
		s.admit(rg)
		level = s.serviceLevel(rg)
	}
	for _, sw := range rg.swarms {
		for _, ss := range sw.sessions {
			s.want(ss, level)
			// A session the coordinator does not know has no peers this
			// tick; it announces during it.
			ss.unknownNow, ss.unknown = ss.unknown, false
			ss.uploadCap = 0
			if s.sc.Kind != PureCDN && !ss.unknownNow {
				ss.uploadCap = max(0, ss.budgetBps*dt)
			}
		}
	}
	// Peers first.
	if s.sc.Kind != PureCDN {
		for _, sw := range rg.swarms {
			if s.cfg.Mode == VoD {
				s.peersOlderServeYounger(sw)
			} else {
				s.peersPool(sw)
			}
		}
	}
	// Then the edge: urgent requests always (within capacity), non-urgent
	// within each session's allowance and what capacity is left.
	urgent, nonUrgent := 0.0, 0.0
	for _, sw := range rg.swarms {
		for _, ss := range sw.sessions {
			ss.edgeUrg = max(0, ss.wantUrg-ss.peerUrg)
			ss.edgeNon = max(0, ss.wantNon-ss.peerNon)
			if !ss.unknownNow && !math.IsInf(ss.allowanceBps, 1) {
				ss.edgeNon = min(ss.edgeNon, ss.allowanceBps*dt)
			}
			urgent += ss.edgeUrg
			nonUrgent += ss.edgeNon
		}
	}
	fu, fn := 1.0, 1.0
	if rg.capBps > 0 {
		c := rg.capBps * dt
		switch {
		case urgent >= c:
			fu, fn = c/urgent, 0
		case urgent+nonUrgent > c:
			fn = (c - urgent) / nonUrgent
		}
	}
	// extraBits is the non-urgent egress to peer-assisted sessions (EBU's);
	// unknownBits what sessions the coordinator does not know drew.
	edgeBits, nonBits, extraBits, unknownBits, unknownNonBits, peerBits := 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
	for _, sw := range rg.swarms {
		for _, ss := range sw.sessions {
			ss.edgeUrg *= fu
			ss.edgeNon *= fn
			edgeBits += ss.edgeUrg + ss.edgeNon
			nonBits += ss.edgeNon
			if ss.unknownNow {
				unknownBits += ss.edgeUrg + ss.edgeNon
				unknownNonBits += ss.edgeNon
			} else {
				extraBits += ss.edgeNon
			}
			peerBits += ss.peerUrg + ss.peerNon
			s.advance(ss, smp)
		}
	}
	edgeBps := edgeBits / dt
	rg.edgeBits = edgeBits
	rg.peakBps = max(rg.peakBps, edgeBps)
	smp.EdgeBps += edgeBps
	smp.EdgeUrgentBps += (edgeBits - nonBits) / dt
	smp.EdgeNonUrgentBps += nonBits / dt
	smp.EdgeUnknownBps += unknownBits / dt
	smp.PeerBps += peerBits / dt
	if s.sc.Kind == PureCDN {
		return 0 // no peer-assisted session: no EBU
	}
	if rg.capBps > 0 {
		ebu := extraBits / dt / rg.capBps
		smp.EBUMax = max(smp.EBUMax, ebu)
		s.ebuSum += ebu
		s.ebuN++
		s.sum.MaxEBU = max(s.sum.MaxEBU, ebu)
		s.sum.MaxEBUWithUnknown = max(s.sum.MaxEBUWithUnknown, (extraBits+unknownNonBits)/dt/rg.capBps)
		if ebu > s.cfg.Policy.EBUCap+1e-9 {
			s.sum.OverCapTicks++
			rg.overCapRun++
			s.sum.LongestOverCap = max(s.sum.LongestOverCap, rg.overCapRun)
		} else {
			rg.overCapRun = 0
		}
	}
	return extraBits / dt
}

// serviceLevel is the update service's per-client rate in the region: its
// share of the service rate is split equally, each client capped by its
// link, the unused part of capped clients going to the others.
func (s *simulation) serviceLevel(rg *regionState) float64 {
	d := s.regionServiceBps(rg)
	n := 0
	for _, sw := range rg.swarms {
		n += len(sw.sessions)
	}
	if n == 0 {
		return 0
	}
	level := d / float64(n)
	for range 8 { // converges in as many rounds as there are link classes
		capped, free := 0.0, 0
		for _, sw := range rg.swarms {
			for _, ss := range sw.sessions {
				if ss.downBps < level {
					capped += ss.downBps
				} else {
					free++
				}
			}
		}
		if free == 0 {
			return math.Inf(1)
		}
		next := (d - capped) / float64(free)
		if math.Abs(next-level) <= 1e-9*level {
			break
		}
		level = next
	}
	return level
}

// regionServiceBps is the region's share of the update service's rate.
func (s *simulation) regionServiceBps(rg *regionState) float64 {
	total := 0.0
	for _, r := range s.cfg.Regions {
		total += r.Weight
	}
	return s.cfg.Update.ServiceRateBps * s.cfg.Regions[rg.idx].Weight / total
}

// want sets what the session asks for this tick, split into urgent (what
// keeps its floor: the video's next tick of playback, an update's basic
// rate) and non-urgent (prefetch, the rest of an update's rate).
func (s *simulation) want(ss *session, level float64) {
	dt := s.dt
	ss.peerUrg, ss.peerNon, ss.edgeUrg, ss.edgeNon, ss.uploaded = 0, 0, 0, 0, 0
	switch s.cfg.Mode {
	case VoD:
		r := s.cfg.VoD.BitrateBps
		linkSec := ss.downBps * dt / r
		remaining := max(0, ss.lengthSec-ss.fetchedSec)
		ss.playNeedSec = min(dt, max(0, ss.watchSec-ss.playedSec))
		urg := min(min(max(0, ss.playNeedSec-ss.bufferSec), remaining), linkSec)
		non := ss.playNeedSec + s.cfg.VoD.Prefetch.Seconds() - ss.bufferSec - urg
		non = min(max(0, non), min(remaining-urg, linkSec-urg))
		ss.wantUrg, ss.wantNon = urg*r, max(0, non)*r
	case Update:
		remaining := max(0, ss.sizeBits-ss.gotBits)
		want := min(min(level, ss.downBps)*dt, remaining)
		urg := min(s.floorBps()*dt, want)
		ss.wantUrg, ss.wantNon = urg, want-urg
	}
}

// floorBps is a session's basic rate: the bitrate for video, the policy's
// basic rate for downloads.
func (s *simulation) floorBps() float64 {
	if s.cfg.Mode == VoD {
		return s.cfg.VoD.BitrateBps
	}
	return float64(s.cfg.Policy.BasicRateBps)
}

// peersOlderServeYounger is the VoD model of Huang, Li and Ross: viewers
// of a video, in arrival order, are served by the older viewers' upload
// (they hold the part the younger need), urgent needs first, then
// prefetch. Server load is max_k(k r - sum_{i<k} u_i) when nobody
// prefetches.
func (s *simulation) peersOlderServeYounger(sw *swarm) {
	for pass := range 2 {
		head := 0
		for k, rx := range sw.sessions {
			if rx.unknownNow {
				continue // no peers yet
			}
			need := rx.wantUrg
			if pass == 1 {
				need = rx.wantNon
			}
			for need > 0 && head < k {
				up := sw.sessions[head]
				left := up.uploadCap - up.uploaded
				if left <= 0 {
					head++
					continue
				}
				got := min(left, need)
				s.transfer(up, rx, got, pass == 0)
				need -= got
			}
		}
	}
}

// peersPool shares upload within a swarm as a fluid: every member's
// upload goes to every other member in proportion to their needs (the
// paper's update model: clients always hold something others need),
// urgent needs first.
func (s *simulation) peersPool(sw *swarm) {
	if len(sw.sessions) < 2 {
		return // nobody to share with
	}
	supply, urg, non := 0.0, 0.0, 0.0
	for _, ss := range sw.sessions {
		if ss.unknownNow {
			continue // no peers yet
		}
		supply += ss.uploadCap
		urg += ss.wantUrg
		non += ss.wantNon
	}
	if supply <= 0 || urg+non <= 0 {
		return
	}
	fu := min(1, supply/max(urg, 1e-300))
	usedU := fu * urg
	fn := 0.0
	if non > 0 {
		fn = min(1, (supply-usedU)/non)
	}
	used := usedU + fn*non
	share := used / supply // each uploader gives this share of its capacity
	for _, ss := range sw.sessions {
		if ss.unknownNow {
			continue
		}
		if ss.region != sw.region {
			s.sum.CrossRegionBytes += (ss.uploadCap*share + ss.wantUrg*fu + ss.wantNon*fn) / 8
		}
		ss.uploaded = ss.uploadCap * share
		ss.peerUrg = ss.wantUrg * fu
		ss.peerNon = ss.wantNon * fn
		s.sum.UploadBytes += ss.uploaded / 8
	}
}

// transfer moves bits from one peer to another and counts them.
func (s *simulation) transfer(from, to *session, bits float64, urgent bool) {
	from.uploaded += bits
	if urgent {
		to.peerUrg += bits
	} else {
		to.peerNon += bits
	}
	if from.region != to.region {
		s.sum.CrossRegionBytes += bits / 8
	}
	s.sum.UploadBytes += bits / 8
}

// advance applies the tick's bits to the session: playback or download
// progress, floor violations, departure.
func (s *simulation) advance(ss *session, smp *Sample) {
	got := ss.peerUrg + ss.peerNon + ss.edgeUrg + ss.edgeNon
	if got+1e-6 < ss.wantUrg {
		smp.FloorViolations++
		s.sum.FloorViolations++
	}
	s.sum.BudgetBytes += ss.uploadCap / 8
	if ss.uploaded > ss.uploadCap*(1+1e-9)+1e-6 {
		s.sum.OverBudget++
	}
	switch s.cfg.Mode {
	case VoD:
		sec := got / s.cfg.VoD.BitrateBps
		ss.bufferSec += sec
		ss.fetchedSec += sec
		play := min(ss.bufferSec, ss.playNeedSec)
		ss.bufferSec -= play
		ss.playedSec += play
		if stall := ss.playNeedSec - play; stall > 1e-9 {
			s.sum.StallSeconds += stall
		}
		if ss.playedSec >= ss.watchSec-1e-9 || (ss.fetchedSec >= ss.lengthSec-1e-9 && ss.bufferSec <= 1e-9) {
			ss.done = true
		}
	case Update:
		ss.gotBits += got
		if ss.gotBits >= ss.sizeBits-1e-6 {
			ss.done = true
		}
	}
}

// compact drops finished sessions and empty swarms.
func (s *simulation) compact(rg *regionState) {
	swarms := rg.swarms[:0]
	for _, sw := range rg.swarms {
		live := sw.sessions[:0]
		for _, ss := range sw.sessions {
			if ss.done {
				s.active--
				if s.cfg.Mode == Update {
					rg.downloads--
				}
				continue
			}
			live = append(live, ss)
		}
		clear(sw.sessions[len(live):])
		sw.sessions = live
		if len(live) == 0 {
			delete(rg.byKey, sw.mapKey)
			continue
		}
		swarms = append(swarms, sw)
	}
	clear(rg.swarms[len(swarms):])
	rg.swarms = swarms
}

// policyTick feeds the region's engine with the tick's counters and
// applies its decisions to the sessions.
func (s *simulation) policyTick(rg *regionState, now time.Time, smp *Sample) {
	obs := &rg.obs
	obs.Now = now
	obs.Interval = s.cfg.Tick
	obs.EdgeEgressBytes = int64(rg.edgeBits / 8) // to unknown sessions too
	obs.Swarms = obs.Swarms[:0]
	obs.Sessions = obs.Sessions[:0]
	video := s.cfg.Mode == VoD
	bitrate := int64(0)
	if video {
		bitrate = int64(s.cfg.VoD.BitrateBps)
	}
	// Every session of the tick, those that finished in it too: the edge
	// counts what it served a session until it goes away.
	for _, sw := range rg.swarms {
		obs.Swarms = append(obs.Swarms, policy.SwarmObs{Key: sw.key, Video: video, BitrateBps: bitrate})
		for _, ss := range sw.sessions {
			o := policy.SessionObs{
				ID: ss.id, Swarm: sw.key, ASN: s.cfg.ISPs[ss.isp].ASN,
				DeclaredUploadBps: int64(ss.upBps),
				DemandBps:         int64((ss.wantUrg + ss.wantNon) / s.dt),
				MarksUrgent:       true,
			}
			if !ss.unknownNow {
				// What the edge served a session it did not know yet was
				// charged to no session (the coordinator's unknown bytes):
				// only EdgeEgressBytes has it.
				o.EdgeUrgentBytes = int64(ss.edgeUrg / 8)
				o.EdgeNonUrgentBytes = int64(ss.edgeNon / 8)
				o.PeerBytes = int64((ss.peerUrg + ss.peerNon) / 8)
				o.UploadedBytes = int64(ss.uploaded / 8)
			}
			obs.Sessions = append(obs.Sessions, o)
		}
	}
	rg.engine.Tick(obs, &rg.dec)
	d := &rg.dec
	i := 0
	for _, sw := range rg.swarms {
		for _, ss := range sw.sessions {
			sd := &d.Sessions[i]
			i++
			if sd.Unlimited {
				ss.allowanceBps = math.Inf(1)
			} else {
				ss.allowanceBps = float64(sd.AllowanceBps)
			}
			ss.budgetBps = float64(sd.UploadBudgetBps)
		}
	}
	smp.Stopped += d.Stopped
	s.sum.Stops += d.StopK
	for c, n := range d.ClassCounts {
		s.sum.ClassTicks[c] += n
	}
}

func (s *simulation) finish(res *Result) {
	sum := &s.sum
	n := float64(len(res.Series))
	loads := make([]float64, 0, len(res.Series))
	for _, smp := range res.Series {
		sum.MeanEdgeBps += smp.EdgeBps / n
		sum.MeanPeerBps += smp.PeerBps / n
		sum.PeakEdgeBps = max(sum.PeakEdgeBps, smp.EdgeBps)
		loads = append(loads, smp.EdgeBps)
	}
	slices.Sort(loads)
	if len(loads) > 0 {
		sum.P95EdgeBps = loads[min(len(loads)-1, int(math.Ceil(0.95*n))-1)]
	}
	if s.ebuN > 0 {
		sum.MeanEBU = s.ebuSum / float64(s.ebuN)
	}
	res.Summary = *sum
}
