package policy

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/peerassist/edgebox/config"
)

// Params are the policy's parameters, with rates in bits/s. Build them with
// DefaultParams or ParamsFromConfig; config.Policy documents each one.
type Params struct {
	// EBUCap is the cap on EBU, in (0, 1].
	EBUCap float64
	// EdgeCapacityBps is the edge capacity; 0 uses the observed peak.
	EdgeCapacityBps float64
	// PeakWindow and PeakWarmup configure the observed peak.
	PeakWindow, PeakWarmup time.Duration
	// StopHold is how long a stop by the EBU cap lasts.
	StopHold time.Duration
	// BasicRateBps is d_basic; HighRateBps is d_high.
	BasicRateBps, HighRateBps float64
	// UploadFraction is the default share of upload capacity a peer gives.
	UploadFraction float64
	// ISPUploadFractions and SiteUploadFractions override it (see
	// Params.UploadFractionFor for how they combine).
	ISPUploadFractions  map[uint32]float64
	SiteUploadFractions map[string]float64
	// SiteBitrateBps is each site's stream bitrate, used as the basic rate
	// of its swarms when a swarm does not report its own.
	SiteBitrateBps map[string]float64
	// DefaultUploadBps is the capacity of a peer that declares none.
	DefaultUploadBps float64
	// SlurpieK is the Slurpie backoff's k.
	SlurpieK float64
	// Exploration is the relative step around each swarm's operating point.
	Exploration float64
	// CurveMemory is the response curves' memory in ticks.
	CurveMemory float64
}

// DefaultParams returns the defaults of config.DefaultPolicy.
func DefaultParams() Params {
	p, err := ParamsFromConfig(config.DefaultPolicy(), nil)
	if err != nil {
		panic("policy: default config is invalid: " + err.Error()) // a programming error, caught by tests
	}
	return p
}

// ParamsFromConfig validates the policy section and converts it, with the
// sites' upload fractions and bitrates, to Params.
func ParamsFromConfig(c config.Policy, sites []config.Site) (Params, error) {
	if err := c.Validate(); err != nil {
		return Params{}, err
	}
	p := Params{
		EBUCap:              c.EBUCap,
		EdgeCapacityBps:     float64(c.EdgeCapacityBps),
		PeakWindow:          c.PeakWindow.D(),
		PeakWarmup:          c.PeakWarmup.D(),
		StopHold:            c.StopHold.D(),
		BasicRateBps:        float64(c.BasicRateBps),
		HighRateBps:         float64(c.HighRateBps),
		UploadFraction:      c.UploadFraction,
		ISPUploadFractions:  map[uint32]float64{},
		SiteUploadFractions: map[string]float64{},
		SiteBitrateBps:      map[string]float64{},
		DefaultUploadBps:    float64(c.DefaultUploadBps),
		SlurpieK:            c.SlurpieK,
		Exploration:         c.Exploration,
		CurveMemory:         c.CurveMemory,
	}
	for _, f := range c.ISPUploadFractions {
		p.ISPUploadFractions[f.ASN] = f.Fraction
	}
	for i, s := range sites {
		if f := s.PeerAssist.UploadFraction; f != 0 {
			if !(f >= 0 && f <= 1) {
				return Params{}, fmt.Errorf("sites[%d].peer_assist.upload_fraction: must be in [0, 1] (got %g)", i, f)
			}
			p.SiteUploadFractions[s.Name] = f
		}
		if b := s.PeerAssist.BitrateBps; b > 0 {
			p.SiteBitrateBps[s.Name] = float64(b)
		}
	}
	return p, nil
}

// Validate reports every parameter out of range, naming the config field
// it comes from.
func (p *Params) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy.%s: "+format, append([]any{field}, args...)...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !(p.EBUCap > 0 && p.EBUCap <= 1) {
		bad("ebu_cap", "must be in (0, 1] (got %g)", p.EBUCap)
	}
	if !(p.EdgeCapacityBps >= 0) || !finite(p.EdgeCapacityBps) {
		bad("edge_capacity_bps", "must be a finite number >= 0 (got %g)", p.EdgeCapacityBps)
	}
	if p.EdgeCapacityBps == 0 && p.PeakWindow < time.Hour {
		bad("peak_window", "must be at least 1h (got %s)", p.PeakWindow)
	}
	if p.PeakWarmup < 0 {
		bad("peak_warmup", "must not be negative (got %s)", p.PeakWarmup)
	}
	if p.StopHold < 0 {
		bad("stop_hold", "must not be negative (got %s)", p.StopHold)
	}
	if !(p.BasicRateBps > 0) || !finite(p.BasicRateBps) {
		bad("basic_rate_bps", "must be a finite number > 0 (got %g)", p.BasicRateBps)
	}
	if !(p.HighRateBps >= p.BasicRateBps) || !finite(p.HighRateBps) {
		bad("high_rate_bps", "must be at least basic_rate_bps (%g) (got %g)", p.BasicRateBps, p.HighRateBps)
	}
	if !(p.UploadFraction >= 0 && p.UploadFraction <= 1) {
		bad("upload_fraction", "must be in [0, 1] (got %g)", p.UploadFraction)
	}
	for asn, f := range p.ISPUploadFractions {
		if !(f >= 0 && f <= 1) {
			bad("isp_upload_fractions", "asn %d: fraction must be in [0, 1] (got %g)", asn, f)
		}
	}
	for site, f := range p.SiteUploadFractions {
		if !(f >= 0 && f <= 1) {
			errs = append(errs, fmt.Errorf("site %q: peer_assist.upload_fraction must be in [0, 1] (got %g)", site, f))
		}
	}
	for site, b := range p.SiteBitrateBps {
		if !(b >= 0) || !finite(b) {
			errs = append(errs, fmt.Errorf("site %q: peer_assist.bitrate_bps must be a finite number >= 0 (got %g)", site, b))
		}
	}
	if !(p.DefaultUploadBps > 0) || !finite(p.DefaultUploadBps) {
		bad("default_upload_bps", "must be a finite number > 0 (got %g)", p.DefaultUploadBps)
	}
	if !(p.SlurpieK >= 1) || !finite(p.SlurpieK) {
		bad("slurpie_k", "must be a finite number of at least 1 (got %g)", p.SlurpieK)
	}
	if !(p.Exploration >= 0 && p.Exploration <= 0.5) {
		bad("exploration", "must be in [0, 0.5] (got %g)", p.Exploration)
	}
	if !(p.CurveMemory >= 1 && p.CurveMemory <= 10000) {
		bad("curve_memory", "must be in [1, 10000] ticks (got %g)", p.CurveMemory)
	}
	return errors.Join(errs...)
}
