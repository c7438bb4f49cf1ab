package policy

import (
	"math"
	"testing"
)

func TestATDTables(t *testing.T) {
	tests := []struct {
		leechers      int
		atd30, atd100 int
	}{
		{0, 6, 26}, {1, 6, 26}, {2, 2, 19}, {5, 2, 19}, {6, 2, 11}, {10, 2, 11},
		{11, 1, 5}, {15, 1, 5}, {16, 1, 4}, {20, 1, 4}, {21, 1, 4}, {30, 1, 4},
		{31, 1, 2}, {100000, 1, 2},
	}
	for _, tt := range tests {
		if got := ATD30(tt.leechers); got != tt.atd30 {
			t.Errorf("ATD30(%d) = %d, want %d", tt.leechers, got, tt.atd30)
		}
		if got := ATD100(tt.leechers); got != tt.atd100 {
			t.Errorf("ATD100(%d) = %d, want %d", tt.leechers, got, tt.atd100)
		}
	}
}

func TestClassify(t *testing.T) {
	const basic = 240_000
	tests := []struct {
		name      string
		in        SwarmStats
		wantClass Class
		wantLinks int
	}{
		{"lone slow leecher", SwarmStats{Leechers: 1, AvgRateBps: 100_000, BasicRateBps: basic}, Hungry, 6},
		{"hungry with seeds", SwarmStats{Leechers: 10, Seeds: 3, AvgRateBps: 0, BasicRateBps: basic}, Hungry, 17},
		{"hungry but seeded enough", SwarmStats{Leechers: 40, Seeds: 50, AvgRateBps: 1, BasicRateBps: basic}, Hungry, 0},
		{"high-demand video", SwarmStats{Leechers: 20, AvgRateBps: 500_000, BasicRateBps: basic, Video: true}, HighDemand, 80},
		{"high-demand counts seeds", SwarmStats{Leechers: 8, Seeds: 3, AvgRateBps: 500_000, BasicRateBps: basic, Video: true}, HighDemand, 85},
		{"ten video peers are not high-demand", SwarmStats{Leechers: 10, AvgRateBps: 500_000, BasicRateBps: basic, Video: true}, PotentiallyHungry, 20},
		{"potentially hungry", SwarmStats{Leechers: 5, Seeds: 2, AvgRateBps: 300_000, BasicRateBps: basic}, PotentiallyHungry, 8},
		{"normal", SwarmStats{Leechers: 5, Seeds: 10, AvgRateBps: 300_000, BasicRateBps: basic}, Normal, 0},
		{"rate exactly basic is not hungry", SwarmStats{Leechers: 40, Seeds: 40, AvgRateBps: basic, BasicRateBps: basic}, Normal, 0},
		{"no leechers", SwarmStats{Seeds: 4, AvgRateBps: 0, BasicRateBps: basic}, Normal, 0},
		{"NaN rate is hungry", SwarmStats{Leechers: 3, AvgRateBps: math.NaN(), BasicRateBps: basic}, Hungry, 6},
		{"negative seeds count as none", SwarmStats{Leechers: 3, Seeds: -5, AvgRateBps: 0, BasicRateBps: basic}, Hungry, 6},
		{"video bitrate as basic", SwarmStats{Leechers: 3, AvgRateBps: 1_000_000, BasicRateBps: 2_000_000, Video: true}, Hungry, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.in)
			if got.Class != tt.wantClass || got.Links != tt.wantLinks {
				t.Errorf("Classify(%+v) = %v with %d links, want %v with %d", tt.in, got.Class, got.Links, tt.wantClass, tt.wantLinks)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{Normal: "normal", Hungry: "hungry", PotentiallyHungry: "potentially_hungry", HighDemand: "high_demand", Class(9): "class(9)"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
}
