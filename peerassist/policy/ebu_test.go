package policy

import (
	"math"
	"testing"
	"time"
)

func TestEBU(t *testing.T) {
	tests := []struct {
		extra, capacity, want float64
	}{
		{50, 100, 0.5}, {0, 100, 0}, {100, 0, 0}, {100, -1, 0}, {math.NaN(), 100, 0},
		{10, math.Inf(1), 0}, {150, 100, 1.5},
	}
	for _, tt := range tests {
		if got := EBU(tt.extra, tt.capacity); got != tt.want {
			t.Errorf("EBU(%g, %g) = %g, want %g", tt.extra, tt.capacity, got, tt.want)
		}
	}
}

func TestStopCount(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		ebu, cap float64
		want     int
	}{
		{"paper example", 100, 0.5, 0.4, 20},
		{"at the cap", 100, 0.4, 0.4, 0},
		{"under the cap", 100, 0.3, 0.4, 0},
		{"ceil not round", 100, 0.41, 0.4, 3}, // 2.44 -> 3
		{"few sessions", 3, 1.0, 0.4, 2},      // 1.8 -> 2
		{"far over", 10, 100, 0.4, 10},        // 9.96 -> 10
		{"no sessions", 0, 0.9, 0.4, 0},
		{"NaN ebu", 10, math.NaN(), 0.4, 0},
		{"Inf ebu", 10, math.Inf(1), 0.4, 0},
		{"zero cap", 10, 0.5, 0, 0},
	}
	for _, tt := range tests {
		if got := StopCount(tt.n, tt.ebu, tt.cap); got != tt.want {
			t.Errorf("%s: StopCount(%d, %g, %g) = %d, want %d", tt.name, tt.n, tt.ebu, tt.cap, got, tt.want)
		}
	}
}

func TestSelectStops(t *testing.T) {
	cands := []StopCandidate{
		{Index: 0, ID: "a", RateBps: 100}, {Index: 1, ID: "b", RateBps: 900}, {Index: 2, ID: "c", RateBps: 500},
		{Index: 3, ID: "e", RateBps: 900}, {Index: 4, ID: "d", RateBps: 900},
	}
	got := SelectStops(cands, 3)
	want := []string{"b", "d", "e"} // the three at 900, by ID
	if len(got) != len(want) {
		t.Fatalf("SelectStops = %d candidates, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Errorf("SelectStops[%d] = %q, want %q", i, got[i].ID, want[i])
		}
	}
	if got := SelectStops(cands, -1); len(got) != 0 {
		t.Errorf("SelectStops(k=-1) = %d, want 0", len(got))
	}
	if got := SelectStops(cands, 99); len(got) != len(cands) {
		t.Errorf("SelectStops(k=99) = %d, want %d", len(got), len(cands))
	}
}

func TestPeakTracker(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var zero PeakTracker
	if _, ok := zero.Peak(t0); ok {
		t.Error("zero PeakTracker: Peak ok before any observation")
	}
	zero.Observe(t0, 5e6)
	if got, ok := zero.Peak(t0); !ok || got != 5e6 {
		t.Errorf("zero PeakTracker after one observation: Peak = %g, %v; want 5e6, true", got, ok)
	}

	p := PeakTracker{Window: 30 * time.Hour, Warmup: 2 * time.Hour}
	p.Observe(t0, 1e6)
	p.Observe(t0.Add(time.Hour), 8e6)
	if got, ok := p.Peak(t0.Add(time.Hour)); ok || got != 8e6 {
		t.Errorf("during warm-up: Peak = %g, %v; want 8e6, false", got, ok)
	}
	p.Observe(t0.Add(3*time.Hour), 2e6)
	if got, ok := p.Peak(t0.Add(3 * time.Hour)); !ok || got != 8e6 {
		t.Errorf("after warm-up: Peak = %g, %v; want 8e6, true", got, ok)
	}
	// Bad observations are ignored.
	p.Observe(t0.Add(3*time.Hour), math.NaN())
	p.Observe(t0.Add(3*time.Hour), math.Inf(1))
	p.Observe(t0.Add(3*time.Hour), -1)
	if got, _ := p.Peak(t0.Add(3 * time.Hour)); got != 8e6 {
		t.Errorf("after bad observations: Peak = %g, want 8e6", got)
	}
	// The 8e6 peak (hour 1) leaves a 30h window after about 30h.
	later := t0.Add(32 * time.Hour)
	p.Observe(later, 3e6)
	if got, ok := p.Peak(later); !ok || got != 3e6 {
		t.Errorf("after the window: Peak = %g, %v; want 3e6, true", got, ok)
	}
	// Time going backwards by more than the window does not erase newer data.
	p.Observe(t0.Add(-100*time.Hour), 99e6)
	if got, _ := p.Peak(later); got != 3e6 {
		t.Errorf("after an old observation: Peak = %g, want 3e6", got)
	}
	// Before the epoch works too.
	var old PeakTracker
	ts := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	old.Observe(ts, 7)
	if got, ok := old.Peak(ts); !ok || got != 7 {
		t.Errorf("pre-epoch: Peak = %g, %v; want 7, true", got, ok)
	}
}
