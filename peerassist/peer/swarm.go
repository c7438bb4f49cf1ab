package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/peerassist/wire"
)

// SwarmID is the info_hash of the swarm named name: the first 20 bytes of
// SHA-256(name), as the browser client computes it. A file's swarm is named
// by its object path and query ("/bytes/1048576"); a stream's by its master
// playlist URL without query ("http://edge:8080/vod/sample/master.m3u8").
func SwarmID(name string) signal.ID {
	sum := sha256.Sum256([]byte(name))
	var id signal.ID
	copy(id[:], sum[:])
	return id
}

// swarm is the peer's membership of one swarm: its neighbors, its pending
// connections and the fetches scheduled among them. Guarded by Peer.mu
// except where noted.
type swarm struct {
	p    *Peer
	name string
	hash signal.ID

	size      int64 // swarm size the coordinator reported (0: no reply yet)
	joined    time.Time
	interval  time.Duration // announce interval the coordinator asked for
	neighbors map[signal.ID]*neighbor
	offers    map[signal.ID]*pendingOffer // by offer_id
	answering int                         // answers made, channel not open yet
	objects   map[wire.ObjectID]*object
	fetches   []*fetch

	lastAnnounce time.Time
	announcing   bool
	quietUntil   time.Time // the coordinator dropped us from the swarm: no announces until then
	lastReport   time.Time
	reported     [3]int64 // counters in the last report
	badChunks    []signal.BadChunk
	uploaded     int64 // to this swarm's neighbors
	downloaded   int64 // verified bytes of this swarm's objects
	completed    bool  // "completed" was announced

	nextSeed time.Time
	seeding  int // Slurpie edge fetches in flight
	// bitrateBps is the bitrate of the swarm's stream, declared in x_caps
	// (0: none); capsChanged asks for an announce that says so.
	bitrateBps  int64
	capsChanged bool
	// fileBytes is the size of the object a file's swarm is named after
	// (0: a stream's swarm, or not known yet).
	fileBytes int64
	// seedAnnounced: the last announce sent said left 0. When the peer
	// wants bytes again it says so at once, or the edge would keep
	// treating it as a seed that needs nothing until the next interval.
	seedAnnounced bool

	kick chan struct{} // wakes the scheduler (not guarded)
	stop chan struct{}
	wg   sync.WaitGroup
}

// announceBackoff is how long a peer the coordinator dropped from a swarm
// waits before announcing to it again.
const announceBackoff = time.Minute

// pendingOffer is an offer of ours waiting for an answer.
type pendingOffer struct {
	pc      *webrtc.PeerConnection
	dc      *webrtc.DataChannel
	expires time.Time
	remote  signal.ID // set when the answer arrives
	sw      *swarm
}

// neighbor is a connected peer in one swarm. Its fields are guarded by
// Peer.mu; it implements linkHandler for its link.
type neighbor struct {
	p       *Peer
	sw      *swarm
	id      signal.ID
	hexID   string
	l       *link
	offered bool // we made the offer (decides duplicates)
	have    map[wire.ObjectID]*bitset
	unknown int       // objects in have this peer did not know when announced
	choked  time.Time // refused us (busy, over budget): not until then
	ready   bool      // HELLO received
	serves  bool
	maxReq  int
	dropped bool // verification failure: never again in this session
}

// Join joins the swarm named name (see SwarmID), announcing to the
// coordinator. Idempotent.
func (p *Peer) Join(name string) error {
	_, err := p.join(name, 0)
	return err
}

// ErrClosed is returned by a closed Peer.
var ErrClosed = errors.New("peer closed")

// join joins the swarm named name, declaring bitrateBps as the bitrate of
// its stream when positive (x_caps.bitrate_bps; announced at once when it
// changes).
func (p *Peer) join(name string, bitrateBps int64) (*swarm, error) {
	h := SwarmID(name)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if sw := p.swarms[h]; sw != nil {
		if bitrateBps > 0 && bitrateBps != sw.bitrateBps {
			sw.bitrateBps, sw.capsChanged = bitrateBps, true
			sw.wake()
		}
		p.mu.Unlock()
		return sw, nil
	}
	sw := &swarm{
		p: p, name: name, hash: h, interval: 120 * time.Second, joined: time.Now(), bitrateBps: max(bitrateBps, 0),
		neighbors: map[signal.ID]*neighbor{}, offers: map[signal.ID]*pendingOffer{},
		objects: map[wire.ObjectID]*object{},
		kick:    make(chan struct{}, 1), stop: make(chan struct{}),
	}
	p.swarms[h] = sw
	p.mu.Unlock()
	sw.wg.Add(1)
	go sw.run()
	return sw, nil
}

// run is the swarm's loop: announces (periodic, for more neighbors, for
// reports) and scheduling after every event and on a short tick.
func (sw *swarm) run() {
	defer sw.wg.Done()
	p := sw.p
	p.announce(sw, signal.EventStarted)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sw.stop:
			return
		case <-sw.kick:
		case <-tick.C:
		}
		p.schedule(sw)
		if ev, ok := p.announceDue(sw); ok {
			p.announce(sw, ev)
		}
		p.expireOffers(sw)
	}
}

func (sw *swarm) wake() { notify(sw.kick) }

// shutdown stops the loop and closes every connection of the swarm.
func (sw *swarm) shutdown() {
	close(sw.stop)
	sw.wg.Wait()
	p := sw.p
	p.mu.Lock()
	var links []*link
	var pcs []*webrtc.PeerConnection
	for _, n := range sw.neighbors {
		links = append(links, n.l)
	}
	for id, o := range sw.offers {
		pcs = append(pcs, o.pc)
		delete(sw.offers, id)
	}
	for _, f := range sw.fetches {
		f.fail(ErrClosed)
	}
	p.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	for _, l := range links {
		l.close()
		l.wait()
	}
}

// announceDue decides whether to announce now, and with which event.
func (p *Peer) announceDue(sw *swarm) (signal.Event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if sw.announcing || p.closed || now.Before(sw.quietUntil) {
		return 0, false
	}
	since := now.Sub(sw.lastAnnounce)
	left := sw.left()
	if !sw.completed && left == 0 && sw.downloaded > 0 {
		return signal.EventCompleted, true
	}
	switch {
	case since >= sw.interval:
	case sw.seedAnnounced && left != 0, sw.capsChanged:
	case len(sw.badChunks) > 0:
	case since >= p.opts.AnnounceRetry && sw.room() > 0 && int64(len(sw.neighbors)) < sw.size-1:
	case since >= p.opts.ReportInterval && now.Sub(sw.lastReport) >= p.opts.ReportInterval && p.countersChanged(sw):
	default:
		return 0, false
	}
	return signal.EventUpdate, true
}

func (p *Peer) countersChanged(sw *swarm) bool {
	return sw.reported != [3]int64{p.stats.FromPeersBytes, p.stats.FromEdgeBytes, p.stats.UploadedBytes}
}

// connecting reports whether a connection to a neighbor is being made (an
// answered offer, an answer sent) or a neighbor has not said hello: its
// chunks may be announced any moment.
func (sw *swarm) connecting() bool {
	if sw.answering > 0 {
		return true
	}
	for _, o := range sw.offers {
		if o.remote != (signal.ID{}) {
			return true
		}
	}
	for _, n := range sw.neighbors {
		if !n.ready {
			return true
		}
	}
	return false
}

// room is how many more connections the swarm may start.
func (sw *swarm) room() int {
	return sw.p.opts.MaxNeighbors - len(sw.neighbors) - len(sw.offers) - sw.answering
}

// announce sends one announce for sw, with fresh offers when there is room
// for neighbors, and the peer's report.
func (p *Peer) announce(sw *swarm, ev signal.Event) {
	p.mu.Lock()
	if sw.announcing {
		p.mu.Unlock()
		return
	}
	sw.announcing = true
	want := 0
	if ev != signal.EventStopped && !p.closed && p.opts.MaxNeighbors > 0 {
		want = min(max(sw.room(), 0), p.opts.OffersPerAnnounce)
		// Offers to a swarm of one go nowhere: first announces always
		// carry some, later ones only while others are there to meet.
		if ev != signal.EventStarted && int64(len(sw.neighbors)) >= sw.size-1 {
			want = 0
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		sw.announcing = false
		p.mu.Unlock()
	}()

	var offers []signal.Offer
	for range want {
		o, id, sdp, err := p.makeOffer(sw)
		if err != nil {
			p.log.Warn("creating offer", "swarm", sw.name, "err", err)
			break
		}
		p.mu.Lock()
		sw.offers[id] = o
		p.mu.Unlock()
		offers = append(offers, signal.Offer{ID: id, SDP: sdp})
	}

	p.mu.Lock()
	req := signal.Request{
		Action: signal.ActionAnnounce, InfoHash: sw.hash, PeerID: p.id, Event: ev,
		NumWant: len(offers), Left: sw.left(), Uploaded: sw.uploaded, Downloaded: sw.downloaded,
		Offers: offers, Session: p.session, Site: p.opts.Site, Have: sw.held(),
		Caps: &signal.Caps{UploadBps: p.opts.UploadCapacityBps, NoUpload: p.opts.NoUpload, Device: p.opts.Device,
			BitrateBps: sw.bitrateBps},
	}
	if ev == signal.EventStopped {
		req.NumWant = 0
	}
	rep := &signal.Report{FromPeersBytes: p.stats.FromPeersBytes, FromEdgeBytes: p.stats.FromEdgeBytes, UploadedBytes: p.stats.UploadedBytes}
	n := min(len(sw.badChunks), signal.MaxBadChunks)
	rep.BadChunks = append([]signal.BadChunk(nil), sw.badChunks[:n]...)
	req.Report = rep
	p.mu.Unlock()

	err := p.trk.send(&req)
	p.mu.Lock()
	if err == nil {
		sw.lastAnnounce = time.Now()
		sw.lastReport = sw.lastAnnounce
		sw.reported = [3]int64{rep.FromPeersBytes, rep.FromEdgeBytes, rep.UploadedBytes}
		sw.badChunks = sw.badChunks[n:]
		sw.seedAnnounced = req.Left == 0
		if req.Caps.BitrateBps == sw.bitrateBps {
			sw.capsChanged = false
		}
		if ev == signal.EventCompleted {
			sw.completed = true
		}
	} else {
		// Not connected: the tracker reconnects and announces again; the
		// offers are dropped now rather than leaked.
		for _, o := range offers {
			if po := sw.offers[o.ID]; po != nil {
				delete(sw.offers, o.ID)
				go po.pc.Close()
			}
		}
	}
	p.mu.Unlock()
	if err != nil && ev != signal.EventStopped {
		p.log.Debug("announce not sent", "swarm", sw.name, "err", err)
	}
}

// makeOffer creates one PeerConnection with its offer.
func (p *Peer) makeOffer(sw *swarm) (*pendingOffer, signal.ID, []byte, error) {
	var id signal.ID
	_, _ = rand.Read(id[:])
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.OfferTimeout)
	defer cancel()
	pc, dc, sd, err := p.rtc.offer(ctx)
	if err != nil {
		return nil, id, nil, err
	}
	sdp, err := json.Marshal(sd)
	if err != nil {
		_ = pc.Close()
		return nil, id, nil, err
	}
	o := &pendingOffer{pc: pc, dc: dc, expires: time.Now().Add(p.opts.OfferTimeout), sw: sw}
	dc.OnOpen(func() {
		ch, err := detach(pc, dc)
		if err != nil {
			p.log.Warn("data channel", "err", err)
			_ = pc.Close()
			return
		}
		p.mu.Lock()
		remote := o.remote
		p.mu.Unlock()
		p.linkUp(sw, remote, ch, true)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			_ = pc.Close()
		}
	})
	return o, id, sdp, nil
}

// expireOffers drops offers nobody answered in time.
func (p *Peer) expireOffers(sw *swarm) {
	now := time.Now()
	var pcs []*webrtc.PeerConnection
	p.mu.Lock()
	for id, o := range sw.offers {
		if now.After(o.expires) {
			pcs = append(pcs, o.pc)
			delete(sw.offers, id)
		}
	}
	p.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
}

// onTrackerConnected announces every swarm again after a (re)connect.
func (p *Peer) onTrackerConnected() {
	p.mu.Lock()
	for _, sw := range p.swarms {
		sw.lastAnnounce = time.Time{}
		sw.interval = 0 // due now; the reply sets it again
		sw.wake()
	}
	p.mu.Unlock()
}

// onSignal handles one message from the coordinator (on the tracker's read
// goroutine; r is reused after return).
func (p *Peer) onSignal(r *signal.Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Policy != nil {
		p.applyPolicy(r.Policy)
	}
	switch r.Kind {
	case signal.KindFailure:
		p.log.Warn("coordinator refused a message", "reason", r.Failure)
		// Dropped or banned from a swarm: stop announcing to it for a
		// while instead of asking again every few seconds.
		if sw := p.swarms[r.InfoHash]; sw != nil && r.HasInfoHash && strings.HasPrefix(r.Failure, "dropped from") {
			sw.quietUntil = time.Now().Add(announceBackoff)
		}
		return
	case signal.KindPolicy:
		return
	}
	sw := p.swarms[r.InfoHash]
	if sw == nil || p.closed {
		return
	}
	switch r.Kind {
	case signal.KindAnnounce:
		if r.Session != "" && r.Session != p.session {
			if p.session == "" {
				close(p.sessionSet)
			}
			p.session = r.Session
		}
		sw.size = max(1, r.Complete+r.Incomplete)
		if r.Interval > 0 {
			sw.interval = time.Duration(r.Interval) * time.Second
		}
	case signal.KindOffer:
		if r.PeerID == p.id || sw.neighbors[r.PeerID] != nil || sw.room() <= 0 || p.banned()[r.PeerID] {
			return
		}
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(r.SDP, &sd); err != nil || sd.Type != webrtc.SDPTypeOffer {
			p.log.Warn("relayed offer is not an SDP offer; ignored", "from", r.PeerID.String(), "err", err)
			return
		}
		sw.answering++
		p.wg.Add(1)
		go p.answer(sw, r.PeerID, r.OfferID, sd)
	case signal.KindAnswer:
		o := sw.offers[r.OfferID]
		if o == nil || o.remote != (signal.ID{}) {
			return // expired, or answered twice
		}
		if r.PeerID == p.id || sw.neighbors[r.PeerID] != nil || p.banned()[r.PeerID] {
			delete(sw.offers, r.OfferID)
			go o.pc.Close()
			return
		}
		var sd webrtc.SessionDescription
		if err := json.Unmarshal(r.SDP, &sd); err != nil || sd.Type != webrtc.SDPTypeAnswer {
			p.log.Warn("relayed answer is not an SDP answer; ignored", "from", r.PeerID.String(), "err", err)
			return
		}
		o.remote = r.PeerID
		o.expires = time.Now().Add(p.opts.OfferTimeout)
		pc := o.pc
		go func() {
			if err := pc.SetRemoteDescription(sd); err != nil {
				p.log.Warn("applying answer", "from", r.PeerID.String(), "err", err)
				_ = pc.Close()
			}
		}()
	}
}

// answer accepts a relayed offer and sends the answer back through the
// coordinator.
func (p *Peer) answer(sw *swarm, from, offerID signal.ID, offer webrtc.SessionDescription) {
	defer p.wg.Done()
	opened := make(chan struct{})
	var once sync.Once
	finish := func() {
		once.Do(func() {
			p.mu.Lock()
			sw.answering--
			p.mu.Unlock()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.OfferTimeout)
	defer cancel()
	var pcRef struct {
		sync.Mutex
		pc *webrtc.PeerConnection
	}
	pcRef.Lock()
	var first sync.Once
	pc, sd, err := p.rtc.answer(ctx, offer, func(dc *webrtc.DataChannel) {
		taken := false
		first.Do(func() { taken = true })
		if !taken {
			_ = dc.Close() // one channel per connection
			return
		}
		dc.OnOpen(func() {
			pcRef.Lock()
			pc := pcRef.pc
			pcRef.Unlock()
			ch, err := detach(pc, dc)
			if err != nil {
				p.log.Warn("data channel", "err", err)
				_ = pc.Close()
				return
			}
			close(opened)
			finish()
			p.linkUp(sw, from, ch, false)
		})
	})
	pcRef.pc = pc
	pcRef.Unlock()
	if err != nil {
		finish()
		p.log.Debug("answering offer", "from", from.String(), "err", err)
		return
	}
	answer, _ := json.Marshal(sd)
	req := signal.Request{Action: signal.ActionAnnounce, InfoHash: sw.hash, PeerID: p.id,
		NumWant: -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1,
		Answer: answer, ToPeerID: from, OfferID: offerID}
	p.mu.Lock()
	req.Session = p.session
	p.mu.Unlock()
	if err := p.trk.send(&req); err != nil {
		finish()
		_ = pc.Close()
		return
	}
	select {
	case <-opened:
	case <-ctx.Done():
		finish()
		_ = pc.Close()
	case <-p.done:
		finish()
		_ = pc.Close()
	}
}

// linkUp makes a neighbor of an open DataChannel to remote.
func (p *Peer) linkUp(sw *swarm, remote signal.ID, ch *rtcChannel, offered bool) {
	p.mu.Lock()
	if offered {
		for id, o := range sw.offers {
			if o.pc == ch.pc {
				delete(sw.offers, id)
			}
		}
	}
	old := sw.neighbors[remote]
	refuse := p.closed || remote == (signal.ID{}) || p.banned()[remote]
	if old != nil && !refuse {
		// Both sides offered each other: keep the connection whose
		// offerer has the smaller peer_id; both sides decide alike.
		offererNew, offererOld := remote, remote
		if offered {
			offererNew = p.id
		}
		if old.offered {
			offererOld = p.id
		}
		if bytes.Compare(offererNew[:], offererOld[:]) >= 0 {
			refuse = true
		}
	}
	if !refuse && old == nil && len(sw.neighbors) >= p.opts.MaxNeighbors {
		refuse = true
	}
	if refuse {
		p.mu.Unlock()
		_ = ch.Close()
		return
	}
	n := &neighbor{p: p, sw: sw, id: remote, hexID: remote.String(), offered: offered, have: map[wire.ObjectID]*bitset{}}
	sw.neighbors[remote] = n
	p.tel.addNeighbors(1)
	n.l = newLink(ch, n, n.hexID, linkConfig{
		MaxQueued: p.opts.MaxQueuedRequests,
		Serves:    p.uploadAllowed(),
		Limiter:   p.limiter,
	})
	for _, o := range sw.objects {
		if o.held > 0 {
			n.l.bitfield(o.id, o.heldBits())
		}
	}
	p.mu.Unlock()
	if old != nil {
		old.l.close()
	}
	ch.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			n.l.closeWith(fmt.Errorf("peer connection %v", s))
		}
	})
	p.log.Debug("neighbor connected", "swarm", sw.name, "neighbor", n.short(), "offered", offered)
	sw.wake()
}

// short is the neighbor's peer_id for logs: its random part, after the
// client prefix ("-EB0001-").
func (n *neighbor) short() string { return n.hexID[16:] }

// linkHandler, for one neighbor.

func (n *neighbor) serve(obj wire.ObjectID, chunk uint32) ([]byte, bool) {
	p := n.p
	p.mu.Lock()
	o := p.objects[obj]
	var data []byte
	if o != nil && int64(chunk) < int64(len(o.chunks)) {
		data = o.chunks[chunk]
		o.lastUse = time.Now()
	}
	p.mu.Unlock()
	if data == nil {
		return nil, false
	}
	if p.opts.Corrupt != nil && p.opts.Corrupt(obj, chunk) {
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 0x5a
		return bad, true
	}
	return data, true
}

func (n *neighbor) onHello(l *link, f wire.Frame) {
	n.p.mu.Lock()
	n.ready = true
	n.serves = f.Flags&wire.FlagServes != 0
	n.maxReq = int(f.MaxRequests)
	n.p.mu.Unlock()
	n.sw.wake()
}

// Bounds on what a neighbor's announcements may make us store: chunks of
// objects this peer knows are tracked up to the object's chunk count; for
// objects it does not know (yet), at most maxUnknownObjects objects and
// their first maxUnknownChunks chunks, so a hostile neighbor costs at most
// a few hundred KiB.
const (
	maxUnknownObjects = 256
	maxUnknownChunks  = 4096
)

// bits returns the set for obj and how many chunks of it may be tracked
// (0: none). Called with p.mu held.
func (n *neighbor) bits(obj wire.ObjectID) (*bitset, int) {
	limit := maxUnknownChunks
	if o := n.p.objects[obj]; o != nil {
		limit = len(o.chunks)
	}
	b := n.have[obj]
	if b == nil {
		if n.p.objects[obj] == nil && n.unknown >= maxUnknownObjects {
			return nil, 0
		}
		if n.p.objects[obj] == nil {
			n.unknown++
		}
		b = &bitset{}
		n.have[obj] = b
	}
	return b, limit
}

func (n *neighbor) onHave(l *link, obj wire.ObjectID, chunk uint32) {
	n.p.mu.Lock()
	if b, limit := n.bits(obj); b != nil && int64(chunk) < int64(limit) {
		b.set(int(chunk))
	}
	n.p.mu.Unlock()
	n.sw.wake()
}

func (n *neighbor) onBitfield(l *link, f wire.Frame) {
	n.p.mu.Lock()
	if b, limit := n.bits(f.Object); b != nil {
		for i := uint32(0); i < f.Count && int64(f.Chunk)+int64(i) < int64(limit); i++ {
			if f.Has(f.Chunk + i) {
				b.set(int(f.Chunk + i))
			}
		}
	}
	n.p.mu.Unlock()
	n.sw.wake()
}

func (n *neighbor) onChunk(l *link, obj wire.ObjectID, chunk uint32, data []byte) {
	n.p.chunkFromPeer(n, obj, int(chunk), data)
}

func (n *neighbor) onAbsent(l *link, obj wire.ObjectID, chunk uint32, r wire.Reason) {
	n.p.absentFromPeer(n, obj, int(chunk), r)
}

func (n *neighbor) onUploaded(l *link, bytes int) {
	p := n.p
	p.mu.Lock()
	p.stats.UploadedBytes += int64(bytes)
	p.stats.ToPeer[n.hexID] += int64(bytes)
	p.tel.addUploaded(bytes)
	n.sw.uploaded += int64(bytes)
	p.mu.Unlock()
}

func (n *neighbor) onClose(l *link, err error) {
	p := n.p
	p.mu.Lock()
	p.tel.addNeighbors(-1)
	if n.sw.neighbors[n.id] == n {
		delete(n.sw.neighbors, n.id)
	}
	p.releaseRequests(n)
	p.mu.Unlock()
	switch {
	case errors.Is(err, errViolation):
		p.log.Warn("neighbor broke the data protocol; disconnected", "neighbor", n.short(), "err", err)
	case err != nil:
		p.log.Debug("neighbor gone", "neighbor", n.short(), "err", err)
	}
	n.sw.wake()
}

// bitset is a growable set of chunk indexes. The zero value is empty and
// usable; not safe for concurrent use.
type bitset struct{ w []uint64 }

func (b *bitset) set(i int) {
	for i/64 >= len(b.w) {
		b.w = append(b.w, 0)
	}
	b.w[i/64] |= 1 << (i % 64)
}

func (b *bitset) clear(i int) {
	if i/64 < len(b.w) {
		b.w[i/64] &^= 1 << (i % 64)
	}
}

func (b *bitset) has(i int) bool {
	return b != nil && i/64 < len(b.w) && b.w[i/64]&(1<<(i%64)) != 0
}
