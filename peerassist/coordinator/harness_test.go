package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner sleeps out its idle period after
		// Shutdown, and its Date-header ticker is process-wide.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// fakeLocator is a region table over loopback addresses:
//
//	127.1.0.0/16  region paris, ISP orange (AS 1)
//	127.2.0.0/16  region paris, ISP free   (AS 2)
//	127.3.0.0/16  region lyon,  ISP orange (AS 1)
//	anything else unknown
//
// with /24 access subnets.
func fakeLocate(a netip.Addr) region.Locality {
	if !a.Is4() {
		return region.Locality{}
	}
	b := a.As4()
	if b[0] != 127 {
		return region.Locality{}
	}
	var l region.Locality
	switch b[1] {
	case 1:
		l = region.Locality{Known: true, Region: "paris", ISP: "orange", ASN: 1}
	case 2:
		l = region.Locality{Known: true, Region: "paris", ISP: "free", ASN: 2}
	case 3:
		l = region.Locality{Known: true, Region: "lyon", ISP: "orange", ASN: 1}
	default:
		return region.Locality{}
	}
	l.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{127, b[1], 0, 0}), 16)
	l.Subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{127, b[1], b[2], 0}), 24)
	return l
}

type testEdge struct {
	t   *testing.T
	co  *Coordinator
	srv *fasthttp.Server
	url string
}

// testConfig returns peer_assist defaults suited to tests.
func testConfig() config.PeerAssist {
	c := config.DefaultPeerAssist()
	c.RelayTraceRatio = 1
	return c
}

// testSites are the sites of startEdge: video (video.example), open
// (open.example, across ISPs) and off (off.example, peer assistance
// disabled).
func testSites() []config.Site {
	site := config.NewSite("video", "http://origin.invalid")
	site.Hosts = []string{"video.example"}
	open := config.NewSite("open", "http://origin.invalid")
	open.Hosts = []string{"open.example"}
	open.PeerAssist.AllowCrossISP = true
	off := config.NewSite("off", "http://origin.invalid")
	off.Hosts = []string{"off.example"}
	no := false
	off.PeerAssist.Enabled = &no
	return []config.Site{site, open, off}
}

func startEdge(t *testing.T, cfg config.PeerAssist, mod func(*Options)) *testEdge {
	t.Helper()
	o := Options{Config: cfg, Sites: testSites(), Locator: LocatorFunc(fakeLocate), Seed: 1, Pollers: 2,
		Logger:        slog.New(slog.DiscardHandler),
		SweepInterval: 50 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	co, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/pa/v1/announce" {
			co.Handler(ctx)
			return
		}
		ctx.Error("not found", fasthttp.StatusNotFound)
	}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	e := &testEdge{t: t, co: co, srv: srv, url: "ws://" + ln.Addr().String() + "/pa/v1/announce"}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		// Shutdown misses a Serve that has not begun yet (a test that
		// never connects): the closed listener ends it.
		ln.Close()
		<-done
		co.Close()
	})
	return e
}

type client struct {
	t    *testing.T
	ws   *websocket.Conn
	ip   string
	id   signal.ID
	sess string
	msgs chan []byte // messages read by the reader goroutine
	err  error       // the error that ended it, set before msgs closes
}

// dial connects from source address ip with optional headers.
func (e *testEdge) dial(ip string, hdr http.Header) (*client, *http.Response, error) {
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	ws, resp, err := d.Dial(e.url, hdr)
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: e.t, ws: ws, ip: ip, msgs: make(chan []byte, 1024)}
	copy(c.id[:], fmt.Sprintf("-GO0001-%-12s", strings.ReplaceAll(ip, ".", "")))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err = err
				close(c.msgs)
				return
			}
			c.msgs <- data
		}
	}()
	e.t.Cleanup(func() {
		ws.Close()
		<-done
	})
	return c, resp, nil
}

func (e *testEdge) mustDial(ip string) *client {
	e.t.Helper()
	c, resp, err := e.dial(ip, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial from %s: %v (status %d)", ip, err, status)
	}
	return c
}

func ih(s string) signal.ID {
	var id signal.ID
	copy(id[:], fmt.Sprintf("%-20s", s))
	return id
}

func offerID(n int) signal.ID {
	var id signal.ID
	copy(id[:], fmt.Sprintf("offer-%014d", n))
	return id
}

func (c *client) sendRaw(msg string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("%s: write: %v", c.ip, err)
	}
}

func (c *client) send(r *signal.Request) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, r.AppendJSON(nil)); err != nil {
		c.t.Fatalf("%s: write: %v", c.ip, err)
	}
}

// announce sends an announce for swarm with n offers (offer IDs base..).
func (c *client) announce(swarm signal.ID, ev signal.Event, offers int, base int, mod func(*signal.Request)) {
	c.t.Helper()
	r := signal.Request{Action: signal.ActionAnnounce, InfoHash: swarm, PeerID: c.id, Event: ev, NumWant: offers,
		Left: -1, Uploaded: 0, Downloaded: 0, Have: -1}
	for i := range offers {
		r.Offers = append(r.Offers, signal.Offer{ID: offerID(base + i), SDP: []byte(`{"type":"offer","sdp":"v=0 from ` + c.ip + `"}`)})
	}
	if r.Offers == nil && offers == 0 {
		r.Offers = []signal.Offer{}
	}
	if mod != nil {
		mod(&r)
	}
	c.send(&r)
}

var errSilence = errors.New("no message")

func (c *client) recv(timeout time.Duration) (*signal.Response, error) {
	var data []byte
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return nil, c.err
		}
		data = m
	case <-time.After(timeout):
		return nil, errSilence
	}
	var r signal.Response
	if err := signal.ParseResponse(data, &r); err != nil {
		return nil, fmt.Errorf("ParseResponse(%s): %w", data, err)
	}
	r.SDP = append([]byte(nil), r.SDP...)
	return &r, nil
}

func (c *client) mustRecv(kind signal.Kind) *signal.Response {
	c.t.Helper()
	r, err := c.recv(5 * time.Second)
	if err != nil {
		c.t.Fatalf("%s: waiting for %v: %v", c.ip, kind, err)
	}
	if r.Kind != kind {
		c.t.Fatalf("%s: got %v (%q), want %v", c.ip, r.Kind, r.Failure, kind)
	}
	if r.Session != "" {
		c.sess = r.Session
	}
	return r
}

// expectNothing checks that no message arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	r, err := c.recv(d)
	if err == nil {
		c.t.Fatalf("%s: got unexpected %v message (peer %x, failure %q)", c.ip, r.Kind, r.PeerID, r.Failure)
	}
	if err != errSilence {
		c.t.Fatalf("%s: expected silence, got %v", c.ip, err)
	}
}

// closed waits for the server to close the connection and returns the
// close error.
func (c *client) closed(timeout time.Duration) error {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return c.err
			}
		case <-deadline:
			c.t.Fatalf("%s: connection still open after %v", c.ip, timeout)
		}
	}
}

// join announces started with no offers and reads the reply.
func (c *client) join(swarm signal.ID) *signal.Response {
	c.t.Helper()
	c.announce(swarm, signal.EventStarted, 0, 0, nil)
	return c.mustRecv(signal.KindAnnounce)
}

// answer answers an offer it received.
func (c *client) answer(off *signal.Response) {
	c.t.Helper()
	r := signal.Request{Action: signal.ActionAnnounce, InfoHash: off.InfoHash, PeerID: c.id, NumWant: -1, Left: -1,
		Uploaded: -1, Downloaded: -1, Have: -1, Answer: []byte(`{"type":"answer","sdp":"v=0 from ` + c.ip + `"}`),
		ToPeerID: off.PeerID, OfferID: off.OfferID}
	c.send(&r)
}
