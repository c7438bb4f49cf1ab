package enforce

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// fuzzReader hands out the fuzzer's bytes as small decisions; it returns
// zeros once they run out.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) int64() int64 {
	var buf [8]byte
	n := copy(buf[:], r.b)
	r.b = r.b[n:]
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

// small returns a value spanning the interesting ranges of a counter: 0,
// small, large, huge and negative.
func (r *fuzzReader) small() int64 {
	switch c := r.byte(); c % 8 {
	case 0:
		return 0
	case 1, 2, 3:
		return int64(c) * 1000
	case 4:
		return int64(c) * 1_000_000
	case 5:
		return -int64(c)
	case 6:
		return math.MaxInt64 - int64(c)
	default:
		return r.int64()
	}
}

// FuzzTick drives the loop with sessions, reports and requests built from
// the fuzzer's bytes, as clients could make them (counters, capacities,
// sizes, URLs, clock steps), and checks the loop neither panics nor decides
// anything out of range.
func FuzzTick(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("\x00a\x01\x03\x00b\x02\x05\x02a\x01\x07\x03\x05\x02b\x00\x06\x03\x05\x04a\x03\x05"))
	f.Add([]byte("\x00\x00\x00\x00\x03\x00\x03\x00\x02\x00\x00\x07\xff\xff\xff\xff\xff\xff\xff\x7f\x03\x05"))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte) {
	{
		spans.Reset() // the recorder would keep every tick's span
		r := &fuzzReader{b: data}
		fc := newFakeCoord()
		swarms := []coordinator.SwarmID{swarmA, {Region: "r1", InfoHash: signal.ID{'b'}}, {}}
		fc.swarms = []coordinator.SwarmInfo{{SwarmID: swarms[0]}, {SwarmID: swarms[1]}, {SwarmID: swarms[0]}} // one listed twice
		video := config.NewSite("video", "http://origin.invalid")
		video.PeerAssist.BitrateBps = 1_500_000
		pol := config.DefaultPolicy()
		if r.byte()%2 == 0 {
			pol.EdgeCapacityBps = 1 + r.small()&0xffffffff
		}
		l, err := New(Options{Policy: pol, Sites: []config.Site{config.NewSite("demo", "http://origin.invalid"), video},
			Coordinator: fc, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var clk time.Duration
		l.clock = func() time.Duration { return clk }
		t0 := time.Unix(1_700_000_000, 0)
		now := t0
		sites := []string{"", "demo", "video", "nosuch"}
		for ops := 0; len(r.b) > 0 && ops < 200; ops++ {
			id := fmt.Sprintf("s%d", r.byte()%6)
			switch r.byte() % 6 {
			case 0: // a session (re)joins
				fc.add(coordinator.SessionInfo{
					ID: id, Site: sites[r.byte()%4], Connected: r.byte()%4 != 0, Swarm: swarms[r.byte()%3],
					Seed: r.byte()%5 == 0, Started: now.Add(time.Duration(r.small())),
					Locality: region.Locality{Known: true, Region: "r1", ASN: uint32(r.byte())},
					Caps:     signal.Caps{UploadBps: r.small(), NoUpload: r.byte()%7 == 0},
				})
			case 1: // a report
				fc.mu.Lock()
				if s := fc.sessions[id]; s != nil {
					s.LastReport = now.Add(time.Duration(r.small()))
					s.FromPeersBytes, s.UploadedBytes, s.FromEdgeBytes = r.small(), r.small(), r.small()
				}
				fc.mu.Unlock()
			case 2: // a request
				urls := []string{"/a.ts", "/b", "/c.m3u8?x", ""}
				fc.request(id, r.byte()%2 == 0, r.small(), urls[r.byte()%4])
			case 3: // a tick, the clock moving by any amount
				step := time.Duration(r.small())
				clk += step
				now = now.Add(step)
				d := l.Tick(now)
				if d == nil {
					continue
				}
				if math.IsNaN(d.EBU) || math.IsInf(d.EBU, 0) || d.EBU < 0 || math.IsNaN(d.EBUAfter) {
					t.Fatalf("EBU %v after %v", d.EBU, d.EBUAfter)
				}
				for _, sd := range d.Sessions {
					if sd.AllowanceBps < 0 || sd.FloorBps < 0 || sd.UploadBudgetBps < 0 {
						t.Fatalf("decision out of range: %+v", sd)
					}
				}
				for _, p := range fc.takePushes() {
					if p.p.EdgeAllowanceBps < -1 || p.p.UploadBudgetBps < 0 || !(p.p.SlurpieProbability >= 0 && p.p.SlurpieProbability <= 1) {
						t.Fatalf("x_policy out of range: %+v", p.p)
					}
					if json := string(p.p.AppendJSON(nil)); len(json) == 0 || json[0] != '{' {
						t.Fatalf("x_policy JSON %q", json)
					}
				}
			case 4:
				fc.remove(id)
			case 5:
				fc.mu.Lock()
				fc.vanish = append(fc.vanish, id)
				fc.mu.Unlock()
			}
			if lim := fc.limiter(id); lim != nil {
				if ok, retry, reason := lim.Admit(r.byte()%2 == 0); !ok && (retry <= 0 || reason == "") {
					t.Fatalf("refusal without Retry-After or reason: %v %q", retry, reason)
				}
			}
		}
	}
}
