package policy

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAllocateEqualSwarmsSplitEqually(t *testing.T) {
	c := Curve{C: 10, A: 0.5, BetaBps: 1000}
	in := []AllocInput{{Curve: c, MaxBps: math.Inf(1)}, {Curve: c, MaxBps: math.Inf(1)}}
	out := make([]float64, 2)
	left := Allocate(in, 1e6, out)
	if math.Abs(out[0]-5e5) > 1 || math.Abs(out[1]-5e5) > 1 || left > 1 {
		t.Errorf("Allocate = %v, leftover %g; want [5e5 5e5], 0", out, left)
	}
}

func TestAllocateBoundsAndLeftover(t *testing.T) {
	c := Curve{C: 10, A: 0.5, BetaBps: 1000}
	tests := []struct {
		name     string
		in       []AllocInput
		extra    float64
		want     []float64
		wantLeft float64
	}{
		{"minimums without extra", []AllocInput{{Curve: c, MinBps: 300, MaxBps: 900}, {Curve: c, MinBps: 100, MaxBps: 200}}, 0, []float64{300, 100}, 0},
		{"everyone filled", []AllocInput{{Curve: c, MinBps: 300, MaxBps: 900}, {Curve: c, MinBps: 100, MaxBps: 200}}, 1000, []float64{900, 200}, 300},
		{"invalid curve keeps its minimum", []AllocInput{{Curve: Curve{}, MinBps: 50, MaxBps: 1e9}, {Curve: c, MinBps: 0, MaxBps: 400}}, 1000, []float64{50, 400}, 600},
		{"max below min", []AllocInput{{Curve: c, MinBps: 500, MaxBps: 100}}, 1000, []float64{500}, 1000},
		{"NaN and negative inputs", []AllocInput{{Curve: c, MinBps: math.NaN(), MaxBps: math.NaN()}, {Curve: c, MinBps: -5, MaxBps: 10}}, math.NaN(), []float64{0, 0}, 0},
		{"negative extra", []AllocInput{{Curve: c, MinBps: 7, MaxBps: 10}}, -100, []float64{7}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]float64, len(tt.in))
			left := Allocate(tt.in, tt.extra, out)
			for i := range tt.want {
				if math.Abs(out[i]-tt.want[i]) > 1e-6 {
					t.Errorf("out[%d] = %g, want %g", i, out[i], tt.want[i])
				}
			}
			if math.Abs(left-tt.wantLeft) > 1e-6 {
				t.Errorf("leftover = %g, want %g", left, tt.wantLeft)
			}
		})
	}
}

// TestAllocateIsOptimal checks the water-filling against the optimality
// conditions and against Antfarm's greedy hill-climbing on random swarms.
func TestAllocateIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		m := 2 + rng.IntN(30)
		in := make([]AllocInput, m)
		for i := range in {
			lo := rng.Float64() * 1e5
			hi := math.Inf(1)
			if rng.IntN(3) == 0 {
				hi = lo + rng.Float64()*3e5
			}
			in[i] = AllocInput{
				Curve:  Curve{C: 1 + rng.Float64()*100, A: 0.1 + 0.8*rng.Float64(), BetaBps: 1e3 + rng.Float64()*1e5},
				MinBps: lo, MaxBps: hi,
			}
		}
		extra := 1e5 + rng.Float64()*2e6
		out := make([]float64, m)
		left := Allocate(in, extra, out)
		used := 0.0
		for i := range in {
			if out[i] < in[i].MinBps-1e-6 || out[i] > in[i].MaxBps+1e-6 {
				t.Fatalf("trial %d: out[%d] = %g outside [%g, %g]", trial, i, out[i], in[i].MinBps, in[i].MaxBps)
			}
			used += out[i] - in[i].MinBps
		}
		if math.Abs(used+left-extra) > 1e-6*extra {
			t.Errorf("trial %d: used %g + leftover %g != extra %g", trial, used, left, extra)
		}
		// Equal marginal gain among swarms strictly inside their bounds;
		// swarms at their minimum have a lower gain, at their maximum a
		// higher one.
		level := math.NaN()
		for i := range in {
			if out[i] > in[i].MinBps+1 && out[i] < in[i].MaxBps-1 {
				g := in[i].Curve.MarginalGain(out[i])
				if math.IsNaN(level) {
					level = g
				} else if math.Abs(g-level) > 1e-6*level {
					t.Errorf("trial %d: interior marginal gains differ: %g vs %g", trial, g, level)
				}
			}
		}
		if !math.IsNaN(level) {
			for i := range in {
				g := in[i].Curve.MarginalGain(out[i])
				if out[i] <= in[i].MinBps+1 && g > level*(1+1e-6) {
					t.Errorf("trial %d: swarm %d at its minimum has gain %g above the level %g", trial, i, g, level)
				}
			}
		}
		// Greedy hill-climbing in small steps never beats the optimum.
		greedy := greedyAllocate(in, extra, extra/2000)
		if got, g := objective(in, out), objective(in, greedy); got < g*(1-1e-9) {
			t.Errorf("trial %d: water-filling objective %g < greedy %g", trial, got, g)
		}
	}
}

// greedyAllocate is Antfarm's hill-climbing: give delta to the swarm with
// the largest marginal gain, repeatedly.
func greedyAllocate(in []AllocInput, extra, delta float64) []float64 {
	out := make([]float64, len(in))
	for i := range in {
		out[i] = in[i].MinBps
	}
	for extra >= delta {
		best, bestGain := -1, 0.0
		for i := range in {
			if out[i]+delta > in[i].MaxBps {
				continue
			}
			if g := in[i].Curve.RateBps(out[i]+delta) - in[i].Curve.RateBps(out[i]); g > bestGain {
				best, bestGain = i, g
			}
		}
		if best < 0 {
			break
		}
		out[best] += delta
		extra -= delta
	}
	return out
}

func objective(in []AllocInput, b []float64) float64 {
	s := 0.0
	for i := range in {
		s += in[i].Curve.RateBps(b[i])
	}
	return s
}

// benchSwarms builds 10,000 swarms sharing 1,000,000 peers with Zipf sizes.
func benchSwarms(m, peers int) []AllocInput {
	rng := rand.New(rand.NewPCG(7, 7))
	z := rand.NewZipf(rng, 1.1, 1, uint64(peers))
	sizes := make([]int, m)
	total := 0
	for i := range sizes {
		sizes[i] = 1 + int(z.Uint64()%uint64(peers/m*20))
		total += sizes[i]
	}
	in := make([]AllocInput, m)
	for i := range in {
		l := sizes[i] * peers / total
		basic := 240_000.0
		lo := float64(l) * basic * rng.Float64() * 0.3
		in[i] = AllocInput{
			Curve:  Curve{C: 1 + rng.Float64()*50, A: 0.2 + 0.7*rng.Float64(), BetaBps: basic},
			MinBps: lo, MaxBps: lo + float64(l)*800_000*rng.Float64(),
		}
	}
	return in
}

// BenchmarkAllocate: the allocation for 10,000 swarms of 1,000,000 peers
// (goal <= 0.1 s per tick; Antfarm needed 6 s).
func BenchmarkAllocate(b *testing.B) {
	in := benchSwarms(10_000, 1_000_000)
	out := make([]float64, len(in))
	room := 0.0
	for _, s := range in {
		room += s.MaxBps - s.MinBps
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		Allocate(in, room/3, out)
	}
}

// TestAllocateExtremeCurves: curves whose gains underflow or overflow
// float64 must not hang or produce NaN.
func TestAllocateExtremeCurves(t *testing.T) {
	tests := []struct {
		name string
		in   []AllocInput
	}{
		{"tiny gain", []AllocInput{{Curve: Curve{C: 1e-300, A: 0.5, BetaBps: 1}, MinBps: 1e300, MaxBps: math.Inf(1)}}},
		{"huge gain", []AllocInput{{Curve: Curve{C: 1e300, A: 0.05, BetaBps: 1e-300}, MinBps: 0, MaxBps: math.Inf(1)}}},
		{"mixed", []AllocInput{
			{Curve: Curve{C: 1e-300, A: 0.9, BetaBps: 1}, MinBps: 1e200, MaxBps: math.Inf(1)},
			{Curve: Curve{C: 1e300, A: 0.02, BetaBps: 1e300}, MinBps: 0, MaxBps: 1e301},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]float64, len(tt.in))
			left := Allocate(tt.in, 1e9, out)
			if math.IsNaN(left) || left < 0 {
				t.Errorf("leftover = %g", left)
			}
			for i, b := range out {
				if math.IsNaN(b) || b < tt.in[i].MinBps {
					t.Errorf("out[%d] = %g, min %g", i, b, tt.in[i].MinBps)
				}
			}
		})
	}
}
