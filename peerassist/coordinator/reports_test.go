package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// introduce makes offerer send one offer that lands at target (the only
// other peer that can serve) and target answer it.
func introduce(t *testing.T, offerer, target *client, sw signal.ID, base int) {
	t.Helper()
	offerer.announce(sw, signal.EventUpdate, 1, base, nil)
	offerer.mustRecv(signal.KindAnnounce)
	off := target.mustRecv(signal.KindOffer)
	if off.PeerID != offerer.id {
		t.Fatalf("offer from %x, want %x", off.PeerID, offerer.id)
	}
	target.answer(off)
	offerer.mustRecv(signal.KindAnswer)
}

func report(c *client, sw signal.ID, bad ...signal.ID) {
	c.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) {
		r.Report = &signal.Report{FromPeersBytes: -1, FromEdgeBytes: -1, UploadedBytes: -1}
		for i, id := range bad {
			r.Report.BadChunks = append(r.Report.BadChunks, signal.BadChunk{PeerID: id, Object: "00112233aabbccdd", Chunk: int64(i)})
		}
	})
}

func TestBadChunkDropNeedsTwoReporters(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("integrity")
	bad := e.mustDial("127.1.0.9")
	bad.join(sw)
	// Only bad can serve while r1 and r2 get introduced to it.
	r1 := e.mustDial("127.1.0.1")
	r1.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Caps = &signal.Caps{NoUpload: true} })
	r1.mustRecv(signal.KindAnnounce)
	r2 := e.mustDial("127.1.1.2")
	r2.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Caps = &signal.Caps{NoUpload: true} })
	r2.mustRecv(signal.KindAnnounce)
	introduce(t, r1, bad, sw, 0)
	introduce(t, r2, bad, sw, 10)

	// A reporter that never met the accused: ignored.
	stranger := e.mustDial("127.1.2.3")
	stranger.join(sw)
	report(stranger, sw, bad.id)
	stranger.mustRecv(signal.KindAnnounce)

	// One reporter is not enough.
	report(r1, sw, bad.id)
	r1.mustRecv(signal.KindAnnounce)
	// The same reporter again (another socket of the same address would
	// count the same) is still not enough.
	report(r1, sw, bad.id)
	r1.mustRecv(signal.KindAnnounce)
	if n := e.co.Swarms()[0].Peers; n != 4 {
		t.Fatalf("%d peers after one reporter, want 4", n)
	}
	// A second reporter from another address: bad is dropped and told.
	report(r2, sw, bad.id)
	r2.mustRecv(signal.KindAnnounce)
	f := bad.mustRecv(signal.KindFailure)
	if !strings.Contains(f.Failure, "dropped from swarm") || f.InfoHash != sw {
		t.Errorf("dropped peer got %q (info_hash %x)", f.Failure, f.InfoHash)
	}
	waitFor(t, func() bool { return e.co.Swarms()[0].Peers == 3 })
	// And it may not come back to this swarm for ban_duration.
	bad.announce(sw, signal.EventStarted, 0, 0, nil)
	if f := bad.mustRecv(signal.KindFailure); !strings.Contains(f.Failure, "dropped from this swarm") {
		t.Errorf("banned peer re-announcing: %q", f.Failure)
	}
	// Other swarms are fine.
	bad.join(ih("elsewhere"))
}

func TestFalseAccuserIsDropped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAccusations = 2
	e := startEdge(t, cfg, nil)
	sw := ih("liar")
	liar := e.mustDial("127.1.0.1")
	liar.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Caps = &signal.Caps{NoUpload: true} })
	liar.mustRecv(signal.KindAnnounce)
	var victims []*client
	for i := range 3 {
		v := e.mustDial("127.1.0." + string(rune('2'+i)))
		v.join(sw)
		victims = append(victims, v)
	}
	// Introduce the liar to all three (one offer each until all met).
	met := map[signal.ID]bool{}
	for base := 0; len(met) < 3 && base < 300; base += 10 {
		liar.announce(sw, signal.EventUpdate, 3, base, nil)
		liar.mustRecv(signal.KindAnnounce)
		for _, v := range victims {
			if r, err := v.recv(time.Second); err == nil && r.Kind == signal.KindOffer {
				met[v.id] = true
			}
		}
	}
	if len(met) != 3 {
		t.Fatalf("liar met %d victims, want 3", len(met))
	}
	report(liar, sw, victims[0].id, victims[1].id, victims[2].id)
	f := liar.mustRecv(signal.KindFailure)
	if !strings.Contains(f.Failure, "false accuser") {
		t.Errorf("liar got %q", f.Failure)
	}
	waitFor(t, func() bool { return e.co.Swarms()[0].Peers == 3 })
	for _, v := range victims {
		v.expectNothing(50 * time.Millisecond)
	}
}
