package policy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSelectTopMatchesSelectStops: the engine's radix select chooses the
// same sessions as sorting with SelectStops, for every k, with many equal
// rates (ties broken by ID) and rates across many magnitudes.
func TestSelectTopMatchesSelectStops(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	hist := make([]int32, 1<<16)
	for trial := range 200 {
		n := 1 + rng.IntN(300)
		ids := make([]string, n)
		cands := make([]StopCandidate, n)
		for i := range n {
			ids[i] = fmt.Sprintf("s%04d", rng.IntN(100_000)*n+i) // unique, not in index order
			var rate float64
			switch trial % 4 {
			case 0: // few distinct rates: many ties
				rate = float64(rng.IntN(4)) * 1e6
			case 1: // any magnitude
				rate = math.Ldexp(rng.Float64(), rng.IntN(200)-20)
			case 2: // near each other: differ in the low bits only
				rate = math.Float64frombits(math.Float64bits(1e6) + uint64(rng.IntN(8)))
			default:
				rate = rng.Float64() * 5e6
			}
			if rng.IntN(20) == 0 {
				rate = 0
			}
			cands[i] = StopCandidate{Index: i, ID: ids[i], RateBps: rate}
		}
		idOf := func(i int32) string { return ids[i] }
		for _, k := range []int{-1, 0, 1, n / 3, n / 2, n - 1, n, n + 5} {
			want := map[int]bool{}
			for _, c := range SelectStops(slices.Clone(cands), k) {
				want[c.Index] = true
			}
			ranked := make([]rankedStop, n)
			for i, c := range cands {
				ranked[i] = rankedStop{key: rateKey(c.RateBps), idx: int32(i)}
			}
			got := selectTop(ranked, k, idOf, hist)
			if len(got) != len(want) {
				t.Fatalf("trial %d k %d: chose %d, want %d", trial, k, len(got), len(want))
			}
			for _, c := range got {
				if !want[int(c.idx)] {
					t.Fatalf("trial %d k %d: chose %s (rate %g), which SelectStops does not", trial, k, ids[c.idx], cands[c.idx].RateBps)
				}
			}
		}
	}
}

func TestRateKeyOrder(t *testing.T) {
	vals := []float64{math.Inf(-1), -1e300, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 1, 1.0000000000000002, 1e300, math.Inf(1)}
	for i := 1; i < len(vals); i++ {
		if rateKey(vals[i-1]) >= rateKey(vals[i]) {
			t.Errorf("rateKey(%g) >= rateKey(%g)", vals[i-1], vals[i])
		}
	}
	if rateKey(0) != rateKey(math.Copysign(0, -1)) {
		t.Error("rateKey(+0) != rateKey(-0)")
	}
}

// TestStopDetailsMatchSprintf: the reasons written in chunks read as the
// sentence fmt.Sprintf makes, and each is its own substring.
func TestStopDetailsMatchSprintf(t *testing.T) {
	p := DefaultParams()
	p.StopHold = 90 * time.Second
	out := Decision{EBU: 0.4567, StopK: 1234, StopN: 56789, Sessions: make([]SessionDecision, 3000)}
	var w stopDetails
	w.start(&out, &p)
	rng := rand.New(rand.NewPCG(5, 6))
	rates := make([]float64, len(out.Sessions))
	floors := make([]float64, len(out.Sessions))
	for i := range out.Sessions {
		rates[i], floors[i] = rng.Float64()*1e7, float64(rng.IntN(3))*250_000.5
		w.add(&out, i, rates[i], floors[i])
	}
	w.flush(&out)
	for i, s := range out.Sessions {
		want := fmt.Sprintf("EBU %.3f over cap %.2f: download rate %.0f bit/s is among the %d highest of %d sessions drawing non-urgent edge egress; non-urgent edge fetches stop for %s (floor %.0f bit/s kept)",
			out.EBU, p.EBUCap, rates[i], out.StopK, out.StopN, p.StopHold, floors[i])
		if s.Reason.Detail != want {
			t.Fatalf("session %d:\n got %q\nwant %q", i, s.Reason.Detail, want)
		}
	}
}

// TestSwarmGuessesAreChecked: whatever order sessions come in from tick to
// tick (the same, shifted, swarm by swarm, random) and however the swarms'
// indices change, each session gets the swarm its key names.
func TestSwarmGuessesAreChecked(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	e := newTestEngine(t, nil)
	keys := make([]string, 40)
	for j := range keys {
		keys[j] = fmt.Sprint("k", j)
	}
	var sessions []SessionObs
	for i := range 3000 {
		sessions = append(sessions, SessionObs{ID: fmt.Sprint(i), Swarm: keys[rng.IntN(len(keys))]})
	}
	var d Decision
	for k := range 40 {
		switch k % 5 {
		case 1: // the first few leave
			sessions = sessions[rng.IntN(5):]
		case 2: // some join in front
			for range rng.IntN(5) {
				sessions = append([]SessionObs{{ID: fmt.Sprint("new", k, len(sessions)), Swarm: keys[rng.IntN(len(keys))]}}, sessions...)
			}
		case 3: // swarm by swarm
			slices.SortStableFunc(sessions, func(a, b SessionObs) int { return strings.Compare(a.Swarm, b.Swarm) })
		case 4:
			rng.Shuffle(len(sessions), func(a, b int) { sessions[a], sessions[b] = sessions[b], sessions[a] })
		}
		// The swarms listed in a new order (new indices), some unlisted.
		obs := Observation{Now: t0.Add(time.Duration(k) * tick), Interval: tick, Sessions: sessions}
		for _, j := range rng.Perm(len(keys))[:30] {
			obs.Swarms = append(obs.Swarms, SwarmObs{Key: strings.Clone(keys[j])})
		}
		e.Tick(&obs, &d)
		for i, s := range obs.Sessions {
			if got := e.info[e.ss[i].swarm].key; got != s.Swarm {
				t.Fatalf("tick %d: session %d of swarm %q put in swarm %q", k, i, s.Swarm, got)
			}
		}
	}
}

// TestTickAllocatesNothing: once its scratch and the decision have grown,
// a tick under the cap allocates nothing (a tick over 1M sessions must not
// allocate per session, nor feed the garbage collector each tick).
func TestTickAllocatesNothing(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 1e11 }) // EBU about 0.3
	obs := randomObservation(7, 20_000, 200)
	for i := range obs.Sessions {
		// Demand beyond the headroom, so that the allocation water-fills.
		obs.Sessions[i].DemandBps = 20e6
	}
	var d Decision
	for k := range 3 {
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
	}
	if d.StopK != 0 || d.JoinUnlimited {
		t.Fatalf("want a tick under a known cap: StopK %d, capacity unknown %v", d.StopK, d.JoinUnlimited)
	}
	k := 3
	allocs := testing.AllocsPerRun(5, func() {
		obs.Now = t0.Add(time.Duration(k) * tick)
		k++
		e.Tick(&obs, &d)
	})
	if allocs != 0 {
		t.Errorf("a tick allocates %v times, want 0", allocs)
	}
}
