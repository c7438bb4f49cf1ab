package browsertest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// crossingTracker is a WebTorrent-style tracker for two peers that makes
// their offers cross: it holds every offer until both peers have offered,
// then sends each one the other's first offer at the same moment, and
// relays the answers. It relays nothing else, so the two connections that
// result are the only ones the pages can make.
type crossingTracker struct {
	t  testing.TB
	mu sync.Mutex
	// By peer_id (a binary string, kept as JSON decoded it).
	conns   map[string]*websocket.Conn
	offers  map[string]json.RawMessage // the first announce with offers of each peer
	crossed bool
	events  []string // "offer a->b", "answer b->a", in the order relayed
}

func startCrossingTracker(t testing.TB) (wsURL string, tr *crossingTracker) {
	tr = &crossingTracker{t: t, conns: map[string]*websocket.Conn{}, offers: map[string]json.RawMessage{}}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			tr.handle(c, msg)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, c := range tr.conns {
			c.Close() // hijacked: srv.Close leaves them open
		}
	})
	return "ws://" + ln.Addr().String() + "/announce", tr
}

type announce struct {
	Action   string          `json:"action"`
	InfoHash string          `json:"info_hash"`
	PeerID   string          `json:"peer_id"`
	Offers   json.RawMessage `json:"offers"`
	Answer   json.RawMessage `json:"answer"`
	ToPeerID string          `json:"to_peer_id"`
	OfferID  string          `json:"offer_id"`
}

func (tr *crossingTracker) send(c *websocket.Conn, m map[string]any) {
	b, _ := json.Marshal(m)
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		tr.t.Logf("crossing tracker: write: %v", err)
	}
}

func (tr *crossingTracker) handle(c *websocket.Conn, msg []byte) {
	var a announce
	if err := json.Unmarshal(msg, &a); err != nil || a.Action != "announce" || len(a.PeerID) == 0 {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.conns[a.PeerID] = c
	if len(a.Answer) > 0 {
		if to := tr.conns[a.ToPeerID]; to != nil {
			tr.events = append(tr.events, "answer")
			tr.send(to, map[string]any{"action": "announce", "info_hash": a.InfoHash, "peer_id": a.PeerID, "offer_id": a.OfferID, "answer": a.Answer})
		}
		return
	}
	tr.send(c, map[string]any{"action": "announce", "info_hash": a.InfoHash, "interval": 120, "complete": 0, "incomplete": len(tr.conns)})
	var offers []struct {
		OfferID string          `json:"offer_id"`
		Offer   json.RawMessage `json:"offer"`
	}
	if json.Unmarshal(a.Offers, &offers) != nil || len(offers) == 0 {
		return
	}
	if _, ok := tr.offers[a.PeerID]; !ok {
		tr.offers[a.PeerID], _ = json.Marshal(map[string]any{"action": "announce", "info_hash": a.InfoHash, "peer_id": a.PeerID, "offer_id": offers[0].OfferID, "offer": offers[0].Offer})
	}
	if tr.crossed || len(tr.offers) < 2 {
		return
	}
	tr.crossed = true
	// Both offers go out back to back, before either peer could answer.
	for from, m := range tr.offers {
		for to, conn := range tr.conns {
			if to != from {
				tr.events = append(tr.events, "offer")
				if err := conn.WriteMessage(websocket.TextMessage, m); err != nil {
					tr.t.Logf("crossing tracker: write: %v", err)
				}
			}
		}
	}
}

func (tr *crossingTracker) log() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.events...)
}

// Crossing offers in real Chromium: two pages whose offers the tracker
// makes cross end up with one connection between them, the same on both
// sides (PROTOCOL.md: the one whose offerer has the smaller peer_id), which
// stays up and carries data: b, a few seconds behind a, takes from it.
func TestCrossingOffers(t *testing.T) {
	RequireNetns(t)
	e := StartEdge(t)
	ws, tr := startCrossingTracker(t)
	page := demoPage(e) + "&announce=" + url.QueryEscape(ws)
	a := NewBrowser(t).Open("a", page)
	a.WaitFor("paDemo.metrics.startupMs >= 0", 30*time.Second)
	time.Sleep(3 * time.Second) // b plays behind a and takes from it
	b := NewBrowser(t).Open("b", page)
	for _, p := range []*Page{a, b} {
		p.WaitFor("paDemo.client.stats().peersConnected === 1", 30*time.Second)
	}
	// At least one answer (the loser's offer may be refused unanswered, or
	// its answer may come after both pages have their connection).
	if got := tr.log(); len(got) < 3 || got[0] != "offer" || got[1] != "offer" {
		t.Fatalf("tracker relayed %v, want both offers before any answer", got)
	}
	// Long enough for the losing connection's close to reach both sides.
	time.Sleep(3 * time.Second)
	for _, p := range []*Page{a, b} {
		var r struct {
			Peers     int     `json:"peers"`
			Up        int     `json:"up"`
			Down      int     `json:"down"`
			Exchanged float64 `json:"exchanged"`
		}
		p.MustEval(`(() => { const s = paDemo.client.stats(); const ev = paDemo.peerEvents;
			return {peers: s.peersConnected, up: ev.filter(e => e.state === "connected").length,
				down: ev.filter(e => e.state !== "connected").length, exchanged: s.bytesFromPeers + s.bytesUploaded}; })()`, &r)
		t.Logf("%s: %+v", p.name, r)
		if r.Peers != 1 || r.Up-r.Down != 1 {
			t.Errorf("%s: %d neighbors, %d connected and %d disconnected events: want one connection that stayed", p.name, r.Peers, r.Up, r.Down)
		}
	}
	// Both play to the end over the kept connection and the edge.
	var fromPeers float64
	for _, p := range []*Page{a, b} {
		p.WaitFor("paDemo.metrics.ended || paDemo.metrics.error", playTimeout)
		s := state(p)
		t.Logf("%s: %+v", p.name, s)
		checkPlayed(t, p.name, s)
		if s.Stats.PeersConnected != 1 {
			t.Errorf("%s: %d neighbors at the end, want 1", p.name, s.Stats.PeersConnected)
		}
		fromPeers = s.Stats.BytesFromPeers
	}
	if fromPeers == 0 {
		t.Errorf("b took nothing from a over the kept connection")
	}
}
