package policy

import (
	"math"
	"strings"
	"testing"
)

func TestUploadFractionFor(t *testing.T) {
	p := DefaultParams()
	p.SiteUploadFractions = map[string]float64{"video": 0.5, "docs": 0.1}
	p.ISPUploadFractions = map[uint32]float64{3215: 0.2, 7018: 0.9}
	tests := []struct {
		site string
		asn  uint32
		want float64
	}{
		{"", 0, 1.0 / 3},
		{"other", 1234, 1.0 / 3},
		{"video", 0, 0.5},
		{"", 7018, 0.9},
		{"video", 3215, 0.2},
		{"video", 7018, 0.5},
		{"docs", 7018, 0.1},
	}
	for _, tt := range tests {
		if got := p.UploadFractionFor(tt.site, tt.asn); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("UploadFractionFor(%q, %d) = %g, want %g", tt.site, tt.asn, got, tt.want)
		}
	}
}

func TestUploadBudgetBps(t *testing.T) {
	tests := []struct {
		name                  string
		fraction, declared, d float64
		off                   bool
		want                  float64
	}{
		{"declared", 1.0 / 3, 3e6, 1e6, false, 1e6},
		{"default", 0.5, 0, 1e6, false, 5e5},
		{"negative declared uses default", 0.5, -4, 1e6, false, 5e5},
		{"NaN declared uses default", 0.5, math.NaN(), 1e6, false, 5e5},
		{"upload off", 1, 3e6, 1e6, true, 0},
		{"fraction clamped", 3, 1e6, 1e6, false, 1e6},
		{"negative fraction", -1, 1e6, 1e6, false, 0},
		{"no capacity at all", 0.5, 0, 0, false, 0},
	}
	for _, tt := range tests {
		if got := UploadBudgetBps(tt.fraction, tt.declared, tt.d, tt.off); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("%s: UploadBudgetBps = %g, want %g", tt.name, got, tt.want)
		}
	}
}

func TestSlurpieProbability(t *testing.T) {
	tests := []struct {
		k    float64
		n    int
		want float64
	}{
		{3, 300, 0.01}, {3, 3, 1}, {3, 2, 1}, {3, 0, 1}, {3, -5, 1}, {1, 4, 0.25}, {0, 10, 1}, {math.NaN(), 10, 1},
	}
	for _, tt := range tests {
		if got := SlurpieProbability(tt.k, tt.n); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("SlurpieProbability(%g, %d) = %g, want %g", tt.k, tt.n, got, tt.want)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	good := DefaultParams()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultParams().Validate() = %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Params)
		want   string
	}{
		{"cap", func(p *Params) { p.EBUCap = 0 }, "policy.ebu_cap"},
		{"capacity", func(p *Params) { p.EdgeCapacityBps = -1 }, "policy.edge_capacity_bps"},
		{"fraction", func(p *Params) { p.UploadFraction = 2 }, "policy.upload_fraction"},
		{"isp fraction", func(p *Params) { p.ISPUploadFractions = map[uint32]float64{1: -1} }, "policy.isp_upload_fractions"},
		{"site fraction", func(p *Params) { p.SiteUploadFractions = map[string]float64{"v": 7} }, `site "v"`},
		{"basic", func(p *Params) { p.BasicRateBps = math.Inf(1) }, "policy.basic_rate_bps"},
		{"high", func(p *Params) { p.HighRateBps = 1 }, "policy.high_rate_bps"},
		{"slurpie", func(p *Params) { p.SlurpieK = 0 }, "policy.slurpie_k"},
		{"memory", func(p *Params) { p.CurveMemory = 0 }, "policy.curve_memory"},
	}
	for _, tt := range tests {
		p := DefaultParams()
		tt.modify(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error naming %q", tt.name, err, tt.want)
		}
		if _, err := NewEngine(p); err == nil {
			t.Errorf("%s: NewEngine accepted invalid params", tt.name)
		}
	}
}
