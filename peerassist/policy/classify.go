package policy

import (
	"fmt"
	"math"
)

// Class is a swarm's CloudTracker class.
type Class uint8

const (
	// Normal swarms supply themselves: their average rate is at least the
	// basic rate and they have seeds enough for their leechers.
	Normal Class = iota
	// Hungry swarms' average download rate is below the basic rate: they
	// get edge help first (n = ATD30(L)*L - S links).
	Hungry
	// PotentiallyHungry swarms are above the basic rate but have fewer
	// seeds than ATD30(L) per leecher; n links are held as contingency.
	PotentiallyHungry
	// HighDemand swarms are video swarms of more than 10 peers; they are
	// accelerated towards the high rate (n = ATD100(L)*L - S links).
	HighDemand
	numClasses
)

// NumClasses is the number of classes, for arrays indexed by Class.
const NumClasses = int(numClasses)

func (c Class) String() string {
	switch c {
	case Normal:
		return "normal"
	case Hungry:
		return "hungry"
	case PotentiallyHungry:
		return "potentially_hungry"
	case HighDemand:
		return "high_demand"
	default:
		return fmt.Sprintf("class(%d)", uint8(c))
	}
}

// highDemandPeers is CloudTracker's size threshold: a video swarm of more
// than this many peers is high-demand.
const highDemandPeers = 10

// ATD tables of CloudTracker, by number of leechers L in the bands
// <2, 2-5, 6-10, 11-15, 16-20, 21-30, >30: the available-to-demand ratio
// (S+n)/L a swarm needs for an average rate of 30 KBps (ATD30) and 100 KBps
// (ATD100).
var (
	atd30  = [7]int{6, 2, 2, 1, 1, 1, 1}
	atd100 = [7]int{26, 19, 11, 5, 4, 4, 2}
)

func atdBand(leechers int) int {
	switch {
	case leechers < 2:
		return 0
	case leechers <= 5:
		return 1
	case leechers <= 10:
		return 2
	case leechers <= 15:
		return 3
	case leechers <= 20:
		return 4
	case leechers <= 30:
		return 5
	default:
		return 6
	}
}

// ATD30 returns CloudTracker's ATD30 for a swarm of the given leechers.
func ATD30(leechers int) int { return atd30[atdBand(leechers)] }

// ATD100 returns CloudTracker's ATD100 for a swarm of the given leechers.
func ATD100(leechers int) int { return atd100[atdBand(leechers)] }

// Links returns CloudTracker's acceleration link count
// n = max(0, atd*L - S).
func Links(atd, leechers, seeds int) int {
	n := atd*leechers - seeds
	if n < 0 || leechers <= 0 {
		return 0
	}
	return n
}

// SwarmStats is what Classify needs to know about a swarm.
type SwarmStats struct {
	// Leechers and Seeds count the swarm's sessions that still download
	// and those that hold the whole content.
	Leechers, Seeds int
	// AvgRateBps is the leechers' average download rate (edge and peers).
	AvgRateBps float64
	// BasicRateBps is d_basic: the stream bitrate for video where known,
	// else the configured basic rate.
	BasicRateBps float64
	// Video marks a video stream (high-demand when large enough).
	Video bool
}

// Classification is a swarm's class and its CloudTracker link count.
type Classification struct {
	Class Class
	// Links is n: the edge links that accelerate the swarm (hungry and
	// high-demand), or that are held as contingency (potentially hungry).
	// 0 for normal swarms.
	Links int
	// ATD is the swarm's own available-to-demand ratio S/L, before edge
	// help (+Inf without leechers).
	ATD float64
}

// Classify returns the swarm's class. The rules are checked in order:
// hungry (average rate below the basic rate), high-demand (video, more than
// 10 peers), potentially hungry (fewer seeds than ATD30(L)*L), normal. A
// swarm without leechers is normal: nobody in it needs anything. A NaN or
// negative rate counts as 0 (a swarm that reports nothing is treated as
// hungry, the safe side).
func Classify(s SwarmStats) Classification {
	if s.Leechers <= 0 {
		return Classification{Class: Normal, ATD: math.Inf(1)}
	}
	seeds := max(s.Seeds, 0)
	c := Classification{ATD: float64(seeds) / float64(s.Leechers)}
	rate := s.AvgRateBps
	if !(rate > 0) {
		rate = 0
	}
	switch {
	case rate < s.BasicRateBps:
		c.Class = Hungry
		c.Links = Links(ATD30(s.Leechers), s.Leechers, seeds)
	case s.Video && s.Leechers+seeds > highDemandPeers:
		c.Class = HighDemand
		c.Links = Links(ATD100(s.Leechers), s.Leechers, seeds)
	case Links(ATD30(s.Leechers), s.Leechers, seeds) > 0:
		c.Class = PotentiallyHungry
		c.Links = Links(ATD30(s.Leechers), s.Leechers, seeds)
	default:
		c.Class = Normal
	}
	return c
}
