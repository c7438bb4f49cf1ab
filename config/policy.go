package config

import (
	"fmt"
	"strconv"
)

// Policy holds the parameters of peerassist/policy: how much each peer
// uploads, how much extra egress peer-assisted sessions may draw from the
// edge (the EBU cap), swarm classes and the Slurpie backoff.
type Policy struct {
	// Tick is the period of the policy loop. Default 5s.
	Tick Duration `yaml:"tick"`
	// UploadFraction is the share of its upload capacity a peer gives
	// (the hybrid CDN-P2P paper's "limited assistance"). Default 1/3.
	UploadFraction float64 `yaml:"upload_fraction"`
	// ISPUploadFractions override UploadFraction per ISP (by ASN).
	ISPUploadFractions []ISPFraction `yaml:"isp_upload_fractions"`
	// EBUCap is the cap on edge bandwidth utilization by peer-assisted
	// sessions (CloudTracker). Default 0.40; in (0, 1].
	EBUCap float64 `yaml:"ebu_cap"`
	// EdgeCapacityBps is the edge's egress capacity in bits/s; 0 uses the
	// observed peak, as CloudTracker's B_max does. Default 0.
	EdgeCapacityBps int64 `yaml:"edge_capacity_bps"`
	// BasicRateBps is d_basic, the rate under which a swarm is hungry and
	// the floor each viewer keeps, in bits/s. Default 240000 (30 KBps).
	BasicRateBps int64 `yaml:"basic_rate_bps"`
	// HighRateBps is d_high, the rate of high-demand swarms, in bits/s.
	// Default 800000 (100 KBps).
	HighRateBps int64 `yaml:"high_rate_bps"`
	// SlurpieK is the expected number of peers of a swarm that fetch a chunk
	// nobody holds from the edge (probability k/n). Default 3.
	SlurpieK float64 `yaml:"slurpie_k"`
	// DefaultUploadBps is the upload capacity assumed for a peer that
	// declares none, in bits/s. Default 1000000.
	DefaultUploadBps int64 `yaml:"default_upload_bps"`
	// Exploration is the relative step explored around each swarm's
	// operating point when estimating response curves. Default 0.05.
	Exploration float64 `yaml:"exploration"`
}

// ISPFraction is an upload fraction for the peers of one ISP.
type ISPFraction struct {
	ASN      uint32  `yaml:"asn"`
	Fraction float64 `yaml:"fraction"`
}

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{
		Tick:             Duration(5e9),
		UploadFraction:   1.0 / 3,
		EBUCap:           0.40,
		BasicRateBps:     240_000,
		HighRateBps:      800_000,
		SlurpieK:         3,
		DefaultUploadBps: 1_000_000,
		Exploration:      0.05,
	}
}

func (c *Policy) validate(p *Problems) {
	p.CheckPositive("tick", int64(c.Tick))
	p.CheckFraction("upload_fraction", c.UploadFraction, true)
	for i, f := range c.ISPUploadFractions {
		fp := p.Sub(fmt.Sprintf("isp_upload_fractions[%d]", i))
		if f.ASN == 0 {
			fp.Add("asn", "required")
		}
		fp.CheckFraction("fraction", f.Fraction, true)
	}
	p.CheckFraction("ebu_cap", c.EBUCap, false)
	if c.EdgeCapacityBps < 0 {
		p.Add("edge_capacity_bps", "must not be negative")
	}
	p.CheckPositive("basic_rate_bps", c.BasicRateBps)
	if c.HighRateBps < c.BasicRateBps {
		p.Addf("high_rate_bps", "must be at least basic_rate_bps (%d)", c.BasicRateBps)
	}
	if !(c.SlurpieK >= 1) {
		p.Addf("slurpie_k", "must be at least 1 (got %g)", c.SlurpieK)
	}
	p.CheckPositive("default_upload_bps", c.DefaultUploadBps)
	if !(c.Exploration >= 0 && c.Exploration <= 0.5) {
		p.Addf("exploration", "must be in [0, 0.5] (got %g)", c.Exploration)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
