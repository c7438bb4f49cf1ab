package peer

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/wire"
)

// testSize scales an integration test's object down under the race
// detector.
func testSize(n int64) int64 {
	if raceEnabled {
		return n / 4
	}
	return n
}

func want(path string, size int64) []byte {
	b := make([]byte, size)
	demo.Bytes(size, 0, b)
	return b
}

// newTestPeer starts a peer at addr against the fakes; it is closed at the
// end of the test.
func newTestPeer(t testing.TB, e *fakeEdge, ft *fakeTracker, addr string, mod func(*Options)) *Peer {
	t.Helper()
	o := Options{
		Edge: e.URL(), Announce: ft.URL(), ListenAddr: netip.MustParseAddr(addr),
		UploadBudgetBps: Unlimited, Logger: quietLogger,
		AnnounceRetry: 300 * time.Millisecond, OfferTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{}, "Edge: required"},
		{Options{Edge: "http://x", UploadFraction: 2}, "UploadFraction"},
		{Options{Edge: "http://x", UploadBudgetBps: -5}, "UploadBudgetBps"},
		{Options{Edge: "http://x", SlurpieK: 0.5}, "SlurpieK"},
		{Options{Edge: "ftp://x"}, "want http(s)"},
	}
	for _, tt := range tests {
		p, err := New(tt.o)
		if err == nil {
			_ = p.Close()
			t.Errorf("New(%+v) succeeded, want error with %q", tt.o, tt.want)
			continue
		}
		if !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("New(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
}

func TestFetchAloneFromEdge(t *testing.T) {
	leakCheck(t)
	e := newFakeEdge(t, 256<<10)
	ft := newFakeTracker(t, nil)
	p := newTestPeer(t, e, ft, "127.0.1.1", nil)
	const size = 1<<20 + 12345
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := p.Fetch(ctx, fmt.Sprintf("/bytes/%d", size), FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want("", size)) {
		t.Fatal("fetched bytes differ from the object")
	}
	s := p.Stats()
	if s.FromEdgeBytes != size || s.FromPeersBytes != 0 {
		t.Errorf("from edge %d, from peers %d; want %d, 0", s.FromEdgeBytes, s.FromPeersBytes, size)
	}
	if s.Session == "" {
		t.Error("no session from the coordinator")
	}
	// A second fetch is served from the store.
	if _, err := p.Fetch(ctx, fmt.Sprintf("/bytes/%d", size), FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if s2 := p.Stats(); s2.FromEdgeBytes != size {
		t.Errorf("second fetch drew %d more bytes from the edge", s2.FromEdgeBytes-size)
	}
	_, err = p.Fetch(ctx, "/nothing", FetchOptions{})
	if he, ok := err.(*HTTPError); !ok || he.Status != 404 {
		t.Errorf("fetch of a missing object = %v, want HTTP 404", err)
	}
	_ = p.Close()
}

func TestSecondPeerFetchesFromFirst(t *testing.T) {
	leakCheck(t)
	e := newFakeEdge(t, 256<<10)
	ft := newFakeTracker(t, nil)
	size := testSize(4 << 20)
	path := fmt.Sprintf("/bytes/%d", size)
	a := newTestPeer(t, e, ft, "127.0.1.1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Fetch(ctx, path, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	b := newTestPeer(t, e, ft, "127.0.1.2", nil)
	got, err := b.Fetch(ctx, path, FetchOptions{Deadline: time.Now().Add(20 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want(path, size)) {
		t.Fatal("fetched bytes differ from the object")
	}
	s := b.Stats()
	t.Logf("b: from peers %d, from edge %d, neighbors %d", s.FromPeersBytes, s.FromEdgeBytes, s.Neighbors)
	if s.FromPeersBytes < size/2 {
		t.Errorf("b took %d of %d bytes from a, want most", s.FromPeersBytes, size)
	}
	if got := a.Stats().UploadedBytes; got != s.FromPeersBytes {
		t.Errorf("a uploaded %d, b received %d from peers", got, s.FromPeersBytes)
	}
	if e.servedTo("127.0.1.2") != s.FromEdgeBytes {
		t.Errorf("edge served b %d bytes, b counted %d", e.servedTo("127.0.1.2"), s.FromEdgeBytes)
	}
	_ = a.Close()
	_ = b.Close()
}

// TestSwarmTwoISPs: 2 ISPs x 5 peers fetch one file at once. Every byte is
// verified, no peer bytes cross ISPs (the tracker only introduces peers of
// one ISP), and each ISP draws far less than one copy per peer from the
// edge.
func TestSwarmTwoISPs(t *testing.T) {
	leakCheck(t)
	e := newFakeEdge(t, 256<<10)
	isp := func(a netip.Addr) string { return fmt.Sprint(a.As4()[2]) } // 127.0.ISP.host
	ft := newFakeTracker(t, isp)
	size := testSize(4 << 20)
	path := fmt.Sprintf("/bytes/%d", size)
	type member struct {
		p    *Peer
		isp  string
		addr string
	}
	var peers []member
	for i := range 2 {
		for h := range 5 {
			addr := fmt.Sprintf("127.0.%d.%d", 10+i, 1+h)
			peers = append(peers, member{newTestPeer(t, e, ft, addr, nil), fmt.Sprint(10 + i), addr})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(peers))
	for i, m := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := m.p.Fetch(ctx, path, FetchOptions{Deadline: time.Now().Add(40 * time.Second)})
			if err == nil && !bytes.Equal(got, want(path, size)) {
				err = fmt.Errorf("bytes differ")
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	ispOf := map[string]string{}
	for _, m := range peers {
		ispOf[m.p.ID().String()] = m.isp
	}
	edgePerISP := map[string]int64{}
	for i, m := range peers {
		if errs[i] != nil {
			t.Errorf("peer %s: %v", m.addr, errs[i])
			continue
		}
		s := m.p.Stats()
		for from, n := range s.FromPeer {
			if ispOf[from] != m.isp {
				t.Errorf("peer %s (ISP %s) got %d bytes from %s in ISP %s", m.addr, m.isp, n, from[:8], ispOf[from])
			}
		}
		if len(s.BadChunks) != 0 {
			t.Errorf("peer %s: bad chunks %v", m.addr, s.BadChunks)
		}
		edgePerISP[m.isp] += e.servedTo(m.addr)
		t.Logf("%s: edge %d peers %d up %d neighbors %d seeds %d urgent %d", m.addr, s.FromEdgeBytes, s.FromPeersBytes,
			s.UploadedBytes, s.Neighbors, s.EdgeSeeds, s.EdgeUrgent)
	}
	for isp, n := range edgePerISP {
		copies := float64(n) / float64(size)
		t.Logf("ISP %s: edge egress %.2f copies for 5 peers", isp, copies)
		if copies > 2.5 {
			t.Errorf("ISP %s drew %.2f copies from the edge for 5 peers, want well below 5", isp, copies)
		}
	}
}

// TestPoisoningPeer: one peer holds the file and corrupts every chunk it
// sends. Every bad chunk is detected, the sender reported and dropped, and
// the others' bytes are correct.
func TestPoisoningPeer(t *testing.T) {
	leakCheck(t)
	e := newFakeEdge(t, 256<<10)
	ft := newFakeTracker(t, nil)
	size := testSize(2 << 20)
	path := fmt.Sprintf("/bytes/%d", size)
	evil := newTestPeer(t, e, ft, "127.0.2.66", func(o *Options) {
		o.Corrupt = func(wire.ObjectID, uint32) bool { return true }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if _, err := evil.Fetch(ctx, path, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	var victims []*Peer
	for h := range 3 {
		victims = append(victims, newTestPeer(t, e, ft, fmt.Sprintf("127.0.2.%d", h+1), nil))
	}
	var wg sync.WaitGroup
	for _, v := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := v.Fetch(ctx, path, FetchOptions{Deadline: time.Now().Add(20 * time.Second)})
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, want(path, size)) {
				t.Error("a victim's bytes differ from the object")
			}
		}()
	}
	wg.Wait()
	evilID := evil.ID()
	detected := 0
	for _, v := range victims {
		s := v.Stats()
		for _, bc := range s.BadChunks {
			if bc.From != evilID.String() {
				t.Errorf("bad chunk blamed on %s, not the poisoner", bc.From[:8])
			}
			detected++
		}
		if n := s.FromPeer[evilID.String()]; n != 0 {
			t.Errorf("a victim used %d bytes from the poisoner", n)
		}
	}
	// Each victim that received a whole chunk from the poisoner detected
	// it, dropped the poisoner, and never took it back as a neighbor.
	if detected == 0 {
		t.Error("no bad chunk detected")
	}
	for _, v := range victims {
		s := v.Stats()
		if len(s.BadChunks) > 0 && (len(s.Dropped) != 1 || s.Dropped[0] != evilID.String()) {
			t.Errorf("victim dropped %v, want the poisoner only", s.Dropped)
		}
	}
	// Reported to the coordinator with the sender's peer_id.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reported := 0
		for _, bc := range ft.badReports() {
			if bc.PeerID == evilID {
				reported++
			}
		}
		if reported == detected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bad chunks reported to the coordinator, %d detected", reported, detected)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, v := range victims {
		_ = v.Close()
	}
	_ = evil.Close()
}

// TestKilledPeerDeadlines: the only peer holding the file dies mid-transfer
// without a word; the others finish within their deadlines from the edge.
func TestKilledPeerDeadlines(t *testing.T) {
	leakCheck(t)
	e := newFakeEdge(t, 256<<10)
	ft := newFakeTracker(t, nil)
	size := testSize(4 << 20)
	path := fmt.Sprintf("/bytes/%d", size)
	// The seed uploads slowly (2 MiB/s) so the others are mid-transfer
	// when it dies.
	seed := newTestPeer(t, e, ft, "127.0.3.1", func(o *Options) { o.UploadBudgetBps = 16 << 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if _, err := seed.Fetch(ctx, path, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	var others []*Peer
	for h := range 2 {
		others = append(others, newTestPeer(t, e, ft, fmt.Sprintf("127.0.3.%d", h+2), nil))
	}
	deadline := time.Now().Add(6 * time.Second)
	var wg sync.WaitGroup
	for _, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := o.Fetch(ctx, path, FetchOptions{Deadline: deadline})
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, want(path, size)) {
				t.Error("bytes differ")
			}
			if late := time.Since(deadline); late > 0 {
				t.Errorf("finished %v after the deadline", late)
			}
		}()
	}
	// Kill the seed once it has sent something.
	for seed.Stats().UploadedBytes < 256<<10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	seed.kill()
	wg.Wait()
	for _, o := range others {
		s := o.Stats()
		t.Logf("from peers %d, from edge %d, urgent %d", s.FromPeersBytes, s.FromEdgeBytes, s.EdgeUrgent)
	}
}
