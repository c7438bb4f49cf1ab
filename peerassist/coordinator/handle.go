package coordinator

import (
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/peerassist/edgebox/edge/rawsock"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// handlerCtx is the scratch state of one reading goroutine: the decoded
// request, the frames to send once the coordinator's lock is released, and
// the random source of routing. Create it with Coordinator.newHandlerCtx;
// it is not safe for concurrent use.
type handlerCtx struct {
	// batched: frames wait for flush at the end of an epoll batch (so one
	// system call carries all of a batch's frames to one socket); else they
	// go out after each message.
	batched bool
	frames  [][]byte

	req  signal.Request
	resp signal.Response
	// Frames are built in chunks that are never reallocated, so a batch's
	// frames cost no copying however many there are.
	cur    []byte   // the chunk being filled
	chunks [][]byte // chunks filled this batch (cur included)
	free   [][]byte // chunks to reuse
	sends  []pendingSend
	seq    int32
	ss     rawsock.Scratch
	// flush's grouping of sends by socket.
	groups map[uint64]group
	next   []int32
	heads  []int32
	rng    *rand.Rand
	cands  []*peer
	perm   []int32
	gen    uint64
}

type pendingSend struct {
	c     *conn
	id    uint64 // c.id, for grouping by socket
	seq   int32  // queue order
	frame []byte
}

type group struct{ head, tail int32 }

// chunkBytes is the size of a frame-building chunk.
const chunkBytes = 64 << 10

// room makes sure the current chunk has at least n free bytes.
func (h *handlerCtx) room(n int) {
	if cap(h.cur)-len(h.cur) >= n {
		return
	}
	var c []byte
	if k := len(h.free); k > 0 && n <= chunkBytes {
		c = h.free[k-1]
		h.free[k-1] = nil
		h.free = h.free[:k-1]
	} else {
		c = make([]byte, 0, max(chunkBytes, n))
	}
	h.chunks = append(h.chunks, c)
	h.cur = c
}

var zeroHeader [maxFrameHeader]byte

// maxFramesPerCall stays under the kernel's IOV_MAX (1024).
const maxFramesPerCall = 512

// send queues resp as a text frame to c; frames go out in flush.
func (h *handlerCtx) send(c *conn, resp *signal.Response) {
	// Room for the frame: the SDP and strings, plus IDs that may expand
	// six times when escaped, plus the rest.
	h.room(maxFrameHeader + len(resp.SDP) + len(resp.Failure) + len(resp.Session) + 6*3*signal.IDLen + 512 +
		len(resp.Files)*(6*signal.IDLen+80))
	h.cur = append(h.cur, zeroHeader[:]...)
	payload := len(h.cur)
	h.cur = resp.AppendJSON(h.cur)
	h.finish(c, payload)
}

// sendRelay queues an offer or answer relay built from JSON the
// coordinator already holds (see signal.AppendRelay).
func (h *handlerCtx) sendRelay(c *conn, answer bool, sdp, offerID, peerID, infoHash []byte) {
	h.room(maxFrameHeader + len(sdp) + len(offerID) + len(peerID) + len(infoHash) + 80)
	h.cur = append(h.cur, zeroHeader[:]...)
	payload := len(h.cur)
	h.cur = signal.AppendRelay(h.cur, answer, sdp, offerID, peerID, infoHash)
	h.finish(c, payload)
}

// finish writes the header of the frame whose payload starts at payload
// (maxFrameHeader bytes were reserved before it) and queues it for c.
func (h *handlerCtx) finish(c *conn, payload int) {
	var hdr [maxFrameHeader]byte
	s := frameHeader(hdr[:], opText, len(h.cur)-payload)
	start := payload - (maxFrameHeader - s)
	copy(h.cur[start:payload], hdr[s:])
	h.sends = append(h.sends, pendingSend{c: c, id: c.id, seq: h.seq, frame: h.cur[start:len(h.cur):len(h.cur)]})
	h.seq++
	if len(h.chunks) > 0 && cap(h.cur) != cap(h.chunks[len(h.chunks)-1]) {
		// A scrape reply bigger than estimated outgrew its chunk: track
		// the new array so it is released with the batch.
		h.chunks = append(h.chunks, h.cur)
	}
}

// failure queues a "failure reason" reply.
func (h *handlerCtx) failure(c *conn, action signal.Action, infoHash *signal.ID, text string) {
	h.resp = signal.Response{Kind: signal.KindFailure, Action: action, Failure: text}
	if infoHash != nil {
		h.resp.InfoHash, h.resp.HasInfoHash = *infoHash, true
	}
	h.send(c, &h.resp)
}

// endMessage is called after each message. A batch flushes early once it
// has filled flushChunks chunks, which bounds its memory.
func (h *handlerCtx) endMessage() {
	if !h.batched || len(h.chunks) >= flushChunks {
		h.flush()
	}
}

// flushChunks is how many chunks a batch may fill before it is flushed.
const flushChunks = 32

// flush writes the queued frames, those of one socket together, in the
// order they were queued. Called without Coordinator.mu held.
func (h *handlerCtx) flush() {
	switch len(h.sends) {
	case 0:
	case 1:
		h.frames = append(h.frames[:0], h.sends[0].frame)
		h.sends[0].c.writeFrames(h.frames, &h.ss)
	default:
		// Chain each socket's frames in queue order (next links), then one
		// write per socket.
		if h.groups == nil {
			h.groups = map[uint64]group{}
		}
		h.next = h.next[:0]
		h.heads = h.heads[:0]
		for i := range h.sends {
			h.next = append(h.next, -1)
			id := h.sends[i].id
			if g, ok := h.groups[id]; ok {
				h.next[g.tail] = int32(i)
				g.tail = int32(i)
				h.groups[id] = g
			} else {
				h.groups[id] = group{head: int32(i), tail: int32(i)}
				h.heads = append(h.heads, int32(i))
			}
		}
		for _, i := range h.heads {
			c := h.sends[i].c
			h.frames = h.frames[:0]
			for ; i >= 0; i = h.next[i] {
				if len(h.frames) == maxFramesPerCall {
					c.writeFrames(h.frames, &h.ss)
					h.frames = h.frames[:0]
				}
				h.frames = append(h.frames, h.sends[i].frame)
			}
			c.writeFrames(h.frames, &h.ss)
		}
		clear(h.groups)
	}
	clear(h.frames)
	clear(h.sends)
	h.sends = h.sends[:0]
	h.seq = 0
	// Recycle the batch's chunks (a few; the rest go to the collector).
	for i, c := range h.chunks {
		if cap(c) == chunkBytes && len(h.free) < maxFreeChunks {
			h.free = append(h.free, c[:0])
		}
		h.chunks[i] = nil
	}
	h.chunks = h.chunks[:0]
	h.cur = nil
	clear(h.cands)
	h.cands = h.cands[:0]
}

// maxFreeChunks bounds the chunks a handler keeps between batches.
const maxFreeChunks = flushChunks

// handleMessage decodes and handles one client message. It returns false
// when the message was malformed.
func (co *Coordinator) handleMessage(c *conn, h *handlerCtx, msg []byte) bool {
	req := &h.req
	if err := signal.ParseRequest(msg, req); err != nil {
		co.tel.reject(reasonMalformed)
		var ih *signal.ID
		if req.Action == signal.ActionAnnounce && req.InfoHash != (signal.ID{}) {
			ih = &req.InfoHash
		}
		h.failure(c, req.Action, ih, err.Error())
		return false
	}
	switch req.Action {
	case signal.ActionAnnounce:
		co.announce(c, h)
	case signal.ActionScrape:
		co.scrape(c, h)
	}
	return true
}

// refuse queues a failure reply about the current announce and counts it.
func (h *handlerCtx) refuse(co *Coordinator, c *conn, reason rejectReason, text string) {
	co.tel.reject(reason)
	h.failure(c, signal.ActionAnnounce, &h.req.InfoHash, text)
}

func (co *Coordinator) announce(c *conn, h *handlerCtx) {
	req := &h.req
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return
	}
	c.lastInfoHash = req.InfoHash

	st := co.set.Load()
	// The site: the page's Origin (or Host) unless the client names one.
	site := c.site
	if req.Site != "" {
		named := st.sites.byName[req.Site]
		switch {
		case named == nil:
			h.refuse(co, c, reasonBadSite, "unknown x_site "+strconv.Quote(req.Site))
			return
		case c.origin != "" && c.site != nil && named != c.site:
			h.refuse(co, c, reasonBadSite, "x_site "+strconv.Quote(req.Site)+" does not match the page's origin")
			return
		}
		site = named
	}
	if site != nil && !site.enabled {
		h.refuse(co, c, reasonBadSite, "peer assistance is disabled for site "+strconv.Quote(site.name))
		return
	}

	if req.Answer != nil {
		co.relayAnswer(c, h)
		return
	}

	sess := co.sessionFor(c, req.Session, site)
	if req.Caps != nil {
		sess.caps = *req.Caps
	}

	if !c.eligible {
		// Unknown locality, or another region: HTTP only. A normal reply,
		// no peers, offers dropped.
		co.reply(c, h, nil, sess)
		return
	}
	key := swarmKey{region: c.loc.Region, infoHash: req.InfoHash}
	sw := co.swarms[key]
	if until, banned := co.bans[banKey{key, c.ip}]; banned && time.Now().Before(until) {
		h.refuse(co, c, reasonBanned, "dropped from this swarm (bad chunks reported) until "+until.UTC().Format(time.RFC3339))
		return
	}
	var p *peer
	if sw != nil {
		p = sw.peers[req.PeerID]
	}
	if p != nil && p.c != c {
		// The peer_id belongs to another connection: only the same session
		// (a client that reconnected before its old socket timed out) may
		// take it over.
		if req.Session == "" || p.c.sess == nil || p.c.sess.id != req.Session {
			h.refuse(co, c, reasonPeerIDInUse, "peer_id is in use by another connection")
			return
		}
		co.removePeer(p, "taken over")
		p = nil
	}
	if p == nil && sw != nil {
		for _, q := range c.peers {
			if q.sw == sw {
				h.refuse(co, c, reasonPeerIDChanged, "one peer_id per swarm per connection")
				return
			}
		}
	}

	if req.Event == signal.EventStopped {
		if p != nil {
			co.removePeer(p, "stopped")
		}
		co.reply(c, h, co.swarms[key], sess)
		return
	}

	if sw == nil {
		sw = newSwarm(key)
		co.swarms[key] = sw
	}
	if p == nil {
		if len(c.peers) >= st.cfg.MaxSwarmsPerConnection {
			if len(sw.peers) == 0 && len(sw.accused) == 0 {
				delete(co.swarms, key)
			}
			h.refuse(co, c, reasonTooManySwarms, "too many swarms on one connection (at most "+
				strconv.Itoa(st.cfg.MaxSwarmsPerConnection)+")")
			return
		}
		p = &peer{id: req.PeerID, idHash: idHash(req.PeerID), idJSON: req.PeerID.AppendJSON(nil), sw: sw, c: c, site: site, have: max(req.Have, 0)}
		p.complete, _ = seedState(req)
		sw.join(p)
		c.peers = append(c.peers, p)
		co.byRegion[key.region]++
		co.tel.span("peerassist.join", c, sw, attribute.String("peerassist.peer_id", p.id.String()))
	} else {
		// The site of its latest announce (a reload may have moved it).
		p.site = site
		if req.Have >= 0 {
			p.have = req.Have
		}
		if seed, known := seedState(req); known {
			sw.setComplete(p, seed)
		}
	}
	sess.swarm.Store(sw)

	if req.Report != nil {
		co.applyReport(c, h, sess, p, req.Report)
		if p.sw == nil {
			// The report got this peer dropped (false accuser).
			return
		}
	}

	co.reply(c, h, sw, sess)

	if len(req.Offers) > 0 {
		co.relayOffers(c, h, p, st)
	}
}

// seedState says what an announce tells of its peer: a seed when "left"
// is 0, a leech when it is more (a peer that completed one object and
// wants another is a leech again), a seed on "completed" without "left";
// otherwise (no "left", no "completed") unknown: a new peer is a leech, a
// known one keeps its state.
func seedState(req *signal.Request) (seed, known bool) {
	switch {
	case req.Left == 0:
		return true, true
	case req.Left > 0:
		return false, true
	case req.Event == signal.EventCompleted:
		return true, true
	}
	return false, false
}

// reply queues the announce reply.
func (co *Coordinator) reply(c *conn, h *handlerCtx, sw *swarm, sess *session) {
	h.resp = signal.Response{Kind: signal.KindAnnounce, Action: signal.ActionAnnounce, InfoHash: h.req.InfoHash,
		HasInfoHash: true, Interval: co.set.Load().intervalSec, Session: sess.id}
	if sw != nil {
		h.resp.Complete, h.resp.Incomplete = int64(sw.complete), int64(sw.incomplete())
	}
	h.send(c, &h.resp)
}

// relayOffers sends the announce's offers to the best-ranked peers.
func (co *Coordinator) relayOffers(c *conn, h *handlerCtx, p *peer, st *settings) {
	req := &h.req
	want := min(len(req.Offers), st.cfg.MaxOffers)
	if req.NumWant >= 0 {
		want = min(want, req.NumWant)
	}
	co.markGen++
	cands := h.pick(p.sw, p, want, co.markGen)
	co.tel.offers.Add(int64(len(cands)))
	nowSec := co.nowSec()
	for i, t := range cands {
		o := &req.Offers[i]
		h.sendRelay(t.c, false, o.SDP, o.RawID, p.idJSON, p.sw.ihJSON)
		t.addPending(pendingOffer{offerID: o.ID, from: p.id, fromC: c.id, atSec: nowSec}, st.cfg.MaxPendingOffers)
		t.remember(p)
		p.remember(t)
		if co.tel.sampleRelay(h.rng) {
			co.tel.span("peerassist.relay.offer", c, p.sw,
				attribute.String("peerassist.peer_id", p.id.String()),
				attribute.String("peerassist.to_peer_id", t.id.String()),
				attribute.String("peerassist.tier", region.Compare(c.loc, t.c.loc).String()))
		}
	}
}

func (co *Coordinator) nowSec() uint32 { return uint32(time.Since(co.start) / time.Second) }

// addPending remembers an offer relayed to t, forgetting the oldest beyond
// the cap.
func (t *peer) addPending(po pendingOffer, maxPending int) {
	if len(t.pending) >= maxPending {
		copy(t.pending, t.pending[1:])
		t.pending = t.pending[:len(t.pending)-1]
	}
	t.pending = append(t.pending, po)
}

// relayAnswer relays an answer, but only from the peer bound to this
// connection, to the peer whose offer was relayed to it, within
// offer_max_age.
func (co *Coordinator) relayAnswer(c *conn, h *handlerCtx) {
	req := &h.req
	if !c.eligible {
		h.refuse(co, c, reasonUnsolicitedAnswer, "answer to an offer that was not relayed to you")
		return
	}
	key := swarmKey{region: c.loc.Region, infoHash: req.InfoHash}
	sw := co.swarms[key]
	var q *peer
	if sw != nil {
		q = sw.peers[req.PeerID]
	}
	if q == nil || q.c != c {
		if q != nil {
			h.refuse(co, c, reasonPeerIDInUse, "peer_id is in use by another connection")
		} else {
			h.refuse(co, c, reasonUnsolicitedAnswer, "answer from a peer_id that has not announced on this connection")
		}
		return
	}
	idx := -1
	for i := range q.pending {
		if q.pending[i].offerID == req.OfferID && q.pending[i].from == req.ToPeerID {
			idx = i
			break
		}
	}
	if idx < 0 {
		h.refuse(co, c, reasonUnsolicitedAnswer, "answer to an offer that was not relayed to you")
		return
	}
	po := q.pending[idx]
	// Keep the capacity: a peer that answers gets offers again soon. The
	// sweeper drops empty tables of quiet peers.
	q.pending = append(q.pending[:idx], q.pending[idx+1:]...)
	if maxAge := co.set.Load().offerMaxAge; time.Duration(co.nowSec()-po.atSec)*time.Second > maxAge {
		h.refuse(co, c, reasonExpiredOffer, "answer to an offer older than "+maxAge.String())
		return
	}
	target := sw.peers[req.ToPeerID]
	if target == nil || target.c.id != po.fromC {
		co.tel.reject(reasonOffererGone)
		return
	}
	h.sendRelay(target.c, true, req.Answer, req.RawOfferID, q.idJSON, sw.ihJSON)
	co.tel.answers.Add(1)
	if co.tel.sampleRelay(h.rng) {
		co.tel.span("peerassist.relay.answer", c, sw,
			attribute.String("peerassist.peer_id", q.id.String()),
			attribute.String("peerassist.to_peer_id", target.id.String()))
	}
}

func (co *Coordinator) scrape(c *conn, h *handlerCtx) {
	req := &h.req
	if len(req.InfoHashes) == 0 {
		co.tel.reject(reasonMalformed)
		h.failure(c, signal.ActionScrape, nil, "invalid info_hash: scrape needs one or more info_hash")
		return
	}
	h.resp = signal.Response{Kind: signal.KindScrape, Action: signal.ActionScrape, MinRequestInterval: co.set.Load().intervalSec,
		Files: h.resp.Files[:0]}
	co.mu.Lock()
	for _, ih := range req.InfoHashes {
		f := signal.ScrapeFile{InfoHash: ih}
		if c.eligible {
			if sw := co.swarms[swarmKey{c.loc.Region, ih}]; sw != nil {
				f.Complete, f.Incomplete, f.Downloaded = int64(sw.complete), int64(sw.incomplete()), int64(sw.complete)
			}
		}
		h.resp.Files = append(h.resp.Files, f)
	}
	co.mu.Unlock()
	h.send(c, &h.resp)
}

// sessionFor returns the connection's session, creating it on the first
// announce or resuming the one the client names when it is detached.
// Called with co.mu held.
func (co *Coordinator) sessionFor(c *conn, want string, site *siteInfo) *session {
	if c.sess != nil {
		return c.sess
	}
	if want != "" {
		if s := co.lookupSession(want); s != nil && s.c == nil {
			s.c = c
			c.sess = s
			s.loc = c.loc
			return s
		}
	}
	s := &session{id: newSessionID(), c: c, loc: c.loc, started: time.Now()}
	if site != nil {
		s.site = site.name
	}
	co.sessions.Store(s.id, s)
	co.sessionCount.Add(1)
	c.sess = s
	return s
}

// removePeer takes p out of its swarm. Called with co.mu held.
func (co *Coordinator) removePeer(p *peer, why string) {
	sw := p.sw
	if sw == nil {
		return
	}
	sw.leave(p)
	p.sw = nil
	p.pending = nil
	for i, q := range p.c.peers {
		if q == p {
			last := len(p.c.peers) - 1
			p.c.peers[i] = p.c.peers[last]
			p.c.peers[last] = nil
			p.c.peers = p.c.peers[:last]
			break
		}
	}
	co.byRegion[sw.key.region]--
	if co.byRegion[sw.key.region] <= 0 {
		delete(co.byRegion, sw.key.region)
	}
	if len(sw.peers) == 0 && len(sw.accused) == 0 {
		delete(co.swarms, sw.key)
	}
	co.tel.span("peerassist.leave", p.c, sw, attribute.String("peerassist.peer_id", p.id.String()),
		attribute.String("peerassist.reason", why))
}

// onClosed removes a released connection: close means stopped.
func (co *Coordinator) onClosed(c *conn) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if _, ok := co.conns[c]; !ok {
		return
	}
	delete(co.conns, c)
	for len(c.peers) > 0 {
		co.removePeer(c.peers[len(c.peers)-1], "closed")
	}
	if s := c.sess; s != nil && s.c == c {
		s.c = nil
		s.detachedAt = time.Now()
	}
	if n := co.perIP[c.ip] - 1; n > 0 {
		co.perIP[c.ip] = n
	} else {
		delete(co.perIP, c.ip)
	}
}
