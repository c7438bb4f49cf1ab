package policy

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"
)

// FuzzTick feeds the engine observations decoded from arbitrary bytes (the
// counters come from clients' reports: untrusted) and checks that it never
// panics and that every decision keeps the invariants: one decision per
// session, allowances at least the floor need, allowances within the
// headroom (or the guarantees), EBU after within the cap.
func FuzzTick(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x05\x02\x00\x01\x10\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Add(make([]byte, 200))
	seed := make([]byte, 0, 400)
	for i := range 400 {
		seed = append(seed, byte(i*37))
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := fuzzReader{data: data}
		p := DefaultParams()
		p.EdgeCapacityBps = float64(r.u8()) * 1e6 // 0: observed peak
		p.PeakWarmup = time.Duration(r.u8()) * time.Second
		p.EBUCap = (float64(r.u8()) + 1) / 256
		p.StopHold = time.Duration(r.u8()) * time.Second
		e, err := NewEngine(p)
		if err != nil {
			t.Fatal(err)
		}
		nSwarms := int(r.u8() % 8)
		obs := Observation{Now: t0, Interval: time.Duration(int8(r.u8())) * time.Second}
		for j := range nSwarms {
			obs.Swarms = append(obs.Swarms, SwarmObs{Key: fmt.Sprint(r.u8() % 10), Video: j%2 == 0, BitrateBps: r.i64() % 10e6})
		}
		for i := 0; r.more() && i < 200; i++ {
			obs.Sessions = append(obs.Sessions, SessionObs{
				ID: fmt.Sprint(i), Swarm: fmt.Sprint(r.u8() % 12), ASN: uint32(r.u8()), Seed: r.u8()%9 == 0,
				EdgeUrgentBytes: r.i64(), EdgeNonUrgentBytes: r.i64(), PeerBytes: r.i64(), UploadedBytes: r.i64(),
				DeclaredUploadBps: r.i64(), UploadOff: r.u8()%7 == 0, DemandBps: r.i64(), FloorBps: r.i64() % 1e7,
			})
			if r.u8()%11 == 0 {
				obs.Sessions[i].Swarm = ""
			}
		}
		var d Decision
		for k := range 3 {
			obs.Now = t0.Add(time.Duration(k) * 5 * time.Second)
			e.Tick(&obs, &d)
			if err := checkInvariants(&obs, &d); err != nil {
				t.Fatalf("tick %d: %v", k, err)
			}
			if math.IsNaN(d.EBU) || math.IsNaN(d.EBUAfter) || math.IsNaN(d.AllocatedBps) {
				t.Fatalf("tick %d: NaN in decision: %+v", k, d)
			}
		}
	})
}

type fuzzReader struct {
	data []byte
	off  int
}

func (r *fuzzReader) more() bool { return r.off < len(r.data) }

func (r *fuzzReader) u8() byte {
	if r.off >= len(r.data) {
		return 0
	}
	b := r.data[r.off]
	r.off++
	return b
}

// i64 reads a small-ish signed value most of the time, and now and then a
// full 64-bit one (huge and negative counters).
func (r *fuzzReader) i64() int64 {
	switch k := r.u8(); {
	case k < 200:
		return int64(k) * 12_345
	case k < 250:
		var b [4]byte
		for i := range b {
			b[i] = r.u8()
		}
		return int64(int32(binary.LittleEndian.Uint32(b[:])))
	default:
		var b [8]byte
		for i := range b {
			b[i] = r.u8()
		}
		return int64(binary.LittleEndian.Uint64(b[:]))
	}
}
