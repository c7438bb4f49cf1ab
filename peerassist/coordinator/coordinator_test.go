package coordinator

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// sessionGate is edge.SessionGate's method set (edge/hooks.go), checked here
// without importing the edge server.
type sessionGate interface {
	Admit(sessionID string, urgent bool) (ok bool, retryAfter time.Duration, reason string)
	Served(sessionID, site, url string, bytes int64)
}

var _ sessionGate = (*Coordinator)(nil)

func TestOfferAnswerRelay(t *testing.T) {
	for _, mode := range []string{"epoll", "goroutine"} {
		t.Run(mode, func(t *testing.T) {
			e := startEdge(t, testConfig(), func(o *Options) { o.NoEpoll = mode == "goroutine" })
			sw := ih("relay")
			b := e.mustDial("127.1.0.2")
			rb := b.join(sw)
			if rb.Interval != 120 || rb.Incomplete != 1 || rb.Complete != 0 || rb.Session == "" {
				t.Fatalf("B's reply = %+v, want interval 120, incomplete 1, a session", rb)
			}
			a := e.mustDial("127.1.0.1")
			a.announce(sw, signal.EventStarted, 2, 100, nil)
			ra := a.mustRecv(signal.KindAnnounce)
			if ra.Incomplete != 2 || ra.Session == "" || ra.Session == rb.Session {
				t.Fatalf("A's reply = %+v", ra)
			}
			off := b.mustRecv(signal.KindOffer)
			if off.PeerID != a.id || off.InfoHash != sw || (off.OfferID != offerID(100) && off.OfferID != offerID(101)) ||
				!bytes.Contains(off.SDP, []byte("from 127.1.0.1")) {
				t.Fatalf("B got offer %+v (sdp %s)", off, off.SDP)
			}
			b.answer(off)
			ans := a.mustRecv(signal.KindAnswer)
			if ans.PeerID != b.id || ans.OfferID != off.OfferID || !bytes.Contains(ans.SDP, []byte("from 127.1.0.2")) {
				t.Fatalf("A got answer %+v (sdp %s)", ans, ans.SDP)
			}
			// Only one peer to offer to: the second offer goes nowhere, and
			// the answer gets no reply.
			a.expectNothing(100 * time.Millisecond)
			b.expectNothing(10 * time.Millisecond)
			// A second answer to the same offer is refused: it was used.
			b.answer(off)
			if f := b.mustRecv(signal.KindFailure); !strings.Contains(f.Failure, "not relayed to you") || f.InfoHash != sw {
				t.Errorf("second answer: failure %q info_hash %x", f.Failure, f.InfoHash)
			}
		})
	}
}

func TestRegionScope(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("scope")
	paris := e.mustDial("127.1.0.2")
	paris.join(sw)
	lyon := e.mustDial("127.3.0.1")
	r := lyon.join(sw)
	if r.Incomplete != 1 {
		t.Errorf("lyon's swarm has %d peers, want 1 (its own)", r.Incomplete)
	}
	unknown := e.mustDial("127.9.0.1")
	unknown.announce(sw, signal.EventStarted, 3, 0, nil)
	ru := unknown.mustRecv(signal.KindAnnounce)
	if ru.Interval != 120 || ru.Complete != 0 || ru.Incomplete != 0 || ru.Session == "" {
		t.Errorf("unknown peer's reply = %+v, want an interval, zero counts and a session", ru)
	}
	lyon.announce(sw, signal.EventUpdate, 3, 0, nil)
	lyon.mustRecv(signal.KindAnnounce)
	// Nobody in paris hears from lyon or the unknown peer, and the unknown
	// peer is offered to nobody.
	paris.announce(sw, signal.EventUpdate, 3, 10, nil)
	paris.mustRecv(signal.KindAnnounce)
	paris.expectNothing(150 * time.Millisecond)
	lyon.expectNothing(10 * time.Millisecond)
	unknown.expectNothing(10 * time.Millisecond)
}

func TestTierRanking(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("tiers")
	subnet := []*client{e.mustDial("127.1.0.2"), e.mustDial("127.1.0.3")}
	isp := []*client{e.mustDial("127.1.5.1"), e.mustDial("127.1.6.1"), e.mustDial("127.1.7.1")}
	other := []*client{e.mustDial("127.2.0.1"), e.mustDial("127.2.0.2")}
	for _, c := range append(append(append([]*client{}, subnet...), isp...), other...) {
		c.join(sw)
	}
	o := e.mustDial("127.1.0.1")

	// numwant 3: both same-subnet peers, then one same-ISP peer.
	o.announce(sw, signal.EventStarted, 3, 0, nil)
	o.mustRecv(signal.KindAnnounce)
	for _, c := range subnet {
		c.mustRecv(signal.KindOffer)
	}
	got := 0
	for _, c := range isp {
		if r, err := c.recv(200 * time.Millisecond); err == nil && r.Kind == signal.KindOffer {
			got++
		}
	}
	if got != 1 {
		t.Errorf("%d same-ISP peers got an offer, want 1", got)
	}
	// 10 offers on a site without cross-ISP: the 5 same-ISP peers only.
	o.announce(sw, signal.EventUpdate, 10, 10, nil)
	o.mustRecv(signal.KindAnnounce)
	for _, c := range append(append([]*client{}, subnet...), isp...) {
		c.mustRecv(signal.KindOffer)
	}
	for _, c := range other {
		c.expectNothing(150 * time.Millisecond)
	}
}

func TestCrossISPWhereSiteAllows(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("open")
	hdr := http.Header{"Origin": {"https://open.example"}}
	same, _, err := e.dial("127.1.0.2", hdr)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := e.dial("127.2.0.1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	lyon, _, err := e.dial("127.3.0.1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	// A native client naming a site that does not allow cross-ISP exchange
	// is never offered to other ISPs, even when the offerer's site does.
	closed := e.mustDial("127.2.0.2")
	closed.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Site = "video" })
	closed.mustRecv(signal.KindAnnounce)
	for _, c := range []*client{same, other, lyon} {
		c.join(sw)
	}
	o, _, err := e.dial("127.1.0.1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	o.announce(sw, signal.EventStarted, 5, 0, nil)
	o.mustRecv(signal.KindAnnounce)
	first := same.mustRecv(signal.KindOffer)
	second := other.mustRecv(signal.KindOffer)
	if first.PeerID != o.id || second.PeerID != o.id {
		t.Errorf("offers from %x and %x, want %x", first.PeerID, second.PeerID, o.id)
	}
	lyon.expectNothing(150 * time.Millisecond)
	closed.expectNothing(10 * time.Millisecond)
}

func TestSiteResolution(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("sites")
	tests := []struct {
		name   string
		origin string
		site   string
		want   string // failure substring, "" for success
	}{
		{"unknown x_site", "", "nope", `unknown x_site "nope"`},
		{"x_site disabled", "", "off", "disabled"},
		{"origin of a disabled site", "https://off.example", "", "disabled"},
		{"x_site contradicts origin", "https://video.example", "open", "does not match"},
		{"x_site matches origin", "https://video.example", "video", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			c, _, err := e.dial("127.1.0."+string(rune('1'+i)), hdr)
			if err != nil {
				t.Fatal(err)
			}
			c.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Site = tt.site })
			r, err := c.recv(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if r.Kind != signal.KindAnnounce {
					t.Errorf("got %v %q, want an announce reply", r.Kind, r.Failure)
				}
			} else if r.Kind != signal.KindFailure || !strings.Contains(r.Failure, tt.want) {
				t.Errorf("got %v %q, want failure containing %q", r.Kind, r.Failure, tt.want)
			}
		})
	}
}

func TestHoldingsRanking(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("holdings")
	var leeches []*client
	for i := range 4 {
		c := e.mustDial("127.1.0." + string(rune('2'+i)))
		c.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Have = int64(i) })
		c.mustRecv(signal.KindAnnounce)
		leeches = append(leeches, c)
	}
	seed := e.mustDial("127.1.0.9")
	seed.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Left = 0 })
	if r := seed.mustRecv(signal.KindAnnounce); r.Complete != 1 || r.Incomplete != 4 {
		t.Fatalf("after the seed joined: complete %d incomplete %d, want 1 and 4", r.Complete, r.Incomplete)
	}
	// A leecher with 2 offers: the seed first, then the leech holding most.
	o := e.mustDial("127.1.0.1")
	o.announce(sw, signal.EventStarted, 2, 0, nil)
	o.mustRecv(signal.KindAnnounce)
	seed.mustRecv(signal.KindOffer)
	leeches[3].mustRecv(signal.KindOffer)
	for _, c := range leeches[:3] {
		c.expectNothing(100 * time.Millisecond)
	}
	// A completed peer offers to leeches (the four and o) before the seed.
	o2 := e.mustDial("127.1.0.8")
	o2.announce(sw, signal.EventCompleted, 5, 10, func(r *signal.Request) { r.Left = 0 })
	o2.mustRecv(signal.KindAnnounce)
	for _, c := range append(leeches, o) {
		c.mustRecv(signal.KindOffer)
	}
	seed.expectNothing(100 * time.Millisecond)
}

func TestUploadBudgetAndNoUpload(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("budget")
	busy := e.mustDial("127.1.0.2")
	busy.join(sw)
	metered := e.mustDial("127.1.0.3")
	metered.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) {
		r.Caps = &signal.Caps{UploadBps: 1e6, NoUpload: true, Device: signal.DeviceMobile}
	})
	metered.mustRecv(signal.KindAnnounce)
	free := e.mustDial("127.1.0.4")
	free.join(sw)
	if err := e.co.SetUploadBudgetReached(busy.sess, true); err != nil {
		t.Fatal(err)
	}
	if err := e.co.SetUploadBudgetReached("nope", true); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("SetUploadBudgetReached(unknown) = %v, want ErrUnknownSession", err)
	}
	o := e.mustDial("127.1.0.1")
	o.announce(sw, signal.EventStarted, 5, 0, nil)
	o.mustRecv(signal.KindAnnounce)
	free.mustRecv(signal.KindOffer)
	busy.expectNothing(150 * time.Millisecond)
	metered.expectNothing(10 * time.Millisecond)
	info, ok := e.co.Session(metered.sess)
	if !ok || !info.Caps.NoUpload || info.Caps.Device != signal.DeviceMobile || info.Caps.UploadBps != 1e6 {
		t.Errorf("metered session = %+v, %v", info, ok)
	}
	// Back under budget: offered again.
	if err := e.co.SetUploadBudgetReached(busy.sess, false); err != nil {
		t.Fatal(err)
	}
	o.announce(sw, signal.EventUpdate, 5, 10, nil)
	o.mustRecv(signal.KindAnnounce)
	busy.mustRecv(signal.KindOffer)
}

func TestAntiSpoofing(t *testing.T) {
	cfg := testConfig()
	cfg.OfferMaxAge.UnmarshalText([]byte("1s"))
	e := startEdge(t, cfg, nil)
	sw := ih("spoof")
	a := e.mustDial("127.1.0.1")
	b := e.mustDial("127.1.0.2")
	m := e.mustDial("127.1.0.3") // mallory
	b.join(sw)
	m.join(sw)
	a.announce(sw, signal.EventStarted, 1, 0, nil)
	a.mustRecv(signal.KindAnnounce)
	var off *signal.Response
	var target, bystander *client
	if r, err := b.recv(2 * time.Second); err == nil && r.Kind == signal.KindOffer {
		off, target, bystander = r, b, m
	} else {
		off, target, bystander = m.mustRecv(signal.KindOffer), m, b
	}

	fail := func(c *client, want string) {
		t.Helper()
		r := c.mustRecv(signal.KindFailure)
		if !strings.Contains(r.Failure, want) {
			t.Errorf("%s: failure %q, want %q", c.ip, r.Failure, want)
		}
	}
	// The bystander answers an offer it never got.
	bystander.answer(off)
	fail(bystander, "not relayed to you")
	// The bystander uses the target's peer_id: bound to another connection.
	spoof := *off
	req := signal.Request{Action: signal.ActionAnnounce, InfoHash: sw, PeerID: target.id, NumWant: -1, Left: -1, Uploaded: -1,
		Downloaded: -1, Have: -1, Answer: []byte(`{"type":"answer","sdp":"evil"}`), ToPeerID: spoof.PeerID, OfferID: spoof.OfferID}
	bystander.send(&req)
	fail(bystander, "in use by another connection")
	bystander.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) { r.PeerID = target.id })
	fail(bystander, "in use by another connection")
	// One peer_id per swarm per connection.
	bystander.announce(sw, signal.EventUpdate, 0, 0, func(r *signal.Request) { r.PeerID = ih("another-peer-id") })
	fail(bystander, "one peer_id per swarm")
	// The target answers with the wrong to_peer_id.
	wrong := *off
	wrong.PeerID = bystander.id
	target.answer(&wrong)
	fail(target, "not relayed to you")
	// Too late.
	time.Sleep(2100 * time.Millisecond)
	target.answer(off)
	r := target.mustRecv(signal.KindFailure)
	if !strings.Contains(r.Failure, "older than") && !strings.Contains(r.Failure, "not relayed") {
		t.Errorf("late answer: failure %q", r.Failure)
	}
	a.expectNothing(100 * time.Millisecond)
}

func TestBadInputKeepsConnection(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	c := e.mustDial("127.1.0.1")
	tests := []struct {
		msg  string
		want string
	}{
		{`not json`, "invalid message"},
		{`{"action":"announce","info_hash":"short","peer_id":"bbbbbbbbbbbbbbbbbbbb"}`, "invalid info_hash"},
		{`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":5}`, "invalid peer_id"},
		{`{"action":"connect"}`, "unknown action"},
		{`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","event":"boom"}`, "invalid event"},
		{`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":"x"}`, "invalid offers"},
		{`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","answer":{}}`, "to_peer_id"},
		{`{"action":"scrape","info_hash":[]}`, "scrape needs"},
	}
	for _, tt := range tests {
		c.sendRaw(tt.msg)
		r := c.mustRecv(signal.KindFailure)
		if !strings.Contains(r.Failure, tt.want) {
			t.Errorf("%s: failure %q, want %q", tt.msg, r.Failure, tt.want)
		}
	}
	// Binary frames carry JSON too (bittorrent-tracker accepts them).
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}`)); err != nil {
		t.Fatal(err)
	}
	c.mustRecv(signal.KindScrape)
	// Still usable.
	c.join(ih("after-bad-input"))
}

func TestScrape(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	a, b := e.mustDial("127.1.0.1"), e.mustDial("127.1.0.2")
	a.join(ih("one"))
	b.announce(ih("one"), signal.EventStarted, 0, 0, func(r *signal.Request) { r.Left = 0 })
	b.mustRecv(signal.KindAnnounce)
	lyon := e.mustDial("127.3.0.1")
	lyon.join(ih("one"))
	c := e.mustDial("127.1.0.3")
	c.send(&signal.Request{Action: signal.ActionScrape, InfoHashes: []signal.ID{ih("one"), ih("two")}})
	r := c.mustRecv(signal.KindScrape)
	if len(r.Files) != 2 || r.Files[0].Complete != 1 || r.Files[0].Incomplete != 1 || r.Files[1].Complete != 0 || r.MinRequestInterval != 120 {
		t.Errorf("scrape = %+v", r.Files)
	}
}

func TestCloseMeansStopped(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("close")
	a, b := e.mustDial("127.1.0.1"), e.mustDial("127.1.0.2")
	a.join(sw)
	if r := b.join(sw); r.Incomplete != 2 {
		t.Fatalf("incomplete = %d, want 2", r.Incomplete)
	}
	a.ws.Close()
	waitFor(t, func() bool { return len(e.co.Swarms()) == 1 && e.co.Swarms()[0].Peers == 1 })
	b.announce(sw, signal.EventStopped, 0, 0, nil)
	b.mustRecv(signal.KindAnnounce)
	waitFor(t, func() bool { return len(e.co.Swarms()) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
