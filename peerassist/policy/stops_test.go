package policy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
