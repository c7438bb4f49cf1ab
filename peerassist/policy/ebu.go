package policy

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// EBU returns the extra bandwidth utilization: the non-urgent edge egress
// drawn by peer-assisted sessions over the edge capacity. It returns 0 when
// the capacity is not positive or either input is not a number.
func EBU(extraEgressBps, capacityBps float64) float64 {
	if !(capacityBps > 0) || !(extraEgressBps > 0) || math.IsInf(capacityBps, 0) {
		return 0
	}
	return extraEgressBps / capacityBps
}

// StopCount returns CloudTracker's k: how many of the n sessions the edge
// serves must stop non-urgent edge fetches to bring ebu back to the cap,
// k = ceil(n(ebu-cap)/ebu), or 0 when ebu is not over the cap.
//
// Ceil, not round: if the n sessions drew equally, stopping k of them
// brings EBU to at most the cap, where rounding down could leave it over.
// The paper's example (EBU 50%, cap 40%, 100 users) gives exactly 20. A
// tolerance of 1e-9 keeps 20.000000000004 from becoming 21.
func StopCount(n int, ebu, capFraction float64) int {
	if n <= 0 || !(ebu > capFraction) || !(capFraction > 0) || math.IsInf(ebu, 0) {
		return 0
	}
	k := math.Ceil(float64(n)*(ebu-capFraction)/ebu - 1e-9)
	return min(n, max(0, int(k)))
}

// StopCandidate is a session the edge serves non-urgent bytes to.
type StopCandidate struct {
	// Index identifies the session to the caller.
	Index int
	// ID breaks ties between equal rates, so the choice is deterministic.
	ID string
	// RateBps is the session's total download rate (edge and peers).
	RateBps float64
}

// SelectStops reorders cands so that the k with the highest download rates
// (ties broken by ID) come first, and returns them. k is clamped to
// [0, len(cands)].
func SelectStops(cands []StopCandidate, k int) []StopCandidate {
	k = min(max(k, 0), len(cands))
	if k == 0 {
		return cands[:0]
	}
	slices.SortFunc(cands, func(a, b StopCandidate) int {
		if c := cmp.Compare(b.RateBps, a.RateBps); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return cands[:k]
}

// peakBuckets is how many buckets a PeakTracker's window is split into.
const peakBuckets = 30

// Default PeakTracker window: CloudTracker re-measures B_max monthly.
const defaultPeakWindow = 30 * 24 * time.Hour

// PeakTracker remembers the peak of an egress rate over a sliding window
// (CloudTracker's B_max, used as the edge capacity when none is
// configured). The window is split into 30 buckets, each keeping its
// maximum, so memory is constant and an old peak leaves the window one
// bucket at a time.
//
// Set Window and Warmup before the first Observe (or change the window
// with SetWindow, Warmup at any time). The zero value is usable: a 30-day
// window and no warm-up. A PeakTracker is a value with no pointers;
// it is not safe for concurrent use.
type PeakTracker struct {
	// Window is how long a peak is remembered (default 30 days).
	Window time.Duration
	// Warmup is how long after the first observation Peak reports ok=false
	// (CloudTracker measures B_max on an unlimited day). Default 0.
	Warmup time.Duration

	first   time.Time
	started bool
	// lastNano is the latest observation's time (Unix nanoseconds).
	lastNano int64
	buckets  [peakBuckets]peakBucket
}

// peakBucket is the maximum rate seen in one bucket of a PeakTracker.
type peakBucket struct {
	idx    int64 // bucket number since the Unix epoch; 0 with max 0 is empty
	maxBps float64
}

func (p *PeakTracker) bucketLen() int64 {
	w := p.Window
	if w <= 0 {
		w = defaultPeakWindow
	}
	return max(int64(w)/peakBuckets, 1)
}

func (p *PeakTracker) bucketOf(t time.Time) int64 {
	n := t.UnixNano()
	l := p.bucketLen()
	if n < 0 {
		return (n - l + 1) / l // floor division
	}
	return n / l
}

// Observe records an egress rate seen at time t. Rates that are negative,
// NaN or infinite are ignored.
func (p *PeakTracker) Observe(t time.Time, bps float64) {
	if !(bps >= 0) || math.IsInf(bps, 0) {
		return
	}
	if !p.started {
		p.first, p.started, p.lastNano = t, true, t.UnixNano()
	}
	p.lastNano = max(p.lastNano, t.UnixNano())
	bi := p.bucketOf(t)
	slot := &p.buckets[((bi%peakBuckets)+peakBuckets)%peakBuckets]
	switch {
	case slot.idx == bi:
		slot.maxBps = max(slot.maxBps, bps)
	case slot.idx < bi || slot.maxBps == 0:
		slot.idx, slot.maxBps = bi, bps
	default:
		// An observation older than the slot's current bucket: time went
		// backwards by more than the window. Keep the newer data.
	}
}

// SetWindow changes the window, keeping what was observed: each bucket's
// maximum is observed again, at the end of its old bucket (or at the
// latest observation, if sooner), into buckets of the new length. So a
// peak stays until it is older than the new window (give or take one old
// bucket), a longer window keeps every peak the old one held, and the
// warm-up still counts from the first observation.
func (p *PeakTracker) SetWindow(window time.Duration) {
	if window == p.Window {
		return
	}
	old := p.buckets
	oldLen := p.bucketLen()
	p.Window = window
	p.buckets = [peakBuckets]peakBucket{}
	// Oldest first: Observe keeps the newer bucket of a slot.
	slices.SortFunc(old[:], func(a, b peakBucket) int { return cmp.Compare(a.idx, b.idx) })
	for _, b := range old {
		if b.maxBps == 0 {
			continue // empty (or only zero rates: nothing to keep)
		}
		p.Observe(time.Unix(0, min((b.idx+1)*oldLen-1, p.lastNano)), b.maxBps)
	}
}

// Peak returns the peak over the window ending at t, and whether it can be
// trusted: false before any observation, during the warm-up, or when the
// peak is 0.
func (p *PeakTracker) Peak(t time.Time) (bps float64, ok bool) {
	if !p.started {
		return 0, false
	}
	bi := p.bucketOf(t)
	for _, b := range p.buckets {
		if b.idx > bi-peakBuckets && b.idx <= bi {
			bps = max(bps, b.maxBps)
		}
	}
	warm := t.Sub(p.first) >= p.Warmup
	return bps, warm && bps > 0
}
