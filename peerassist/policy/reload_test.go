package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// reloadObs is one tick of 10 sessions of swarm "s" (site "video"), each
// drawing 5 Mbit/s of non-urgent edge egress and 1 Mbit/s from peers at
// tick n (seconds 5n): EBU 0.5 of a 100 Mbit/s edge.
func reloadObs(n int) *Observation {
	o := &Observation{Now: t0.Add(time.Duration(n) * tick), Interval: tick,
		Swarms: []SwarmObs{{Key: "s", Site: "video", Video: true}}}
	for i := range 10 {
		o.Sessions = append(o.Sessions, SessionObs{ID: fmt.Sprintf("p%d", i), Swarm: "s",
			EdgeNonUrgentBytes: bytesFor(5e6), PeerBytes: bytesFor(float64(i+1) * 1e5)})
	}
	return o
}

// TestEngineSetParams: new parameters take effect at the next tick and
// what the engine learned stays where it still applies.
func TestEngineSetParams(t *testing.T) {
	tests := []struct {
		name   string
		before func(*Params) // the engine's parameters before the reload
		change func(*Params) // the reload
		check  func(t *testing.T, before, after *Decision)
	}{
		{
			name:   "a lower cap stops sessions at the next tick",
			before: func(p *Params) { p.EBUCap = 1 },
			change: func(p *Params) { p.EBUCap = 0.4 },
			check: func(t *testing.T, before, after *Decision) {
				if before.StopK != 0 || after.Cap != 0.4 || after.StopK != 2 {
					t.Errorf("StopK before %d, after %d with cap %g; want 0, then 2 with cap 0.4", before.StopK, after.StopK, after.Cap)
				}
			},
		},
		{
			name:   "a higher capacity lowers EBU",
			change: func(p *Params) { p.EdgeCapacityBps = 200e6 },
			check: func(t *testing.T, before, after *Decision) {
				if before.EBU != 0.5 || after.EBU != 0.25 || after.CapacityBps != 200e6 {
					t.Errorf("EBU %g then %g (capacity %g); want 0.5 then 0.25 at 200e6", before.EBU, after.EBU, after.CapacityBps)
				}
			},
		},
		{
			name:   "curves are kept across an unrelated change",
			before: func(p *Params) { p.EBUCap = 1 },
			change: func(p *Params) { p.EBUCap = 0.9; p.UploadFraction = 0.5; p.CurveMemory = 30 },
			check: func(t *testing.T, before, after *Decision) {
				if b, a := before.Swarms[0].CurveSamples, after.Swarms[0].CurveSamples; a != b+1 {
					t.Errorf("curve samples %d then %d, want one more (the curve kept)", b, a)
				}
			},
		},
		{
			name:   "a site's new bitrate restarts its swarm's curve",
			before: func(p *Params) { p.EBUCap = 1; p.SiteBitrateBps = map[string]float64{"video": 400_000} },
			change: func(p *Params) { p.SiteBitrateBps = map[string]float64{"video": 800_000} },
			check: func(t *testing.T, before, after *Decision) {
				sw := after.Swarms[0]
				if before.Swarms[0].CurveSamples < 2 || sw.CurveSamples != 1 || sw.BasicRateBps != 800_000 || sw.Curve.BetaBps != 800_000 {
					t.Errorf("curve samples %d then %d, basic rate %g, beta %g; want a new curve on 800000",
						before.Swarms[0].CurveSamples, sw.CurveSamples, sw.BasicRateBps, sw.Curve.BetaBps)
				}
				if f := after.Sessions[0].FloorBps; f != 800_000 {
					t.Errorf("floor %d, want the site's new bitrate 800000", f)
				}
			},
		},
		{
			name:   "another site's bitrate keeps the curve",
			before: func(p *Params) { p.EBUCap = 1; p.SiteBitrateBps = map[string]float64{"video": 400_000} },
			change: func(p *Params) { p.SiteBitrateBps = map[string]float64{"video": 400_000, "other": 1e6} },
			check: func(t *testing.T, before, after *Decision) {
				if b, a := before.Swarms[0].CurveSamples, after.Swarms[0].CurveSamples; a != b+1 {
					t.Errorf("curve samples %d then %d, want one more (the curve kept)", b, a)
				}
			},
		},
		{
			name:   "a site's upload fraction changes its budgets",
			change: func(p *Params) { p.SiteUploadFractions = map[string]float64{"video": 0.1} },
			check: func(t *testing.T, before, after *Decision) {
				if b, a := before.Sessions[0].UploadBudgetBps, after.Sessions[0].UploadBudgetBps; b != 3_333_333 || a != 1_000_000 {
					t.Errorf("upload budget %d then %d, want 3333333 then 1000000", b, a)
				}
			},
		},
		{
			name:   "the observed peak survives a new window",
			before: func(p *Params) { p.EdgeCapacityBps = 0; p.PeakWarmup = 0; p.PeakWindow = 24 * time.Hour },
			change: func(p *Params) { p.PeakWindow = 7 * 24 * time.Hour },
			check: func(t *testing.T, before, after *Decision) {
				if before.CapacitySource != CapacityObservedPeak || after.CapacitySource != CapacityObservedPeak ||
					after.CapacityBps != before.CapacityBps {
					t.Errorf("capacity %g (%v) then %g (%v), want the same observed peak",
						before.CapacityBps, before.CapacitySource, after.CapacityBps, after.CapacitySource)
				}
			},
		},
		{
			name:   "a longer warm-up than the edge has observed measures again",
			before: func(p *Params) { p.EdgeCapacityBps = 0; p.PeakWarmup = 0 },
			change: func(p *Params) { p.PeakWarmup = time.Hour },
			check: func(t *testing.T, before, after *Decision) {
				if before.CapacitySource != CapacityObservedPeak || after.CapacitySource != CapacityUnknown || !after.JoinUnlimited {
					t.Errorf("capacity source %v then %v, want observed_peak then unknown (warming up again)",
						before.CapacitySource, after.CapacitySource)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, tt.before)
			var before, after Decision
			for n := range 3 {
				e.Tick(reloadObs(n), &before)
			}
			p := e.Params()
			tt.change(&p)
			if err := e.SetParams(p); err != nil {
				t.Fatalf("SetParams: %v", err)
			}
			e.Tick(reloadObs(3), &after)
			tt.check(t, &before, &after)
		})
	}
}

// TestEngineSetParamsStopHold: held stops end stop_hold after they began,
// whichever stop_hold was in force then.
func TestEngineSetParamsStopHold(t *testing.T) {
	tests := []struct {
		hold      time.Duration
		wantHeld3 int // sessions still held at tick 3 (10 s after the stops)
	}{
		{60 * time.Second, 2},
		{8 * time.Second, 0},
		{12 * time.Second, 2},
	}
	for _, tt := range tests {
		e := newTestEngine(t, func(p *Params) { p.EBUCap = 0.4 })
		var d Decision
		e.Tick(reloadObs(1), &d) // stops 2 at t0+5s
		if d.StopK != 2 {
			t.Fatalf("first tick stopped %d, want 2", d.StopK)
		}
		p := e.Params()
		p.StopHold, p.EBUCap = tt.hold, 1
		if err := e.SetParams(p); err != nil {
			t.Fatal(err)
		}
		e.Tick(reloadObs(3), &d) // t0+15s: 10 s after the stops
		if d.Stopped != tt.wantHeld3 {
			t.Errorf("stop_hold %s: %d held 10 s after the stops, want %d", tt.hold, d.Stopped, tt.wantHeld3)
		}
	}
}

// TestEngineSetParamsInvalid: invalid parameters change nothing.
func TestEngineSetParamsInvalid(t *testing.T) {
	e := newTestEngine(t, nil)
	p := e.Params()
	p.EBUCap = 0
	p.SlurpieK = 0.5
	err := e.SetParams(p)
	if err == nil {
		t.Fatal("SetParams accepted ebu_cap 0")
	}
	for _, want := range []string{"policy.ebu_cap", "policy.slurpie_k"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if got := e.Params().EBUCap; got != 0.4 {
		t.Errorf("ebu_cap after a refused SetParams = %g, want 0.4", got)
	}
}

// TestPeakTrackerSetWindow: a new window keeps the peaks it covers.
func TestPeakTrackerSetWindow(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name   string
		window time.Duration
		at     time.Duration // when Peak is asked, after the first observation
		want   float64
	}{
		{"longer window keeps the old peak", 30 * day, 2 * day, 9e6},
		{"shorter window still covering it", 3 * day, 2 * day, 9e6},
		{"shorter window past it", 12 * time.Hour, 2 * day, 4e6},
		{"same window", 10 * day, 2 * day, 9e6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PeakTracker{Window: 10 * day}
			p.Observe(t0, 9e6)
			p.Observe(t0.Add(tt.at-time.Hour), 4e6)
			p.SetWindow(tt.window)
			if p.Window != tt.window {
				t.Errorf("Window = %s, want %s", p.Window, tt.window)
			}
			if got, ok := p.Peak(t0.Add(tt.at)); !ok || got != tt.want {
				t.Errorf("Peak = %g, %v; want %g, true", got, ok, tt.want)
			}
		})
	}
}
