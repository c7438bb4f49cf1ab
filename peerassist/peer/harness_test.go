package peer

// Test fakes: an edge (objects with Range, manifests, byte accounting) and a
// tracker (WebTorrent offer/answer relay with groups standing for ISPs).
// They are real servers on loopback; they stand in for package edge and the
// coordinator in unit tests of this package.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/manifest"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// fakeEdge serves /bytes/{n} (the demo origin's deterministic bytes) with
// Range, and /pa/v1/manifest, counting the body bytes it sends per client
// address.
type fakeEdge struct {
	srv        *httptest.Server
	chunkBytes int

	mu        sync.Mutex
	manifests map[string][]byte
	served    map[string]int64 // by client IP
	sessions  map[string]int64 // by X-PA-Session
	urgent    int
}

func newFakeEdge(t testing.TB, chunkBytes int) *fakeEdge {
	e := &fakeEdge{chunkBytes: chunkBytes, manifests: map[string][]byte{}, served: map[string]int64{}, sessions: map[string]int64{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEdge) URL() string { return e.srv.URL }

func objectSize(path string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(path, "/bytes/"), 10, 64)
	return n, strings.HasPrefix(path, "/bytes/") && err == nil && n >= 0 && n <= 1<<30
}

func (e *fakeEdge) manifest(path string) ([]byte, bool) {
	size, ok := objectSize(path)
	if !ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if m, ok := e.manifests[path]; ok {
		return m, true
	}
	c := demo.NewContent(size, "")
	buf := make([]byte, e.chunkBytes)
	var sums [][32]byte
	for off := int64(0); off < size; off += int64(e.chunkBytes) {
		n := c.Fill(off, buf)
		sums = append(sums, sha256.Sum256(buf[:n]))
	}
	m, _ := json.Marshal(manifest.New(path, xxhash.Sum64String(path), c.ETag(), size, e.chunkBytes, sums))
	e.manifests[path] = m
	return m, true
}

func (e *fakeEdge) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/pa/v1/manifest" {
		m, ok := e.manifest(r.URL.Query().Get("url"))
		if !ok {
			http.Error(w, "no such object", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(m)
		return
	}
	size, ok := objectSize(r.URL.Path)
	if !ok {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	c := demo.NewContent(size, "")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, io.NewSectionReader(c, 0, size))
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e.mu.Lock()
	e.served[host] += cw.n
	e.sessions[r.Header.Get(sessionHeader)] += cw.n
	if r.Header.Get(urgentHeader) == "1" {
		e.urgent++
	}
	e.mu.Unlock()
}

func (e *fakeEdge) servedTo(ip string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.served[ip]
}

func (e *fakeEdge) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, v := range e.served {
		n += v
	}
	return n
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// fakeTracker relays WebTorrent offers and answers between peers of one
// swarm and one group (group(ip): the tests' ISPs), issues x_session, and
// records x_report bad chunks.
type fakeTracker struct {
	srv   *httptest.Server
	group func(netip.Addr) string

	mu      sync.Mutex
	conns   map[signal.ID]*ftConn
	swarms  map[signal.ID]map[signal.ID]*ftConn
	offers  map[signal.ID][2]signal.ID // offer_id -> {offerer, target}
	bad     []signal.BadChunk
	reports map[signal.ID]signal.Report
	nextSID int
	wg      sync.WaitGroup
}

type ftConn struct {
	mu    sync.Mutex
	ws    *websocket.Conn
	group string
	id    signal.ID
}

func (c *ftConn) send(r *signal.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, r.AppendJSON(nil))
}

func newFakeTracker(t testing.TB, group func(netip.Addr) string) *fakeTracker {
	if group == nil {
		group = func(netip.Addr) string { return "" }
	}
	ft := &fakeTracker{group: group, conns: map[signal.ID]*ftConn{}, swarms: map[signal.ID]map[signal.ID]*ftConn{},
		offers: map[signal.ID][2]signal.ID{}, reports: map[signal.ID]signal.Report{}}
	up := websocket.Upgrader{}
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		ft.wg.Add(1)
		go ft.serveConn(&ftConn{ws: ws, group: group(ap.Addr())})
	}))
	t.Cleanup(func() {
		ft.srv.CloseClientConnections()
		ft.srv.Close()
		ft.mu.Lock()
		for _, c := range ft.conns {
			_ = c.ws.Close()
		}
		ft.mu.Unlock()
		ft.wg.Wait()
	})
	return ft
}

func (ft *fakeTracker) URL() string {
	return "ws" + strings.TrimPrefix(ft.srv.URL, "http") + "/pa/v1/announce"
}

func (ft *fakeTracker) serveConn(c *ftConn) {
	defer ft.wg.Done()
	defer func() {
		_ = c.ws.Close()
		ft.mu.Lock()
		if ft.conns[c.id] == c {
			delete(ft.conns, c.id)
			for _, sw := range ft.swarms {
				delete(sw, c.id)
			}
		}
		ft.mu.Unlock()
	}()
	var req signal.Request
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if err := signal.ParseRequest(data, &req); err != nil {
			c.send(&signal.Response{Kind: signal.KindFailure, Failure: err.Error()})
			continue
		}
		ft.handle(c, &req)
	}
}

func (ft *fakeTracker) handle(c *ftConn, req *signal.Request) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	c.id = req.PeerID
	ft.conns[req.PeerID] = c
	if req.Report != nil {
		ft.bad = append(ft.bad, req.Report.BadChunks...)
		r := *req.Report
		r.BadChunks = nil
		ft.reports[req.PeerID] = r
	}
	if req.Answer != nil {
		o, ok := ft.offers[req.OfferID]
		if !ok || o[1] != req.PeerID {
			c.send(&signal.Response{Kind: signal.KindFailure, Failure: "answer to an offer not relayed to you"})
			return
		}
		delete(ft.offers, req.OfferID)
		if to := ft.conns[o[0]]; to != nil {
			to.send(&signal.Response{Kind: signal.KindAnswer, InfoHash: req.InfoHash, PeerID: req.PeerID,
				OfferID: req.OfferID, SDP: append([]byte(nil), req.Answer...)})
		}
		return
	}
	sw := ft.swarms[req.InfoHash]
	if sw == nil {
		sw = map[signal.ID]*ftConn{}
		ft.swarms[req.InfoHash] = sw
	}
	if req.Event == signal.EventStopped {
		delete(sw, req.PeerID)
		return
	}
	sw[req.PeerID] = c
	var others []*ftConn
	for id, o := range sw {
		if id != req.PeerID && o.group == c.group {
			others = append(others, o)
		}
	}
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for i, off := range req.Offers {
		if i >= len(others) {
			break
		}
		ft.offers[off.ID] = [2]signal.ID{req.PeerID, others[i].id}
		others[i].send(&signal.Response{Kind: signal.KindOffer, InfoHash: req.InfoHash, PeerID: req.PeerID,
			OfferID: off.ID, SDP: append([]byte(nil), off.SDP...)})
	}
	sid := req.Session
	if sid == "" {
		ft.nextSID++
		sid = fmt.Sprintf("s%d", ft.nextSID)
	}
	c.send(&signal.Response{Kind: signal.KindAnnounce, InfoHash: req.InfoHash, Interval: 120,
		Complete: 0, Incomplete: int64(len(sw)), Session: sid})
}

func (ft *fakeTracker) badReports() []signal.BadChunk {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]signal.BadChunk(nil), ft.bad...)
}

// pushPolicy sends x_policy to every connected peer.
func (ft *fakeTracker) pushPolicy(pol signal.Policy) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, c := range ft.conns {
		c.send(&signal.Response{Kind: signal.KindPolicy, Policy: &pol})
	}
}

// leakCheck verifies, after every other cleanup of the test ran (servers
// closed, peers closed), that no goroutine is left behind.
func leakCheck(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}
