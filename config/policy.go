package config

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Policy holds the parameters of peerassist/policy: how much each peer
// uploads, how much extra egress peer-assisted sessions may draw from the
// edge (the EBU cap), swarm classes, the allocation of the edge's headroom
// across swarms and the Slurpie backoff. All rates are in bits per second.
// Every setting changes on reload (SIGHUP), from the next tick on: the
// observed peak, the swarms' response curves and the stops held are kept.
type Policy struct {
	// Tick is the period of the policy loop: each tick turns the last
	// period's observations into decisions. Default 5s. A reload (SIGHUP)
	// applies every policy setting from the next tick; a new tick period
	// runs from the reload.
	Tick Duration `yaml:"tick"`
	// UploadFraction is the share of its upload capacity a peer gives
	// (the hybrid CDN-P2P paper's "limited assistance"). Default 1/3; in
	// [0, 1]. A site's peer_assist.upload_fraction and
	// isp_upload_fractions override it; when both apply the smaller wins.
	UploadFraction float64 `yaml:"upload_fraction"`
	// ISPUploadFractions override UploadFraction for the peers of an ISP
	// (by ASN). Default none.
	ISPUploadFractions []ISPFraction `yaml:"isp_upload_fractions"`
	// EBUCap caps the edge bandwidth utilization by peer-assisted sessions
	// (CloudTracker): non-urgent edge egress to peer-assisted sessions
	// divided by the edge capacity. Default 0.40; in (0, 1].
	EBUCap float64 `yaml:"ebu_cap"`
	// EdgeCapacityBps is the edge's egress capacity in bits/s. 0 uses the
	// observed peak egress (CloudTracker's B_max), which is measured during
	// PeakWarmup before the cap is enforced. Default 0.
	EdgeCapacityBps int64 `yaml:"edge_capacity_bps"`
	// PeakWindow is how long an observed peak is remembered when
	// EdgeCapacityBps is 0 (CloudTracker re-measures B_max monthly).
	// Default 720h (30 days); at least 1h.
	PeakWindow Duration `yaml:"peak_window"`
	// PeakWarmup is how long the edge observes its egress, without
	// enforcing the cap, before an observed peak is trusted (CloudTracker's
	// "unlimited day"). Only used when EdgeCapacityBps is 0. Default 24h;
	// at most peak_window.
	PeakWarmup Duration `yaml:"peak_warmup"`
	// StopHold is how long a session stopped from non-urgent edge fetches
	// by the EBU cap stays stopped before the allocation may give it edge
	// bandwidth again; it keeps the cap from oscillating. Default 60s; at
	// least one tick.
	StopHold Duration `yaml:"stop_hold"`
	// BasicRateBps is d_basic, the rate under which a swarm is hungry and
	// the floor each viewer keeps, in bits/s; a site's bitrate_bps replaces
	// it for that site's streams, and where the site sets none, the
	// bitrate a viewer declares (see max_declared_bitrate_bps). Default
	// 240000 (30 KBps).
	BasicRateBps int64 `yaml:"basic_rate_bps"`
	// MaxDeclaredBitrateBps bounds the stream bitrate a client may declare
	// (x_caps.bitrate_bps, the rendition it plays) in bits/s. Where its
	// site sets no peer_assist.bitrate_bps, a viewer's floor is the
	// bitrate it declares, at least basic_rate_bps and at most this; a
	// client that declares none gets basic_rate_bps. 0 ignores declared
	// bitrates. Default 20000000 (a 4K stream).
	MaxDeclaredBitrateBps int64 `yaml:"max_declared_bitrate_bps"`
	// HighRateBps is d_high, the rate of high-demand swarms and the demand
	// assumed for a session that reports none, in bits/s. Default 800000
	// (100 KBps); at least basic_rate_bps.
	HighRateBps int64 `yaml:"high_rate_bps"`
	// SlurpieK is the expected number of peers of a swarm that fetch a chunk
	// nobody holds from the edge (probability k/n). Default 3; at least 1.
	SlurpieK float64 `yaml:"slurpie_k"`
	// DefaultUploadBps is the upload capacity assumed for a peer that
	// declares none, in bits/s. Default 10000000 (10 Mbit/s): what the
	// browser client and the Go peer assume when they cannot measure or
	// are not told, and a modest upstream for today's fibre, cable and
	// VDSL2 access (plans commonly give 10-50 Mbit/s up, fibre more). At
	// the default upload_fraction a peer then gives about 3.3 Mbit/s,
	// several viewers' worth of a standard-definition stream; 1 Mbit/s
	// (333 kbit/s at 1/3) could not carry even the demo's 440 kbit/s
	// stream to one neighbor in time. Lower it where the access network
	// is slower (ADSL, mobile); isp_upload_fractions lowers the share per
	// ISP. Peers that declare their capacity (x_caps) are taken at their
	// word.
	DefaultUploadBps int64 `yaml:"default_upload_bps"`
	// Exploration is the relative step explored around each swarm's
	// operating point so that its response curve stays learnable.
	// Default 0.05; in [0, 0.5].
	Exploration float64 `yaml:"exploration"`
	// CurveMemory is the number of ticks a response-curve sample keeps
	// about 1/e of its weight (exponential forgetting). Default 12 (one
	// minute at the default tick); in [1, 10000].
	CurveMemory float64 `yaml:"curve_memory"`
}

// ISPFraction is an upload fraction for the peers of one ISP.
type ISPFraction struct {
	// ASN is the ISP's autonomous system number. Required.
	ASN uint32 `yaml:"asn"`
	// Fraction is the share of upload capacity; in [0, 1].
	Fraction float64 `yaml:"fraction"`
}

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{
		Tick:                  Duration(5 * time.Second),
		UploadFraction:        1.0 / 3,
		EBUCap:                0.40,
		PeakWindow:            Duration(30 * 24 * time.Hour),
		PeakWarmup:            Duration(24 * time.Hour),
		StopHold:              Duration(60 * time.Second),
		BasicRateBps:          240_000,
		MaxDeclaredBitrateBps: 20_000_000,
		HighRateBps:           800_000,
		SlurpieK:              3,
		DefaultUploadBps:      10_000_000,
		Exploration:           0.05,
		CurveMemory:           12,
	}
}

// Validate checks the policy section alone and returns every problem with
// its path below "policy" (for programs, such as the simulator, that build
// a Policy without a whole Config).
func (c *Policy) Validate() error {
	var p Problems
	c.validate(p.Sub("policy"))
	return p.Err("", nil)
}

func (c *Policy) validate(p *Problems) {
	p.CheckPositiveDuration("tick", c.Tick)
	p.CheckFraction("upload_fraction", c.UploadFraction, true)
	seen := map[uint32]int{}
	for i, f := range c.ISPUploadFractions {
		fp := p.Sub(fmt.Sprintf("isp_upload_fractions[%d]", i))
		if f.ASN == 0 {
			fp.Add("asn", "required")
		} else if j, dup := seen[f.ASN]; dup {
			fp.Addf("asn", "duplicate asn %d (also isp_upload_fractions[%d])", f.ASN, j)
		} else {
			seen[f.ASN] = i
		}
		fp.CheckFraction("fraction", f.Fraction, true)
	}
	p.CheckFraction("ebu_cap", c.EBUCap, false)
	if c.EdgeCapacityBps < 0 {
		p.Addf("edge_capacity_bps", "must not be negative (got %d)", c.EdgeCapacityBps)
	}
	if c.PeakWindow < Duration(time.Hour) {
		p.Addf("peak_window", "must be at least 1h (got %s)", c.PeakWindow)
	}
	if c.PeakWarmup < 0 {
		p.Addf("peak_warmup", "must not be negative (got %s)", c.PeakWarmup)
	} else if c.PeakWarmup > c.PeakWindow {
		p.Addf("peak_warmup", "must not exceed peak_window (%s) (got %s)", c.PeakWindow, c.PeakWarmup)
	}
	if c.StopHold < c.Tick {
		p.Addf("stop_hold", "must be at least one tick (%s) (got %s)", c.Tick, c.StopHold)
	}
	p.CheckPositive("basic_rate_bps", c.BasicRateBps)
	if c.MaxDeclaredBitrateBps < 0 {
		p.Addf("max_declared_bitrate_bps", "must not be negative (got %d)", c.MaxDeclaredBitrateBps)
	}
	if c.HighRateBps < c.BasicRateBps {
		p.Addf("high_rate_bps", "must be at least basic_rate_bps (%d) (got %d)", c.BasicRateBps, c.HighRateBps)
	}
	if !(c.SlurpieK >= 1) || math.IsInf(c.SlurpieK, 0) {
		p.Addf("slurpie_k", "must be a finite number of at least 1 (got %g)", c.SlurpieK)
	}
	p.CheckPositive("default_upload_bps", c.DefaultUploadBps)
	if !(c.Exploration >= 0 && c.Exploration <= 0.5) {
		p.Addf("exploration", "must be in [0, 0.5] (got %g)", c.Exploration)
	}
	if !(c.CurveMemory >= 1 && c.CurveMemory <= 10000) {
		p.Addf("curve_memory", "must be in [1, 10000] ticks (got %g)", c.CurveMemory)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
