package policy

import (
	"math"
	"testing"
)

func TestResponseCurveRecoversPowerLaw(t *testing.T) {
	tests := []struct {
		name string
		c, a float64
	}{
		{"square root", 50, 0.5},
		{"flat", 2e5, 0.1},
		{"steep", 3, 0.9},
	}
	const beta = 240_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			truth := Curve{C: tt.c, A: tt.a, BetaBps: beta}
			r := ResponseCurve{BetaBps: beta, Memory: 12}
			// An operating point explored +-5% and drifting, as the engine
			// does it.
			for i := range 40 {
				b := 2e6 * (1 + 0.3*math.Sin(float64(i)/7)) * (1 + 0.05*float64(1-2*(i%2)))
				r.Observe(b, truth.RateBps(b))
			}
			got, ok := r.Fit()
			if !ok {
				t.Fatal("Fit() not ok after 40 samples")
			}
			if math.Abs(got.A-tt.a) > 0.02 {
				t.Errorf("Fit().A = %.4f, want %.4f", got.A, tt.a)
			}
			for _, b := range []float64{1e6, 2e6, 3e6} {
				if g, w := got.RateBps(b), truth.RateBps(b); math.Abs(g-w) > 0.01*w {
					t.Errorf("Fit().RateBps(%g) = %g, want %g", b, g, w)
				}
			}
		})
	}
}

func TestResponseCurvePriorWithoutVariation(t *testing.T) {
	r := ResponseCurve{BetaBps: 100}
	for range 5 {
		r.Observe(900, 4000) // the same point every tick: no slope to see
	}
	got, ok := r.Fit()
	if !ok {
		t.Fatal("Fit() not ok")
	}
	if got.A != priorExponent {
		t.Errorf("A = %g, want the prior %g", got.A, priorExponent)
	}
	if rate := got.RateBps(900); math.Abs(rate-4000) > 1e-6*4000 {
		t.Errorf("RateBps(900) = %g, want the observed 4000", rate)
	}
}

func TestResponseCurveIgnoresBadSamples(t *testing.T) {
	var r ResponseCurve
	for _, s := range [][2]float64{{-1, 5}, {5, 0}, {5, -3}, {math.NaN(), 5}, {5, math.Inf(1)}, {math.Inf(1), 5}} {
		r.Observe(s[0], s[1])
	}
	if r.Samples() != 0 {
		t.Errorf("Samples() = %d after bad samples, want 0", r.Samples())
	}
	if _, ok := r.Fit(); ok {
		t.Error("Fit() ok without samples")
	}
	r.Observe(0, 10) // no edge bandwidth is a valid sample
	if _, ok := r.Fit(); !ok || r.Samples() != 1 {
		t.Errorf("Fit() after one good sample: ok=%v samples=%d", ok, r.Samples())
	}
}

func TestResponseCurveForgets(t *testing.T) {
	r := ResponseCurve{BetaBps: 1000, Memory: 3}
	old := Curve{C: 10, A: 0.5, BetaBps: 1000}
	now := Curve{C: 40, A: 0.5, BetaBps: 1000}
	for i := range 30 {
		b := 1e6 * (1 + 0.05*float64(1-2*(i%2)))
		r.Observe(b, old.RateBps(b))
	}
	for i := range 30 {
		b := 1e6 * (1 + 0.05*float64(1-2*(i%2)))
		r.Observe(b, now.RateBps(b))
	}
	got, _ := r.Fit()
	if g, w := got.RateBps(1e6), now.RateBps(1e6); math.Abs(g-w) > 0.01*w {
		t.Errorf("after the swarm changed: RateBps = %g, want about %g", g, w)
	}
}

func TestCurveInverse(t *testing.T) {
	c := Curve{C: 7, A: 0.6, BetaBps: 3e5}
	for _, b := range []float64{0, 1e5, 1e7} {
		if got := c.EdgeForRate(c.RateBps(b)); math.Abs(got-b) > 1e-6*(b+1) {
			t.Errorf("EdgeForRate(RateBps(%g)) = %g", b, got)
		}
	}
	if got := c.EdgeForRate(c.RateBps(0) / 2); got != 0 {
		t.Errorf("EdgeForRate below D(0) = %g, want 0", got)
	}
	if got := c.EdgeForRate(-1); got != 0 {
		t.Errorf("EdgeForRate(-1) = %g, want 0", got)
	}
}

func TestPriorCurveMarginalGain(t *testing.T) {
	c := priorCurve(10, 240_000)
	if g := c.MarginalGain(10 * 240_000); math.Abs(g-1) > 1e-9 {
		t.Errorf("prior MarginalGain at L*basic = %g, want 1", g)
	}
	if !c.Valid() {
		t.Errorf("prior curve %+v not valid", c)
	}
}
