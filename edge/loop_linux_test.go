//go:build linux

package edge

import "sync/atomic"

// saturatedCPUs stands in for cpuload's monitor on a machine whose CPUs
// are always busy; it counts how often it was asked.
type saturatedCPUs struct{ asked atomic.Int64 }

func (s *saturatedCPUs) Saturated() bool {
	s.asked.Add(1)
	return true
}

// alwaysYield makes ls's loops yield each time they run out of events;
// asked tells how often a loop was about to sleep since.
func alwaysYield(ls *loopSet) (asked func() int64) {
	s := &saturatedCPUs{}
	ls.yield.Store(&yieldPolicy{cpu: s, minEvents: 0})
	return s.asked.Load
}
