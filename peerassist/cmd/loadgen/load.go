package main

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// connsPerIP is how many clients share one source address (under the
// coordinator's default per-IP cap of 64).
const connsPerIP = 50

// sourceAddr spreads clients over 127.0.x.y, connsPerIP per address, so
// per-IP caps hold and each address has ports to spare.
func sourceAddr(i int) netip.Addr {
	j := i / connsPerIP
	return netip.AddrFrom4([4]byte{127, 0, byte(1 + j/200), byte(1 + j%200)})
}

func peerID(i int) signal.ID {
	var id signal.ID
	copy(id[:], fmt.Sprintf("-LG0001-%012d", i))
	return id
}

func swarmID(i, swarmSize int) signal.ID {
	var id signal.ID
	copy(id[:], fmt.Sprintf("loadgen-swarm-%06d", i/swarmSize))
	return id
}

// sdp builds a session description object of about n bytes, the size of a
// real non-trickle WebRTC data-channel offer.
func sdp(kind string, n int) []byte {
	body := "v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0\\r\\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\nc=IN IP4 0.0.0.0\\r\\na=ice-ufrag:loadgen\\r\\n" +
		"a=ice-pwd:loadgenloadgenloadgenlo\\r\\na=fingerprint:sha-256 "
	for len(body) < n-60 {
		body += "AB:"
	}
	return []byte(`{"type":"` + kind + `","sdp":"` + body + `\r\n"}`)
}

// dialAll connects n clients with at most inflight handshakes at a time.
func dialAll(ctx context.Context, u *url.URL, first, n, inflight int) ([]*wsConn, error) {
	conns := make([]*wsConn, n)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialWS(ctx, u, sourceAddr(first+i), 4096)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d from %s: %w", first+i, sourceAddr(first+i), err)
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, firstErr
	}
	return conns, nil
}

// idleResult is the memory phase's outcome.
type idleResult struct {
	peers            int
	rssBase, rssIdle int64
}

func (r idleResult) perPeerBytes() float64 { return float64(r.rssIdle-r.rssBase) / float64(r.peers) }

// idlePhase connects peers clients, each announcing once (joining a swarm,
// getting its reply), and measures the server's RSS before and after.
func idlePhase(ctx context.Context, u *url.URL, pid, peers, swarmSize int, settle time.Duration) (idleResult, []*wsConn, error) {
	res := idleResult{peers: peers}
	var err error
	if res.rssBase, err = rssBytes(pid); err != nil {
		return res, nil, err
	}
	conns, err := dialAll(ctx, u, 0, peers, 64)
	if err != nil {
		return res, nil, err
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 64)
	for i, c := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req := signal.Request{Action: signal.ActionAnnounce, InfoHash: swarmID(i, swarmSize), PeerID: peerID(i),
				Event: signal.EventStarted, NumWant: 0, Left: 1 << 20, Uploaded: 0, Downloaded: 0, Have: -1, Offers: []signal.Offer{}}
			_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
			var resp signal.Response
			if c.writeText(req.AppendJSON(nil)) != nil {
				failed.Add(1)
				return
			}
			msg, err := c.readMessage()
			if err != nil || signal.ParseResponse(msg, &resp) != nil || resp.Kind != signal.KindAnnounce {
				failed.Add(1)
			}
			_ = c.nc.SetDeadline(time.Time{})
			// Idle from now on: drop the client's buffers; the socket stays.
			c.in, c.out = nil, nil
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		closeAll(conns)
		return res, nil, fmt.Errorf("%d of %d idle peers got no announce reply", n, peers)
	}
	time.Sleep(settle)
	if res.rssIdle, err = rssBytes(pid); err != nil {
		closeAll(conns)
		return res, nil, err
	}
	return res, conns, nil
}

func closeAll(conns []*wsConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// tpClient announces with offers as fast as the server replies and answers
// every offer it receives. Its counters are atomic (read by the phase);
// everything else belongs to its goroutine.
type tpClient struct {
	ws      *wsConn
	req     signal.Request
	resp    signal.Response
	buf     []byte
	rng     uint64
	offerSD []byte
	answSD  []byte

	offers, answers, replies, failures atomic.Int64

	// reasons counts failures by text (the server's failure reason, or
	// the parse error), for the report.
	reasonsMu sync.Mutex
	reasons   map[string]int64
}

// fail counts one failure and its reason.
func (c *tpClient) fail(reason string) {
	c.failures.Add(1)
	c.reasonsMu.Lock()
	if c.reasons == nil {
		c.reasons = map[string]int64{}
	}
	c.reasons[reason]++
	c.reasonsMu.Unlock()
}

func (c *tpClient) announce(ev signal.Event, n int) error {
	c.req.Event = ev
	c.req.Answer = nil
	c.req.NumWant = n
	c.req.Offers = c.req.Offers[:0]
	for range n {
		var id signal.ID
		for j := 0; j < len(id); j += 8 {
			c.rng ^= c.rng << 13
			c.rng ^= c.rng >> 7
			c.rng ^= c.rng << 17
			for k := 0; k < 8 && j+k < len(id); k++ {
				id[j+k] = byte(c.rng >> (8 * k))
			}
		}
		c.req.Offers = append(c.req.Offers, signal.Offer{ID: id, SDP: c.offerSD})
	}
	c.buf = c.req.AppendJSON(c.buf[:0])
	return c.ws.writeText(c.buf)
}

func (c *tpClient) answer() error {
	a := signal.Request{Action: signal.ActionAnnounce, InfoHash: c.resp.InfoHash, PeerID: c.req.PeerID, NumWant: -1,
		Left: -1, Uploaded: -1, Downloaded: -1, Have: -1, Answer: c.answSD, ToPeerID: c.resp.PeerID, OfferID: c.resp.OfferID}
	c.buf = a.AppendJSON(c.buf[:0])
	return c.ws.writeText(c.buf)
}

func (c *tpClient) run(offers int, stop *atomic.Bool) {
	if c.announce(signal.EventStarted, offers) != nil {
		return
	}
	for {
		msg, err := c.ws.readMessage()
		if err != nil {
			return
		}
		if err := signal.ParseResponse(msg, &c.resp); err != nil {
			c.fail("unparsable reply: " + err.Error())
			continue
		}
		switch c.resp.Kind {
		case signal.KindAnnounce:
			c.replies.Add(1)
			if !stop.Load() && c.announce(signal.EventUpdate, offers) != nil {
				return
			}
		case signal.KindOffer:
			c.offers.Add(1)
			if c.answer() != nil {
				return
			}
		case signal.KindAnswer:
			c.answers.Add(1)
		case signal.KindFailure:
			c.fail(c.resp.Failure)
			if c.resp.Action == signal.ActionAnnounce && !strings.Contains(c.resp.Failure, "offer") && !stop.Load() {
				time.Sleep(10 * time.Millisecond)
				if c.announce(signal.EventUpdate, offers) != nil {
					return
				}
			}
		}
	}
}

// tpResult is the throughput phase's outcome over the measured window.
type tpResult struct {
	clients, offersPerAnnounce int
	window                     time.Duration
	offers, answers, replies   int64
	failures                   int64
	serverCPU, loadgenCPU      float64 // seconds within the window
	// reasons counts the failures of the whole phase (warm-up included)
	// by reason.
	reasons map[string]int64
}

func (r tpResult) relayed() int64 { return r.offers + r.answers }
func (r tpResult) perSecond() float64 {
	return float64(r.relayed()) / r.window.Seconds()
}
func (r tpResult) perCPUSecond() float64 {
	if r.serverCPU == 0 {
		return 0
	}
	return float64(r.relayed()) / r.serverCPU
}

// throughputPhase runs clients announcing with offers and answering, and
// counts the offers and answers they receive (relayed messages) during the
// window after warmup.
func throughputPhase(ctx context.Context, u *url.URL, pid, clients, offers, swarmSize int, warmup, window time.Duration) (tpResult, error) {
	res := tpResult{clients: clients, offersPerAnnounce: offers}
	conns, err := dialAll(ctx, u, 0, clients, 64)
	if err != nil {
		return res, err
	}
	offerSD, answSD := sdp("offer", 500), sdp("answer", 500)
	cs := make([]*tpClient, clients)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, ws := range conns {
		c := &tpClient{ws: ws, rng: uint64(i)*0x9E3779B97F4A7C15 + 1, offerSD: offerSD, answSD: answSD,
			req: signal.Request{Action: signal.ActionAnnounce, InfoHash: swarmID(i, swarmSize), PeerID: peerID(i),
				Left: 1 << 20, Uploaded: 0, Downloaded: 0, Have: -1}}
		cs[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(offers, &stop)
		}()
	}
	sum := func() (o, a, r, f int64) {
		for _, c := range cs {
			o += c.offers.Load()
			a += c.answers.Load()
			r += c.replies.Load()
			f += c.failures.Load()
		}
		return
	}
	time.Sleep(warmup)
	o0, a0, r0, f0 := sum()
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return res, err
	}
	self0, _ := cpuSeconds(selfPID)
	t0 := time.Now()
	time.Sleep(window)
	o1, a1, r1, f1 := sum()
	res.window = time.Since(t0)
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return res, err
	}
	self1, _ := cpuSeconds(selfPID)
	stop.Store(true)
	time.Sleep(200 * time.Millisecond)
	closeAll(conns)
	wg.Wait()
	res.offers, res.answers, res.replies, res.failures = o1-o0, a1-a0, r1-r0, f1-f0
	for _, c := range cs {
		for r, n := range c.reasons {
			if res.reasons == nil {
				res.reasons = map[string]int64{}
			}
			res.reasons[r] += n
		}
	}
	res.serverCPU, res.loadgenCPU = cpu1-cpu0, self1-self0
	return res, nil
}
