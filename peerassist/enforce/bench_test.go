package enforce

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// BenchmarkTick is one policy tick over sessions spread on swarms of 10
// (snapshot copy excluded: the fake hands out its list), every session
// having drawn edge bytes since the last tick.
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			f := newFakeCoord()
			for i := range n {
				sw := coordinator.SwarmID{Region: "r1", InfoHash: signal.ID{byte(i / 10), byte(i / 2560), byte(i / 655360)}}
				if i%10 == 0 {
					f.swarms = append(f.swarms, coordinator.SwarmInfo{SwarmID: sw, Peers: 10, Incomplete: 10})
				}
				f.add(coordinator.SessionInfo{ID: fmt.Sprintf("session-%07d", i), Site: "demo", Connected: true, Swarm: sw,
					Locality: region.Locality{Known: true, Region: "r1", ASN: 64601}, Caps: signal.Caps{UploadBps: 3_000_000}})
			}
			l, err := New(Options{Policy: testPolicy(), Coordinator: f, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var clk atomic.Int64
			l.clock = func() time.Duration { return time.Duration(clk.Load()) }
			t0 := time.Unix(1_700_000_000, 0)
			l.Tick(t0)
			for _, id := range f.order {
				f.request(id, false, 100_000, "/v/seg.ts")
			}
			l.Tick(t0.Add(5 * time.Second))
			f.takePushes()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				spans.Reset()
				clk.Store(int64(time.Duration(i+2) * 5 * time.Second))
				l.Tick(t0.Add(time.Duration(i+2) * 5 * time.Second))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
		})
	}
}

// BenchmarkLimiter is the HTTP path's cost per request: Admit and Served
// on each goroutine's own session, in parallel.
func BenchmarkLimiter(b *testing.B) {
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		l := newLimiter(fmt.Sprint(next.Add(1)), limits{floorBytesPerSec: 30_000, allowBytesPerSec: 1e12, burst: time.Second}, monotonic)
		for pb.Next() {
			if ok, _, _ := l.Admit(false); ok {
				l.Served("/v/seg-1.ts", 1000, false)
			}
		}
	})
}
