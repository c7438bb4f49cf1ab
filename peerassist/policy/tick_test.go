package policy

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const tick = 5 * time.Second

// bytesFor returns the bytes a rate moves in one tick.
func bytesFor(bps float64) int64 { return int64(bps * tick.Seconds() / 8) }

func newTestEngine(t testing.TB, modify func(*Params)) *Engine {
	t.Helper()
	p := DefaultParams()
	p.EdgeCapacityBps = 100e6
	if modify != nil {
		modify(&p)
	}
	e, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTickPaperExample: EBU 50% with 100 sessions stops 20, the ones with
// the highest download rates (CloudTracker's example).
func TestTickPaperExample(t *testing.T) {
	e := newTestEngine(t, nil)
	obs := Observation{Now: t0, Interval: tick, Swarms: []SwarmObs{{Key: "s", Video: true}}}
	for i := range 100 {
		obs.Sessions = append(obs.Sessions, SessionObs{
			ID: fmt.Sprintf("p%03d", i), Swarm: "s",
			EdgeNonUrgentBytes: bytesFor(500_000), // 100 x 0.5 Mbps = 50% of 100 Mbps
			PeerBytes:          bytesFor(float64(i) * 10_000),
		})
	}
	var d Decision
	e.Tick(&obs, &d)
	if math.Abs(d.EBU-0.5) > 1e-9 {
		t.Fatalf("EBU = %g, want 0.5", d.EBU)
	}
	if d.StopN != 100 || d.StopK != 20 || d.Stopped != 20 {
		t.Errorf("StopN, StopK, Stopped = %d, %d, %d; want 100, 20, 20", d.StopN, d.StopK, d.Stopped)
	}
	for i, s := range d.Sessions {
		wantStopped := i >= 80 // the fastest: p080..p099
		if s.Stopped != wantStopped {
			t.Errorf("session %s stopped = %v, want %v", s.ID, s.Stopped, wantStopped)
		}
		if wantStopped {
			if s.Reason.Code != ReasonStopped || !strings.Contains(s.Reason.Detail, "EBU 0.500 over cap 0.40") {
				t.Errorf("session %s reason = %v %q", s.ID, s.Reason.Code, s.Reason.Detail)
			}
			// Stopped sessions keep their floor: peers give them at least
			// 800 kbit/s here, so nothing is needed from the edge.
			if s.AllowanceBps != 0 {
				t.Errorf("stopped session %s allowance = %d, want 0 (peers cover its floor)", s.ID, s.AllowanceBps)
			}
		}
	}
	if d.EBUAfter > d.Cap+1e-9 {
		t.Errorf("EBUAfter = %g, want <= cap %g", d.EBUAfter, d.Cap)
	}
	if d.AllocatedBps > d.HeadroomBps*(1+1e-9) {
		t.Errorf("AllocatedBps = %g > headroom %g", d.AllocatedBps, d.HeadroomBps)
	}
}

// TestTickFloors: no allowance is ever below what a session needs to reach
// its floor, stopped or not, even when the floors alone exceed the cap.
func TestTickFloors(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 1e6 }) // headroom 400 kbit/s
	obs := Observation{Now: t0, Interval: tick, Swarms: []SwarmObs{{Key: "v", BitrateBps: 1_000_000, Video: true}}}
	for i := range 10 {
		obs.Sessions = append(obs.Sessions, SessionObs{
			ID: fmt.Sprintf("s%d", i), Swarm: "v",
			EdgeNonUrgentBytes: bytesFor(2e6), PeerBytes: bytesFor(float64(i) * 100_000),
		})
	}
	var d Decision
	e.Tick(&obs, &d)
	if !d.FloorsOverCap {
		t.Error("FloorsOverCap = false, want true (10 viewers need up to 1 Mbit/s each against 400 kbit/s)")
	}
	for i, s := range d.Sessions {
		need := int64(1_000_000 - i*100_000)
		if s.FloorBps != 1_000_000 {
			t.Errorf("%s FloorBps = %d, want the bitrate", s.ID, s.FloorBps)
		}
		if s.AllowanceBps < need-1 {
			t.Errorf("%s allowance %d below its floor need %d (stopped=%v)", s.ID, s.AllowanceBps, need, s.Stopped)
		}
	}
}

// TestTickMarksUrgent: a client that marks urgent requests keeps its floor
// on the urgent path, so its allowance reserves nothing for it; one that
// does not gets the floor in its allowance even when stopped.
func TestTickMarksUrgent(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 10e6 }) // headroom 4 Mbit/s
	obs := Observation{Now: t0, Interval: tick, Swarms: []SwarmObs{{Key: "v", BitrateBps: 1e6, Video: true}}}
	for i := range 8 {
		obs.Sessions = append(obs.Sessions, SessionObs{
			ID: fmt.Sprint(i), Swarm: "v", MarksUrgent: i%2 == 0,
			EdgeNonUrgentBytes: bytesFor(1e6), DemandBps: 1e6,
		})
	}
	var d Decision
	e.Tick(&obs, &d) // EBU 0.8: 4 of 8 stopped
	if d.StopK != 4 {
		t.Fatalf("StopK = %d, want 4", d.StopK)
	}
	if d.GuaranteeBps != 4e6 {
		t.Errorf("GuaranteeBps = %g, want 4e6 (the four that do not mark urgency)", d.GuaranteeBps)
	}
	for i, s := range d.Sessions {
		if i%2 == 1 && s.AllowanceBps < 1e6-1 {
			t.Errorf("session %d does not mark urgency: allowance %d below its floor", i, s.AllowanceBps)
		}
		if i%2 == 0 && s.Stopped && s.AllowanceBps != 0 {
			t.Errorf("session %d marks urgency and is stopped: allowance %d, want 0", i, s.AllowanceBps)
		}
	}
}

func TestTickCapacityFromObservedPeak(t *testing.T) {
	e := newTestEngine(t, func(p *Params) {
		p.EdgeCapacityBps = 0
		p.PeakWarmup = 30 * time.Second
	})
	obs := Observation{Swarms: []SwarmObs{{Key: "s"}}, Interval: tick,
		Sessions: []SessionObs{{ID: "a", Swarm: "s", EdgeNonUrgentBytes: bytesFor(1e6)}}}
	var d Decision
	for i := range 7 {
		obs.Now = t0.Add(time.Duration(i) * tick)
		obs.EdgeEgressBytes = bytesFor(10e6) // other clients make the peak
		e.Tick(&obs, &d)
		if i < 6 {
			if d.CapacitySource != CapacityUnknown || !d.Sessions[0].Unlimited || d.Sessions[0].Reason.Code != ReasonMeasuringPeak {
				t.Fatalf("tick %d (warm-up): source %v, unlimited %v, reason %v", i, d.CapacitySource, d.Sessions[0].Unlimited, d.Sessions[0].Reason.Code)
			}
			continue
		}
		if d.CapacitySource != CapacityObservedPeak || math.Abs(d.CapacityBps-10e6) > 1 {
			t.Fatalf("after warm-up: capacity %g from %v, want 10e6 from the observed peak", d.CapacityBps, d.CapacitySource)
		}
		if math.Abs(d.EBU-0.1) > 1e-9 || d.Sessions[0].Unlimited {
			t.Errorf("after warm-up: EBU %g unlimited %v, want 0.1 and a limit", d.EBU, d.Sessions[0].Unlimited)
		}
	}
}

func TestTickDegradedInputs(t *testing.T) {
	e := newTestEngine(t, nil)
	obs := Observation{
		Now: t0, Interval: tick,
		Swarms: []SwarmObs{{Key: "s", BitrateBps: 500_000}, {Key: "s"}, {Key: ""}},
		Sessions: []SessionObs{
			{ID: "bad", Swarm: "s", EdgeUrgentBytes: -5},
			{ID: "lost", Swarm: ""},
			{ID: "unlisted", Swarm: "elsewhere", EdgeNonUrgentBytes: 1000},
			{ID: "seed", Swarm: "s", Seed: true},
			{ID: "ok", Swarm: "s", PeerBytes: bytesFor(100_000)},
		},
	}
	var d Decision
	e.Tick(&obs, &d)
	want := map[string]struct {
		code  ReasonCode
		allow int64
	}{
		"bad":  {ReasonBadReport, 500_000},
		"lost": {ReasonNoSwarm, 240_000},
		"seed": {ReasonSeed, 0},
	}
	for _, s := range d.Sessions {
		if w, ok := want[s.ID]; ok && (s.Reason.Code != w.code || s.AllowanceBps != w.allow) {
			t.Errorf("%s: reason %v allowance %d, want %v %d", s.ID, s.Reason.Code, s.AllowanceBps, w.code, w.allow)
		}
	}
	if ok := d.Sessions[4]; ok.Reason.Code != ReasonAllocated || ok.AllowanceBps < 400_000 {
		t.Errorf("ok session: %v allowance %d, want allocated >= its floor need 400000", ok.Reason.Code, ok.AllowanceBps)
	}
	wantDeg := Degraded{BadReports: 1, NoSwarm: 1, ImplicitSwarms: 1, DuplicateSwarms: 2}
	if d.Degraded != wantDeg {
		t.Errorf("Degraded = %+v, want %+v", d.Degraded, wantDeg)
	}
	if len(d.Swarms) != 2 || d.Swarms[1].Key != "elsewhere" || !d.Swarms[1].Implicit {
		t.Errorf("Swarms = %+v, want s then implicit elsewhere", d.Swarms)
	}
}

func TestTickWithoutInterval(t *testing.T) {
	e := newTestEngine(t, nil)
	obs := Observation{Now: t0, Interval: 0, Swarms: []SwarmObs{{Key: "s", BitrateBps: 2e6}},
		Sessions: []SessionObs{{ID: "a", Swarm: "s", EdgeNonUrgentBytes: 1 << 40, DeclaredUploadBps: 3e6}}}
	var d Decision
	e.Tick(&obs, &d)
	s := d.Sessions[0]
	if s.Reason.Code != ReasonMissingInterval || s.AllowanceBps != 2e6 || s.Unlimited || s.UploadBudgetBps != 1e6 {
		t.Errorf("without interval: %+v; want the floor 2e6 as allowance and a 1e6 upload budget", s)
	}
	if d.EBU != 0 || len(d.Swarms) != 1 || d.Swarms[0].Leechers != 1 {
		t.Errorf("without interval: EBU %g swarms %+v", d.EBU, d.Swarms)
	}
}

func TestTickUploadBudgets(t *testing.T) {
	e := newTestEngine(t, func(p *Params) {
		p.ISPUploadFractions = map[uint32]float64{3215: 0.5}
		p.SiteUploadFractions = map[string]float64{"tv": 0.25}
		p.DefaultUploadBps = 1e6 // the capacity of "undeclared"
	})
	obs := Observation{Now: t0, Interval: tick,
		Swarms: []SwarmObs{{Key: "a", Site: "web"}, {Key: "b", Site: "tv"}},
		Sessions: []SessionObs{
			{ID: "default", Swarm: "a", DeclaredUploadBps: 3e6},
			{ID: "isp", Swarm: "a", ASN: 3215, DeclaredUploadBps: 3e6, UploadedBytes: bytesFor(1.5e6)},
			{ID: "site+isp", Swarm: "b", ASN: 3215, DeclaredUploadBps: 3e6},
			{ID: "undeclared", Swarm: "a"},
			{ID: "off", Swarm: "a", DeclaredUploadBps: 3e6, UploadOff: true},
		},
	}
	var d Decision
	e.Tick(&obs, &d)
	want := []struct {
		budget int64
		at     bool
	}{{1e6, false}, {1.5e6, true}, {750_000, false}, {333_333, false}, {0, true}}
	for i, w := range want {
		if s := d.Sessions[i]; s.UploadBudgetBps != w.budget || s.AtUploadBudget != w.at {
			t.Errorf("%s: budget %d at %v, want %d %v", s.ID, s.UploadBudgetBps, s.AtUploadBudget, w.budget, w.at)
		}
	}
}

// TestTickStopHold: a stopped session stays stopped for StopHold, then the
// allocation may serve it again.
func TestTickStopHold(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.StopHold = 3 * tick })
	obs := Observation{Interval: tick, Swarms: []SwarmObs{{Key: "s"}}}
	for i := range 10 {
		obs.Sessions = append(obs.Sessions, SessionObs{ID: fmt.Sprint(i), Swarm: "s", PeerBytes: bytesFor(1e6), EdgeNonUrgentBytes: bytesFor(float64(i+1) * 1e6)})
	}
	var d Decision
	obs.Now = t0
	e.Tick(&obs, &d) // 55 Mbit/s of 100: EBU 0.55
	if !d.Sessions[9].Stopped || d.Sessions[9].Reason.Code != ReasonStopped {
		t.Fatalf("fastest session not stopped: %+v", d.Sessions[9])
	}
	// Everybody now keeps within the cap.
	for i := range obs.Sessions {
		obs.Sessions[i].EdgeNonUrgentBytes = bytesFor(1e6)
	}
	for k := 1; k <= 3; k++ {
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
		held := d.Sessions[9].Stopped
		if wantHeld := k < 3; held != wantHeld {
			t.Errorf("tick +%d: stopped = %v, want %v (reason %v)", k, held, wantHeld, d.Sessions[9].Reason.Code)
		}
		if held && d.Sessions[9].Reason.Code != ReasonStopHeld {
			t.Errorf("tick +%d: reason %v, want stop_held", k, d.Sessions[9].Reason.Code)
		}
	}
}

// TestTickClosedLoop: sessions that obey their allowances bring EBU under
// the cap within a few ticks of a surge, and nobody falls below its floor.
func TestTickClosedLoop(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 50e6 })
	const viewers, bitrate = 200, 1_000_000
	obs := Observation{Interval: tick, Swarms: []SwarmObs{{Key: "live", Video: true, BitrateBps: bitrate}}}
	peerBps := make([]float64, viewers)
	for i := range viewers {
		peerBps[i] = float64(i%5) * 300_000 // some peers give a lot, some nothing
		obs.Sessions = append(obs.Sessions, SessionObs{ID: fmt.Sprint(i), Swarm: "live", DemandBps: 3 * bitrate})
	}
	var d Decision
	allowed := make([]float64, viewers)
	for i := range allowed {
		allowed[i] = math.Inf(1) // the surge: unknown sessions are admitted
	}
	overTicks := 0
	for k := range 10 {
		for i := range obs.Sessions {
			s := &obs.Sessions[i]
			floorNeed := math.Max(0, bitrate-peerBps[i])
			// Urgent within the floor is always served; non-urgent up to
			// the allowance and what the player wants.
			want := 3*bitrate - peerBps[i] - floorNeed
			s.EdgeUrgentBytes = bytesFor(floorNeed)
			s.EdgeNonUrgentBytes = bytesFor(math.Min(want, allowed[i]))
			s.PeerBytes = bytesFor(peerBps[i])
			got := peerBps[i] + floorNeed + math.Min(want, allowed[i])
			if got < bitrate-1 {
				t.Fatalf("tick %d: viewer %d below its floor: %g", k, i, got)
			}
		}
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
		if d.EBU > d.Cap {
			overTicks++
			if k >= 2 {
				t.Errorf("tick %d: EBU %g still over the cap %g", k, d.EBU, d.Cap)
			}
		}
		for i, s := range d.Sessions {
			allowed[i] = float64(s.AllowanceBps)
		}
	}
	if overTicks == 0 {
		t.Error("the surge never pushed EBU over the cap: the test does not test anything")
	}
}

// TestTickAllocationFollowsCurves: after the floors, the headroom goes
// where the response curves say it buys the most swarm rate.
func TestTickAllocationFollowsCurves(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 40e6; p.Exploration = 0.05 }) // headroom 16 Mbit/s
	obs := Observation{Interval: tick, Swarms: []SwarmObs{{Key: "amplifies"}, {Key: "flat"}}}
	for i := range 20 {
		obs.Sessions = append(obs.Sessions,
			SessionObs{ID: "a" + fmt.Sprint(i), Swarm: "amplifies", DemandBps: 2e6},
			SessionObs{ID: "f" + fmt.Sprint(i), Swarm: "flat", DemandBps: 2e6})
	}
	var d Decision
	edge := map[string]float64{"amplifies": 3e6, "flat": 3e6}
	for k := range 30 {
		// In "amplifies" each edge bit is re-shared twice by peers (rate =
		// 3 x edge); in "flat" peers add nothing.
		for i := range obs.Sessions {
			s := &obs.Sessions[i]
			b := edge[s.Swarm] / 20
			s.EdgeNonUrgentBytes = bytesFor(b)
			s.PeerBytes = 0
			if s.Swarm == "amplifies" {
				s.PeerBytes = bytesFor(math.Min(2*b, 2e6-b))
			}
		}
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
		edge["amplifies"], edge["flat"] = d.Swarms[0].AllowanceBps, d.Swarms[1].AllowanceBps
	}
	amp, flat := d.Swarms[0], d.Swarms[1]
	if amp.AllowanceBps-amp.GuaranteeBps <= flat.AllowanceBps-flat.GuaranteeBps {
		t.Errorf("extra beyond floors: amplifying swarm %g <= flat swarm %g", amp.AllowanceBps-amp.GuaranteeBps, flat.AllowanceBps-flat.GuaranteeBps)
	}
	// The flat swarm's floors take 4.8 of the 16 Mbit/s; the best use of
	// the other 11.2 is the amplifying swarm: 3 x 11.2/20 = 1.68 Mbit/s
	// each.
	if amp.AvgRateBps < 0.9*1.68e6 {
		t.Errorf("amplifying swarm's average rate %g, want about 1.68e6", amp.AvgRateBps)
	}
	if flat.AvgRateBps < 240_000 {
		t.Errorf("flat swarm's average rate %g below the floor", flat.AvgRateBps)
	}
	if amp.CurveSamples != 30 {
		t.Errorf("CurveSamples = %d, want 30", amp.CurveSamples)
	}
}

func TestTickDeterministic(t *testing.T) {
	mk := func() []Decision {
		e := newTestEngine(t, nil)
		obs := randomObservation(42, 500, 40)
		var out []Decision
		for k := range 5 {
			obs.Now = t0.Add(time.Duration(k) * tick)
			var d Decision
			e.Tick(&obs, &d)
			out = append(out, d)
		}
		return out
	}
	a, b := mk(), mk()
	for k := range a {
		if fmt.Sprintf("%+v", a[k]) != fmt.Sprintf("%+v", b[k]) {
			t.Fatalf("tick %d: decisions differ between two identical runs", k)
		}
	}
}

func TestTickInvariantsOnRandomObservations(t *testing.T) {
	for seed := range uint64(30) {
		e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = float64(1+seed%7) * 20e6 })
		obs := randomObservation(seed, 300, 25)
		var d Decision
		for k := range 4 {
			obs.Now = t0.Add(time.Duration(k) * tick)
			e.Tick(&obs, &d)
			if err := checkInvariants(&obs, &d); err != nil {
				t.Fatalf("seed %d tick %d: %v", seed, k, err)
			}
		}
	}
}

// checkInvariants verifies what every decision must satisfy.
func checkInvariants(obs *Observation, d *Decision) error {
	if len(d.Sessions) != len(obs.Sessions) {
		return fmt.Errorf("%d session decisions for %d sessions", len(d.Sessions), len(obs.Sessions))
	}
	sec := obs.Interval.Seconds()
	total := 0.0
	for i, s := range d.Sessions {
		o := obs.Sessions[i]
		if s.ID != o.ID {
			return fmt.Errorf("decision %d is for %q, want %q", i, s.ID, o.ID)
		}
		if s.AllowanceBps < 0 || s.UploadBudgetBps < 0 || s.FloorBps <= 0 {
			return fmt.Errorf("%s: negative allowance/budget or no floor: %+v", s.ID, s)
		}
		if s.Unlimited {
			continue
		}
		total += float64(s.AllowanceBps)
		if o.Seed || !(sec > 0) {
			continue
		}
		bad := o.EdgeUrgentBytes < 0 || o.PeerBytes < 0 || o.EdgeNonUrgentBytes < 0 || o.UploadedBytes < 0 ||
			o.DeclaredUploadBps < 0 || o.DemandBps < 0 || o.FloorBps < 0
		need := float64(s.FloorBps)
		if !bad {
			need -= (float64(o.PeerBytes) + float64(o.EdgeUrgentBytes)) * 8 / sec
		}
		if float64(s.AllowanceBps) < need-1 {
			return fmt.Errorf("%s: allowance %d below its floor need %g", s.ID, s.AllowanceBps, need)
		}
	}
	if d.CapacitySource != CapacityUnknown && sec > 0 {
		limit := math.Max(d.HeadroomBps, d.GuaranteeBps) * (1 + 1e-9)
		if total > limit+float64(len(d.Sessions)) { // +1 per session for rounding
			return fmt.Errorf("allowances add up to %g, over max(headroom %g, guarantees %g)", total, d.HeadroomBps, d.GuaranteeBps)
		}
		if !d.FloorsOverCap && d.EBUAfter > d.Cap*(1+1e-9) {
			return fmt.Errorf("EBUAfter %g over the cap %g", d.EBUAfter, d.Cap)
		}
	}
	n := 0
	for _, c := range d.ClassCounts {
		n += c
	}
	if n != len(d.Swarms) {
		return fmt.Errorf("class counts add up to %d, want %d swarms", n, len(d.Swarms))
	}
	return nil
}

// randomObservation builds sessions over swarms with varied rates, from a
// seed (a simple LCG keeps the test self-contained and stable).
func randomObservation(seed uint64, sessions, swarms int) Observation {
	x := seed*6364136223846793005 + 1442695040888963407
	next := func(n int) int {
		x = x*6364136223846793005 + 1442695040888963407
		return int((x >> 33) % uint64(n))
	}
	obs := Observation{Now: t0, Interval: tick}
	for j := range swarms {
		obs.Swarms = append(obs.Swarms, SwarmObs{Key: fmt.Sprint("sw", j), Video: j%2 == 0, BitrateBps: int64(next(3)) * 500_000})
	}
	for i := range sessions {
		obs.Sessions = append(obs.Sessions, SessionObs{
			ID: fmt.Sprint("s", i), Swarm: fmt.Sprint("sw", next(swarms)), ASN: uint32(next(3)),
			Seed:               next(10) == 0,
			EdgeUrgentBytes:    bytesFor(float64(next(500_000))),
			EdgeNonUrgentBytes: bytesFor(float64(next(3_000_000))),
			PeerBytes:          bytesFor(float64(next(2_000_000))),
			UploadedBytes:      bytesFor(float64(next(1_000_000))),
			DeclaredUploadBps:  int64(next(4_000_000)),
			DemandBps:          int64(next(4_000_000)),
		})
	}
	return obs
}

// BenchmarkTick: one full policy tick for 1,000,000 sessions in 10,000
// swarms (the allocation's share is BenchmarkAllocate).
func BenchmarkTick(b *testing.B) {
	e := newTestEngine(b, func(p *Params) { p.EdgeCapacityBps = 5e12 }) // EBU about 0.3: a normal tick
	obs := randomObservation(1, 1_000_000, 10_000)
	var d Decision
	b.ReportAllocs()
	b.ResetTimer()
	for k := range b.N {
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
	}
}
