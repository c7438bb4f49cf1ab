package policy

import "math"

// UploadFractionFor returns the share of its upload capacity a peer of site
// and ISP asn gives. A site's and an ISP's fractions each bound it: when
// both are configured the smaller wins, when one is it replaces the
// default, when none is the default applies. The result is clamped to
// [0, 1].
func (p *Params) UploadFractionFor(site string, asn uint32) float64 {
	f, set := 0.0, false
	if v, ok := p.SiteUploadFractions[site]; ok && site != "" {
		f, set = v, true
	}
	if v, ok := p.ISPUploadFractions[asn]; ok && asn != 0 {
		if !set || v < f {
			f = v
		}
		set = true
	}
	if !set {
		f = p.UploadFraction
	}
	return clamp01(f)
}

// UploadBudgetBps returns a peer's upload budget in bits/s: fraction times
// its declared upload capacity, or times defaultBps when it declared none
// (0, negative or not a number). A peer whose upload is off gets 0.
func UploadBudgetBps(fraction, declaredBps, defaultBps float64, uploadOff bool) float64 {
	if uploadOff {
		return 0
	}
	c := declaredBps
	if !(c > 0) || math.IsInf(c, 0) {
		c = defaultBps
	}
	if !(c > 0) || math.IsInf(c, 0) {
		return 0
	}
	return clamp01(fraction) * c
}

// SlurpieProbability returns the probability with which a peer of a swarm
// of n peers fetches a chunk nobody in the swarm holds from the edge:
// k/n, so that about k peers fetch it instead of all n (Slurpie found k = 3
// better than 1). It is 1 for swarms of at most k peers and for n <= 0.
func SlurpieProbability(k float64, n int) float64 {
	if n <= 0 || !(k > 0) || k >= float64(n) {
		return 1
	}
	return k / float64(n)
}

func clamp01(f float64) float64 {
	switch {
	case f > 1:
		return 1
	case f >= 0:
		return f
	default: // negative or NaN
		return 0
	}
}
