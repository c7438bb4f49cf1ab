package config

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicyIsValid(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v, want nil", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Policy)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(*Policy) {}, ""},
		{"cap 1 is allowed", func(p *Policy) { p.EBUCap = 1 }, ""},
		{"cap 0", func(p *Policy) { p.EBUCap = 0 }, "policy.ebu_cap: must be in (0, 1]"},
		{"cap above 1", func(p *Policy) { p.EBUCap = 1.2 }, "policy.ebu_cap: must be in (0, 1]"},
		{"cap NaN", func(p *Policy) { p.EBUCap = math.NaN() }, "policy.ebu_cap: must be a number"},
		{"fraction 0 turns upload off", func(p *Policy) { p.UploadFraction = 0 }, ""},
		{"fraction negative", func(p *Policy) { p.UploadFraction = -0.1 }, "policy.upload_fraction: must be in [0, 1]"},
		{"fraction above 1", func(p *Policy) { p.UploadFraction = 1.5 }, "policy.upload_fraction"},
		{"isp fraction", func(p *Policy) {
			p.ISPUploadFractions = []ISPFraction{{ASN: 3215, Fraction: 0.5}, {ASN: 7018, Fraction: 2}}
		}, "policy.isp_upload_fractions[1].fraction: must be in [0, 1]"},
		{"isp without asn", func(p *Policy) { p.ISPUploadFractions = []ISPFraction{{Fraction: 0.5}} }, "policy.isp_upload_fractions[0].asn: required"},
		{"isp duplicate", func(p *Policy) {
			p.ISPUploadFractions = []ISPFraction{{ASN: 1, Fraction: 0.5}, {ASN: 1, Fraction: 0.2}}
		}, "policy.isp_upload_fractions[1].asn: duplicate asn 1"},
		{"negative capacity", func(p *Policy) { p.EdgeCapacityBps = -1 }, "policy.edge_capacity_bps: must not be negative"},
		{"negative basic", func(p *Policy) { p.BasicRateBps = -5 }, "policy.basic_rate_bps: must be greater than 0"},
		{"high below basic", func(p *Policy) { p.HighRateBps = 1000 }, "policy.high_rate_bps: must be at least basic_rate_bps"},
		{"negative default upload", func(p *Policy) { p.DefaultUploadBps = -1 }, "policy.default_upload_bps"},
		{"negative declared bitrate bound", func(p *Policy) { p.MaxDeclaredBitrateBps = -1 }, "policy.max_declared_bitrate_bps"},
		{"slurpie below 1", func(p *Policy) { p.SlurpieK = 0.5 }, "policy.slurpie_k"},
		{"slurpie inf", func(p *Policy) { p.SlurpieK = math.Inf(1) }, "policy.slurpie_k"},
		{"exploration", func(p *Policy) { p.Exploration = 0.9 }, "policy.exploration"},
		{"tick", func(p *Policy) { p.Tick = 0 }, "policy.tick"},
		{"negative tick as a duration", func(p *Policy) { p.Tick = Duration(-1500 * time.Millisecond) }, "policy.tick: must be greater than 0 (got -1.5s)"},
		{"stop hold below tick", func(p *Policy) { p.StopHold = Duration(time.Second) }, "policy.stop_hold"},
		{"short peak window", func(p *Policy) { p.PeakWindow = Duration(time.Minute) }, "policy.peak_window"},
		{"warmup over window", func(p *Policy) { p.PeakWarmup = Duration(31 * 24 * time.Hour) }, "policy.peak_warmup"},
		{"curve memory", func(p *Policy) { p.CurveMemory = 0 }, "policy.curve_memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			tt.modify(&p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPolicyYAMLErrorsNameLines(t *testing.T) {
	yaml := "sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\npolicy:\n  edge_capacity_bps: -10\n  isp_upload_fractions:\n    - asn: 3215\n      fraction: 1.5\n"
	_, err := Parse("cfg.yaml", []byte(yaml))
	if err == nil {
		t.Fatal("Parse succeeded, want error")
	}
	for _, want := range []string{"cfg.yaml:5: policy.edge_capacity_bps", "cfg.yaml:8: policy.isp_upload_fractions[0].fraction"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
