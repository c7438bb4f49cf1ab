package policy

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkTickVsAllocate measures the whole tick for 1,000,000 sessions in
// 10,000 swarms (BenchmarkTick's input) and the allocation step alone
// (BenchmarkAllocate's input) in the same run, one of each per iteration,
// so that the noise of a shared machine hits both alike. It reports the CPU
// time of each per iteration (process CPU time: run it with GOMAXPROCS=1
// to measure one core) and their ratio, tick/alloc. The goal is a tick in
// at most 0.1 s on one core.
//
//	GOMAXPROCS=1 go test -run='^$' -bench=TickVsAllocate -benchtime=10x -count=3 ./peerassist/policy
func BenchmarkTickVsAllocate(b *testing.B) {
	e := newTestEngine(b, func(p *Params) { p.EdgeCapacityBps = 5e12 })
	obs := randomObservation(1, 1_000_000, 10_000)
	in := benchSwarms(10_000, 1_000_000)
	out := make([]float64, len(in))
	room := 0.0
	for _, s := range in {
		room += s.MaxBps - s.MinBps
	}
	var d Decision
	e.Tick(&obs, &d) // grow the scratch and the decision once
	// Collect the setup's garbage now, so that the CPU time measured is
	// the tick's (which allocates nothing once grown), not the marking of
	// a gigabyte of test input.
	runtime.GC()
	var tickCPU, allocCPU, tickWall time.Duration
	_, cpuOK := processCPUTime()
	b.ReportAllocs()
	b.ResetTimer()
	for k := range b.N {
		obs.Now = t0.Add(time.Duration(k+1) * tick)
		c0, _ := processCPUTime()
		w0 := time.Now()
		e.Tick(&obs, &d)
		tickWall += time.Since(w0)
		c1, _ := processCPUTime()
		Allocate(in, room/3, out)
		c2, _ := processCPUTime()
		tickCPU += c1 - c0
		allocCPU += c2 - c1
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(tickWall.Seconds()*1e3/n, "tick-wall-ms/op")
	if cpuOK {
		b.ReportMetric(tickCPU.Seconds()*1e3/n, "tick-cpu-ms/op")
		b.ReportMetric(allocCPU.Seconds()*1e3/n, "alloc-cpu-ms/op")
		if allocCPU > 0 {
			b.ReportMetric(tickCPU.Seconds()/allocCPU.Seconds(), "tick/alloc")
		}
	}
}
