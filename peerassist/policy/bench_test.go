package policy

import (
	"cmp"
	"math/rand/v2"
	"runtime"
	"slices"
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

// BenchmarkTickVsReference measures Engine.Tick against the reference
// engine (the first version, reference_test.go) in the same run, one tick
// of each per iteration on the same observation, for 1,000,000 sessions in
// 10,000 swarms, and reports the CPU time of each and their ratio. The
// cases:
//
//   - same-order: sessions in the same order every tick (BenchmarkTick);
//   - shifted: every other tick the sessions move by one place (as when
//     the first session leaves);
//   - by-swarm: sessions swarm by swarm, swarms in a different order each
//     tick (as when the caller ranges over maps of swarms and peers);
//   - random: sessions in a different random order each tick, their
//     strings scattered in memory (no guess helps: the worst case);
//   - over-cap: EBU about 0.45 against the 0.40 cap every tick, about
//     108,000 sessions stopped per tick.
//
// Run it on one core:
//
//	GOMAXPROCS=1 go test -run='^$' -bench=TickVsReference -benchtime=10x -count=3 ./peerassist/policy
func BenchmarkTickVsReference(b *testing.B) {
	obs := randomObservation(1, 1_000_000, 10_000)
	shifted := obs
	shifted.Sessions = obs.Sessions[1:]
	rng := rand.New(rand.NewPCG(1, 2))
	bySwarm := func() Observation {
		rank := map[string]int{}
		for _, j := range rng.Perm(len(obs.Swarms)) {
			rank[obs.Swarms[j].Key] = len(rank)
		}
		o := obs
		o.Sessions = slices.Clone(obs.Sessions)
		slices.SortStableFunc(o.Sessions, func(a, b SessionObs) int { return cmp.Compare(rank[a.Swarm], rank[b.Swarm]) })
		return o
	}
	shuffled := func() Observation {
		o := obs
		o.Sessions = slices.Clone(obs.Sessions)
		rng.Shuffle(len(o.Sessions), func(i, j int) { o.Sessions[i], o.Sessions[j] = o.Sessions[j], o.Sessions[i] })
		return o
	}
	for _, bc := range []struct {
		name        string
		capacityBps float64
		alt         [2]Observation // ticks alternate between the two
	}{
		{"same-order", 5e12, [2]Observation{obs, obs}},
		{"shifted", 5e12, [2]Observation{obs, shifted}},
		{"by-swarm", 5e12, [2]Observation{bySwarm(), bySwarm()}},
		{"random", 5e12, [2]Observation{shuffled(), shuffled()}},
		{"over-cap", 3.3e12, [2]Observation{obs, obs}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newTestEngine(b, func(p *Params) { p.EdgeCapacityBps = bc.capacityBps })
			ref, err := newRefEngine(e.Params())
			if err != nil {
				b.Fatal(err)
			}
			var d, dr Decision
			e.Tick(&bc.alt[1], &d)
			ref.Tick(&bc.alt[1], &dr)
			runtime.GC()
			var newCPU, refCPU time.Duration
			b.ResetTimer()
			for k := range b.N {
				o := &bc.alt[k%2]
				o.Now = t0.Add(time.Duration(k+1) * tick)
				c0, _ := processCPUTime()
				e.Tick(o, &d)
				c1, _ := processCPUTime()
				ref.Tick(o, &dr)
				c2, _ := processCPUTime()
				newCPU += c1 - c0
				refCPU += c2 - c1
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(d.StopK), "stops/tick")
			if refCPU > 0 {
				b.ReportMetric(newCPU.Seconds()*1e3/n, "tick-cpu-ms/op")
				b.ReportMetric(refCPU.Seconds()*1e3/n, "ref-cpu-ms/op")
				b.ReportMetric(newCPU.Seconds()/refCPU.Seconds(), "tick/ref")
			}
		})
	}
}
