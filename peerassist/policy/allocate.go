package policy

import (
	"math"
	"slices"
)

// AllocInput is one swarm's part in Allocate.
type AllocInput struct {
	// Curve is the swarm's response curve. A swarm whose curve is not
	// Valid gets its minimum only.
	Curve Curve
	// MinBps is given first, whatever the curve (the swarm's guarantees).
	MinBps float64
	// MaxBps is where the swarm stops gaining (its demand is met); values
	// below MinBps count as MinBps, +Inf means no such point.
	MaxBps float64
}

// bisectIterations bounds the search for the water level. Each halves the
// interval of log(level), which starts at most ~1500 wide for float64, so
// 64 iterations resolve it to far below a bit per second.
const bisectIterations = 64

// Allocate gives each swarm its MinBps, then distributes extraBps on top to
// maximize the sum of the swarms' rates Curve.RateBps(b), each swarm
// staying within [MinBps, MaxBps]. On concave curves the optimum has equal
// marginal gain (the water level) for every swarm strictly between its
// bounds; Allocate finds that level by bisection, which is exact to float
// precision and costs O(m log(1/eps)) for m swarms (Antfarm's greedy
// hill-climbing in steps of delta costs O((B/delta) log m) and is only
// within a step of the optimum).
//
// It writes each swarm's total b into out, which must have len(in)
// elements, and returns the part of extraBps it could not place because
// every swarm reached its MaxBps.
func Allocate(in []AllocInput, extraBps float64, out []float64) (leftoverBps float64) {
	left, _ := allocate(in, extraBps, out, nil)
	return left
}

// allocate is Allocate with scratch for the water-filling terms, which it
// returns grown, so that an Engine's ticks reuse it.
func allocate(in []AllocInput, extraBps float64, out []float64, pre []waterTerm) (leftoverBps float64, scratch []waterTerm) {
	if len(out) != len(in) {
		panic("policy.Allocate: len(out) != len(in)")
	}
	extra := extraBps
	if !(extra > 0) || math.IsInf(extra, 0) {
		extra = math.Max(0, extra)
		if math.IsInf(extra, 0) || math.IsNaN(extra) {
			extra = 0
		}
	}
	// Room above the minimum of each swarm, and the range of water levels
	// (as logs) that matters.
	room := 0.0
	loLevel, hiLevel := math.Inf(1), math.Inf(-1)
	for i, s := range in {
		lo := sanitizeBps(s.MinBps)
		out[i] = lo
		hi := s.MaxBps
		if !(hi >= lo) { // NaN or below the minimum
			hi = lo
		}
		if !s.Curve.Valid() || hi == lo {
			continue
		}
		room += hi - lo
		if l := logGain(s.Curve, lo); l > hiLevel {
			hiLevel = l
		}
		if math.IsInf(hi, 1) {
			loLevel = math.Inf(-1)
		} else if l := logGain(s.Curve, hi); l < loLevel {
			loLevel = l
		}
	}
	if extra == 0 || room == 0 {
		return extra, pre
	}
	if room <= extra { // everyone can be filled to the top
		for i, s := range in {
			if s.Curve.Valid() && s.MaxBps > out[i] {
				out[i] = s.MaxBps
			}
		}
		return extra - room, pre
	}
	// total(level) is the extra the swarms take at a water level: each
	// takes the b where its marginal gain equals the level, within bounds.
	// It decreases as the level rises. Find the lowest level at which the
	// total still fits.
	// Precompute each swarm's bounds and the constants of its inverse
	// marginal gain, so each evaluation costs one exp per swarm.
	pre = slices.Grow(pre[:0], len(in))
	for i, s := range in {
		lo := sanitizeBps(s.MinBps)
		hi := s.MaxBps
		if !(hi > lo) || !s.Curve.Valid() {
			continue
		}
		pre = append(pre, waterTerm{
			i: i, lo: lo, hi: hi, beta: s.Curve.BetaBps,
			logCA: math.Log(s.Curve.C * s.Curve.A), inv: 1 / (s.Curve.A - 1),
		})
	}
	total := func(logLevel float64, write bool) float64 {
		sum := 0.0
		for k := range pre {
			t := &pre[k]
			x := (logLevel - t.logCA) * t.inv
			b := math.Inf(1)
			if x <= 700 { // beyond float range: unbounded
				b = math.Exp(x) - t.beta
			}
			b = math.Min(math.Max(b, t.lo), t.hi)
			sum += b - t.lo
			if write {
				out[t.i] = b
			}
		}
		return sum
	}
	if math.IsInf(hiLevel, 0) || math.IsNaN(hiLevel) {
		return extra, pre // no finite gain anywhere: nothing to compare
	}
	if math.IsInf(loLevel, -1) {
		// Some swarm never saturates: walk the level down, doubling the
		// step, until the total exceeds the extra (at most ~11 steps to
		// the bottom of the float range).
		step := 1.0
		loLevel = hiLevel - step
		for total(loLevel, false) <= extra && loLevel > -2000 {
			step *= 2
			loLevel = hiLevel - step
		}
	}
	lo, hi := loLevel, hiLevel // total(lo) >= extra >= total(hi) == 0
	for range bisectIterations {
		if hi-lo < 1e-10 { // the level is known to 1e-10 relative
			break
		}
		mid := (lo + hi) / 2
		if total(mid, false) > extra {
			lo = mid
		} else {
			hi = mid
		}
	}
	used := total(hi, true)
	if used > extra {
		// Only float rounding at extreme magnitudes gets here: scale the
		// shares down so that they never exceed the extra.
		scale := extra / used
		for k := range pre {
			t := &pre[k]
			out[t.i] = t.lo + (out[t.i]-t.lo)*scale
		}
		return 0, pre
	}
	return extra - used, pre
}

// logGain is log(c.MarginalGain(b)), computed in logs so that it stays
// finite where the gain itself would underflow or overflow.
func logGain(c Curve, b float64) float64 {
	return math.Log(c.C) + math.Log(c.A) + (c.A-1)*math.Log(b+c.BetaBps)
}

// waterTerm is one swarm in the water-filling: b(level) =
// exp((log(level) - log(C*A)) / (A-1)) - Beta, within [lo, hi].
type waterTerm struct {
	i                        int
	lo, hi, beta, logCA, inv float64
}

func sanitizeBps(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 1) {
		return 0
	}
	return v
}
