package peer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/peerassist/manifest"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/peerassist/wire"
)

// object is one object the peer holds or fetches: its manifest and its
// verified chunks. Guarded by Peer.mu.
type object struct {
	id      wire.ObjectID
	m       *manifest.Manifest
	path    string
	sw      *swarm
	chunks  [][]byte // verified chunks; nil while missing
	held    int
	bytes   int64 // sum of held chunk sizes
	lastUse time.Time
	fetch   *fetch // the fetch in progress, if any
}

func (o *object) heldBits() []bool {
	b := make([]bool, len(o.chunks))
	for i, c := range o.chunks {
		b[i] = c != nil
	}
	return b
}

type chunkState uint8

const (
	stNeed chunkState = iota // missing, nobody asked
	stPeer                   // requested from a neighbor
	stEdge                   // being fetched from the edge
	stHave                   // verified and stored
)

// fetch is one object being fetched. Guarded by Peer.mu.
type fetch struct {
	o       *object
	sw      *swarm
	ctx     context.Context // ends when the fetch does
	cancel  context.CancelFunc
	due     []time.Time  // per chunk deadline
	st      []chunkState // per chunk
	from    []*neighbor  // stPeer: the neighbor asked
	got     []int        // stPeer: bytes received at progressAt
	since   []time.Time  // stPeer: last progress
	retryAt []time.Time  // stNeed: not before (after an edge error)
	order   []int        // chunk indexes by deadline (see byDue)
	left    int          // chunks not yet stHave
	leftB   int64        // bytes not yet stHave
	waiters int
	// edgeBytes and peerBytes count this fetch's verified bytes by source.
	edgeBytes, peerBytes int64
	done                 chan struct{}
	err                  error
	result               []byte
}

// FetchOptions say when an object is needed.
type FetchOptions struct {
	// Swarm is the swarm to fetch in (see SwarmID). Default: the object's
	// path and query, a file's swarm.
	Swarm string
	// Deadline is when the whole object is due. Default: now +
	// Options.DefaultDeadline.
	Deadline time.Time
	// RateBps paces the deadlines of a stream-like object: chunk i is due
	// at now + StartupDelay + (i+1) chunk durations at RateBps bits/s,
	// and never after Deadline. 0: every chunk is due at Deadline.
	RateBps int64
	// StartupDelay shifts the RateBps schedule (the player's start-up
	// buffer).
	StartupDelay time.Duration
	// BitrateBps is the bitrate in bits/s of the stream the object
	// belongs to (an HLS variant's BANDWIDTH): declared to the edge
	// (x_caps.bitrate_bps) for the swarm, so that the viewer's floor,
	// what the edge always serves its urgent requests, follows the
	// stream where the site's configuration gives no bitrate. Default
	// RateBps; 0 declares none.
	BitrateBps int64
}

// Fetch returns the object at path (its path and query on the edge, e.g.
// "/bytes/1048576"), fetched from neighbors and the edge. Every chunk is
// verified against the edge's manifest. It returns when every chunk is
// there, ctx ends (ctx.Err()), or the edge fails permanently (an
// *HTTPError, an object that changed while fetching).
func (p *Peer) Fetch(ctx context.Context, path string, fo FetchOptions) ([]byte, error) {
	if path == "" || path[0] != '/' {
		return nil, fmt.Errorf("fetch %q: want an absolute path on the edge", path)
	}
	start := time.Now()
	name := fo.Swarm
	if name == "" {
		name = path
	}
	ctx, span := p.tel.tracer.Start(ctx, "peerassist.peer.fetch", trace.WithAttributes(
		attribute.String("url.path", path), attribute.String("peerassist.swarm", name)))
	defer span.End()
	out, f, err := p.fetch(ctx, path, name, start, fo)
	if f != nil {
		p.mu.Lock()
		span.SetAttributes(attribute.String("peerassist.object_id", f.o.id.String()),
			attribute.Int64("peerassist.edge_bytes", f.edgeBytes), attribute.Int64("peerassist.peer_bytes", f.peerBytes))
		p.mu.Unlock()
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return out, err
}

func (p *Peer) fetch(ctx context.Context, path, name string, start time.Time, fo FetchOptions) ([]byte, *fetch, error) {
	bitrate := fo.BitrateBps
	if bitrate <= 0 {
		bitrate = fo.RateBps
	}
	sw, err := p.join(name, bitrate)
	if err != nil {
		return nil, nil, err
	}
	p.waitSession(ctx, 2*time.Second)
	m, err := p.manifestWithRetry(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	id, err := wire.ParseObjectID(m.ObjectID)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest of %s: %w", path, err)
	}
	if m.ChunkBytes > 64<<20 {
		return nil, nil, fmt.Errorf("manifest of %s: chunk_size %d is larger than 64 MiB", path, m.ChunkBytes)
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	o := p.objects[id]
	if o != nil && o.held == len(o.chunks) {
		o.lastUse = time.Now()
		out := o.assemble()
		p.mu.Unlock()
		return out, nil, nil
	}
	if o == nil {
		o = &object{id: id, m: m, path: path, sw: sw, chunks: make([][]byte, m.NumChunks())}
		p.objects[id] = o
		sw.objects[id] = o
	}
	if path == name {
		sw.fileBytes = m.Size // a file's swarm: it can be complete
	}
	f := o.fetch
	if f == nil {
		f = p.newFetch(o, sw, start, fo)
	}
	f.waiters++
	p.mu.Unlock()
	sw.wake()

	select {
	case <-f.done:
	case <-ctx.Done():
		p.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			p.endFetch(f, ctx.Err())
		}
		p.mu.Unlock()
		<-f.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.err != nil {
		return nil, f, f.err
	}
	return f.result, f, nil
}

func (p *Peer) manifestWithRetry(ctx context.Context, path string) (*manifest.Manifest, error) {
	backoff := 200 * time.Millisecond
	for {
		m, err := p.edge.manifest(ctx, path)
		var he *HTTPError
		switch {
		case err == nil:
			return m, nil
		case errors.As(err, &he) && he.Status < 500, ctx.Err() != nil:
			return nil, err
		}
		p.log.Debug("manifest", "path", path, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("manifest of %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-p.done:
			return nil, ErrClosed
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// newFetch starts fetching o. Called with p.mu held.
func (p *Peer) newFetch(o *object, sw *swarm, start time.Time, fo FetchOptions) *fetch {
	n := len(o.chunks)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fetch{
		o: o, sw: sw, ctx: ctx, cancel: cancel,
		due: make([]time.Time, n), st: make([]chunkState, n), from: make([]*neighbor, n),
		got: make([]int, n), since: make([]time.Time, n), retryAt: make([]time.Time, n),
		done: make(chan struct{}),
	}
	deadline := fo.Deadline
	if deadline.IsZero() {
		deadline = start.Add(p.opts.DefaultDeadline)
	}
	for i := range n {
		f.due[i] = deadline
		if fo.RateBps > 0 {
			_, end := o.m.ChunkRange(i)
			t := start.Add(fo.StartupDelay + time.Duration(float64(end)*8/float64(fo.RateBps)*float64(time.Second)))
			if t.Before(deadline) {
				f.due[i] = t
			}
		}
		if o.chunks[i] != nil {
			f.st[i] = stHave
		} else {
			f.left++
			s, e := o.m.ChunkRange(i)
			f.leftB += e - s
		}
	}
	o.fetch = f
	sw.fetches = append(sw.fetches, f)
	sort.SliceStable(sw.fetches, func(a, b int) bool { return sw.fetches[a].firstDue().Before(sw.fetches[b].firstDue()) })
	sw.completed = false
	if f.left == 0 {
		p.endFetch(f, nil)
	}
	return f
}

// byDue returns the chunk indexes in deadline order (index order among
// equal deadlines).
func (f *fetch) byDue() []int {
	if f.order == nil {
		f.order = make([]int, len(f.due))
		for i := range f.order {
			f.order[i] = i
		}
		sort.SliceStable(f.order, func(a, b int) bool { return f.due[f.order[a]].Before(f.due[f.order[b]]) })
	}
	return f.order
}

func (f *fetch) firstDue() time.Time {
	if len(f.due) == 0 {
		return time.Time{}
	}
	return f.due[0]
}

func (o *object) assemble() []byte {
	out := make([]byte, 0, o.m.Size)
	for _, c := range o.chunks {
		out = append(out, c...)
	}
	return out
}

// endFetch finishes f with err (nil: complete). Called with p.mu held.
func (p *Peer) endFetch(f *fetch, err error) {
	select {
	case <-f.done:
		return
	default:
	}
	f.err = err
	if err == nil {
		f.result = f.o.assemble()
	}
	for c, st := range f.st {
		if st == stPeer && f.from[c] != nil {
			f.from[c].l.cancel(f.o.id, uint32(c))
		}
	}
	f.cancel()
	f.o.fetch = nil
	f.o.lastUse = time.Now()
	sw := f.sw
	for i, g := range sw.fetches {
		if g == f {
			sw.fetches = append(sw.fetches[:i], sw.fetches[i+1:]...)
			break
		}
	}
	close(f.done)
	p.evict()
}

func (f *fetch) fail(err error) { f.sw.p.endFetch(f, err) }

// left is the announce's "left": the bytes the peer still wants in this
// swarm, or -1 when it cannot tell. Only a file's swarm (named by its one
// object's path) can be complete (0). Before the first manifest, and
// between two segments of a stream (whose swarm has objects the peer has
// not heard of yet), the need is unknown: the coordinator then keeps the
// peer a leech. Announcing 0 there made the edge treat a downloading peer
// as a seed that needs nothing. Called with p.mu held.
func (sw *swarm) left() int64 {
	var n int64
	for _, f := range sw.fetches {
		n += f.leftB
	}
	switch {
	case n > 0:
		return n
	case sw.fileBytes == 0:
		return -1 // a stream's swarm, or no manifest yet
	}
	for _, o := range sw.objects {
		if o.path == sw.name {
			return o.m.Size - o.bytes
		}
	}
	return sw.fileBytes // held once, evicted since
}

// held feeds the announce's x_have. Called with p.mu held.
func (sw *swarm) held() int64 {
	var n int64
	for _, o := range sw.objects {
		n += int64(o.held)
	}
	return n
}

// evict drops the least recently used complete objects while the store is
// over its bound. Called with p.mu held.
func (p *Peer) evict() {
	if p.storeBytes <= p.opts.MaxStoreBytes {
		return
	}
	var idle []*object
	for _, o := range p.objects {
		if o.fetch == nil {
			idle = append(idle, o)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastUse.Before(idle[j].lastUse) })
	for _, o := range idle {
		if p.storeBytes <= p.opts.MaxStoreBytes {
			return
		}
		p.storeBytes -= o.bytes
		delete(p.objects, o.id)
		delete(o.sw.objects, o.id)
	}
}

// complete stores a verified chunk. srcPeer is the neighbor it came from
// (nil: the edge); prefixFrom sent the first prefixBytes of an edge chunk.
// Called with p.mu held.
func (p *Peer) complete(f *fetch, c int, data []byte, srcPeer *neighbor, prefixFrom *neighbor, prefixBytes int) {
	o := f.o
	if f.st[c] == stHave || o.chunks[c] != nil {
		if srcPeer != nil {
			p.stats.DiscardedBytes += int64(len(data))
		}
		return
	}
	if f.st[c] == stPeer && f.from[c] != nil && f.from[c] != srcPeer {
		f.from[c].l.cancel(o.id, uint32(c))
	}
	o.chunks[c] = data
	o.held++
	o.bytes += int64(len(data))
	p.storeBytes += int64(len(data))
	f.st[c] = stHave
	f.from[c] = nil
	f.left--
	f.leftB -= int64(len(data))
	f.sw.downloaded += int64(len(data))
	switch {
	case srcPeer != nil:
		p.stats.FromPeersBytes += int64(len(data))
		p.stats.FromPeer[srcPeer.hexID] += int64(len(data))
		f.peerBytes += int64(len(data))
		p.tel.addReceived(len(data), true)
	default:
		edgeBytes := len(data) - prefixBytes
		p.stats.FromEdgeBytes += int64(edgeBytes)
		f.edgeBytes += int64(edgeBytes)
		p.tel.addReceived(edgeBytes, false)
		if prefixFrom != nil && prefixBytes > 0 {
			p.stats.FromPeersBytes += int64(prefixBytes)
			p.stats.FromPeer[prefixFrom.hexID] += int64(prefixBytes)
			f.peerBytes += int64(prefixBytes)
			p.tel.addReceived(prefixBytes, true)
		}
	}
	for _, n := range f.sw.neighbors {
		n.l.have(o.id, uint32(c))
	}
	if f.left == 0 {
		p.endFetch(f, nil)
	}
}

// chunkFromPeer takes a complete chunk from a neighbor: verify, then store
// or report.
func (p *Peer) chunkFromPeer(n *neighbor, obj wire.ObjectID, c int, data []byte) {
	p.mu.Lock()
	o := p.objects[obj]
	var f *fetch
	if o != nil {
		f = o.fetch
	}
	if f == nil || c >= len(f.st) || f.st[c] == stHave || (f.st[c] == stPeer && f.from[c] != n) {
		p.stats.DiscardedBytes += int64(len(data))
		p.mu.Unlock()
		return
	}
	m := o.m
	p.mu.Unlock()
	// The neighbor's request slot is free already: let the scheduler ask
	// it for more while this chunk is being verified.
	n.sw.wake()

	ok := m.Verify(c, data) // outside the lock: SHA-256 of a whole chunk

	p.mu.Lock()
	if ok {
		p.complete(f, c, data, n, nil, 0)
		p.mu.Unlock()
		n.sw.wake()
		return
	}
	p.badChunk(n, f, c, len(data))
	p.mu.Unlock()
	n.l.close()
	n.sw.wake()
}

// badChunk records a chunk from n that failed verification: counted,
// reported to the coordinator with n's peer_id, n dropped and banned, the
// chunk fetched again elsewhere. Called with p.mu held.
func (p *Peer) badChunk(n *neighbor, f *fetch, c int, size int) {
	p.stats.DiscardedBytes += int64(size)
	p.tel.addBad()
	p.stats.BadChunks = append(p.stats.BadChunks, BadChunk{From: n.hexID, Object: f.o.id.String(), Chunk: c})
	n.sw.badChunks = append(n.sw.badChunks, badChunkReport(n, f.o.id, c))
	n.dropped = true
	p.banned()[n.id] = true
	if f.st[c] == stPeer && f.from[c] == n {
		f.st[c] = stNeed
		f.from[c] = nil
	}
	p.log.Warn("chunk failed verification; sender dropped and reported",
		"neighbor", n.short(), "object", f.o.id.String(), "chunk", c)
}

func (p *Peer) absentFromPeer(n *neighbor, obj wire.ObjectID, c int, r wire.Reason) {
	p.mu.Lock()
	if o := p.objects[obj]; o != nil && o.fetch != nil && c < len(o.fetch.st) {
		f := o.fetch
		if f.st[c] == stPeer && f.from[c] == n {
			f.st[c] = stNeed
			f.from[c] = nil
		}
	}
	switch r {
	case wire.ReasonNotHeld:
		if b := n.have[obj]; b != nil {
			b.clear(c)
		}
	case wire.ReasonBusy:
		n.choked = time.Now().Add(500 * time.Millisecond)
	case wire.ReasonOverBudget:
		n.choked = time.Now().Add(2 * time.Second)
	}
	p.mu.Unlock()
	n.sw.wake()
}

// releaseRequests returns the chunks requested from a departed neighbor to
// the pool. Called with p.mu held.
func (p *Peer) releaseRequests(n *neighbor) {
	for _, f := range n.sw.fetches {
		for c := range f.st {
			if f.st[c] == stPeer && f.from[c] == n {
				f.st[c] = stNeed
				f.from[c] = nil
			}
		}
	}
}

// edgeJob is one edge range request for (the rest of) a chunk.
type edgeJob struct {
	f          *fetch
	c          int
	prefix     []byte    // bytes a neighbor already sent, verified with the rest
	prefixFrom *neighbor // who sent them
	urgent     bool      // a deadline is close
	seed       bool      // Slurpie: nobody around holds it
}

// schedule assigns work for one swarm: edge fetches for chunks whose
// deadline is close, cancels for stalled peer requests, requests to
// neighbors (rarest first), and Slurpie's edge fetches for chunks no
// neighbor holds.
func (p *Peer) schedule(sw *swarm) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(sw.fetches) == 0 {
		return
	}
	now := time.Now()

	// Usable neighbors and, per fetch, how many of them hold each chunk.
	var usable []*neighbor
	for _, n := range sw.neighbors {
		if n.ready && n.serves && !n.dropped && now.After(n.choked) {
			usable = append(usable, n)
		}
	}
	avail := make([][]int, len(sw.fetches))
	inFlight := 0
	for i, f := range sw.fetches {
		avail[i] = make([]int, len(f.st))
		bits := make([]*bitset, len(usable))
		for j, n := range usable {
			bits[j] = n.have[f.o.id]
		}
		for c, st := range f.st {
			if st == stPeer {
				inFlight++
			}
			if st != stNeed {
				continue
			}
			for _, b := range bits {
				if b.has(c) {
					avail[i][c]++
				}
			}
		}
	}

	// 1. Deadlines and stalls. A chunk goes to the edge when the time
	// left before its deadline is what the edge needs for it and for
	// every missing chunk due before it (at MaxEdgeFetches in parallel),
	// plus EdgeMargin.
	// The estimate is pessimistic as TCP's retransmission timeout is
	// (mean + 4 deviations, at least the mean): on a loaded machine or
	// link, edge fetch times vary, and a mean alone landed fetches after
	// their deadline (QA: a 20 MB object 0.2 s late with no fault).
	est := p.edgeEWMA + 4*p.edgeDev
	if est == 0 {
		est = 300 * time.Millisecond // until measured
	}
	var jobs []edgeJob
	urgentOK := !now.Before(p.urgentBlocked)
	for _, f := range sw.fetches {
		order := f.byDue()
		missing := 0
		for _, c := range order {
			st := f.st[c]
			if st == stHave || st == stEdge {
				continue
			}
			missing++
			rounds := (missing + p.opts.MaxEdgeFetches - 1) / p.opts.MaxEdgeFetches
			urgentAt := f.due[c].Add(-p.opts.EdgeMargin - time.Duration(rounds)*est)
			switch st {
			case stPeer:
				n := f.from[c]
				if !now.Before(urgentAt) && urgentOK {
					prefix := n.l.cancel(f.o.id, uint32(c))
					f.st[c] = stEdge
					jobs = append(jobs, edgeJob{f: f, c: c, prefix: prefix, prefixFrom: n, urgent: true})
					continue
				}
				got, ok := n.l.received(f.o.id, uint32(c))
				switch {
				case !ok:
				case got > f.got[c]:
					f.got[c], f.since[c] = got, now
				case now.Sub(f.since[c]) > p.opts.StallTimeout:
					p.log.Debug("peer request stalled; asking elsewhere", "neighbor", n.short(), "chunk", c)
					n.l.cancel(f.o.id, uint32(c))
					n.choked = now.Add(2 * p.opts.StallTimeout)
					f.st[c], f.from[c] = stNeed, nil
				}
			case stNeed:
				if !now.Before(urgentAt) && !now.Before(f.retryAt[c]) && urgentOK {
					f.st[c] = stEdge
					jobs = append(jobs, edgeJob{f: f, c: c, urgent: true})
				}
			}
		}
	}

	// 2. Requests to neighbors, rarest first (chunks due soon before
	// all), ties broken at random so neighbors spread their requests.
	soon := now.Add(p.opts.EdgeMargin + 2*est + 2*p.opts.StallTimeout)
	for _, n := range usable {
		slots := min(p.opts.PipelineDepth, n.maxReq) - n.l.outstanding()
		for ; slots > 0; slots-- {
			bi, bc, bestSoon, bestAvail := -1, -1, false, 0
			for i, f := range sw.fetches {
				b := n.have[f.o.id]
				k := len(f.st)
				if k == 0 || b == nil {
					continue
				}
				off := rand.IntN(k)
				for j := range k {
					c := (off + j) % k
					if f.st[c] != stNeed || !b.has(c) || now.Before(f.retryAt[c]) {
						continue
					}
					isSoon := f.due[c].Before(soon)
					if bi < 0 || (isSoon && !bestSoon) || (isSoon == bestSoon && avail[i][c] < bestAvail) {
						bi, bc, bestSoon, bestAvail = i, c, isSoon, avail[i][c]
					}
				}
			}
			if bi < 0 {
				break
			}
			f := sw.fetches[bi]
			s, e := f.o.m.ChunkRange(bc)
			// Keep what a neighbor owes us under SCTP's receive window
			// (one request at least): see maxInflightBytes.
			if owed := n.l.outstandingBytes(); owed > 0 && owed+int(e-s) > maxInflightBytes {
				break
			}
			if err := n.l.request(f.o.id, uint32(bc), int(e-s)); err != nil {
				break
			}
			f.st[bc], f.from[bc], f.got[bc], f.since[bc] = stPeer, n, 0, now
			inFlight++
		}
	}

	// 3. Slurpie: when no neighbor has anything for us, about k of the n
	// peers of the swarm fetch a chunk nobody around holds from the edge;
	// the rest wait for it to appear.
	requestable := false
	for i, f := range sw.fetches {
		for c, st := range f.st {
			if st == stNeed && avail[i][c] > 0 {
				requestable = true
			}
		}
	}
	// Before the coordinator answered, and while the first neighbors
	// connect (up to JoinGrace), nobody can tell what the swarm holds:
	// wait, unless this peer is alone in the swarm.
	// The edge's x_policy may set the probability, stop non-urgent edge
	// fetches (use_peers, an allowance of 0) or bound their rate.
	prob := p.opts.SlurpieK / float64(max(sw.size, 1))
	allowed := true
	if pol := p.policy; pol != nil {
		if pol.SlurpieProbability > 0 {
			prob = pol.SlurpieProbability
		}
		allowed = !pol.UsePeers && pol.EdgeAllowanceBps != 0
	}
	settled := sw.size == 1 || (sw.size > 1 && !sw.connecting() &&
		(len(sw.neighbors) > 0 || now.Sub(sw.joined) >= p.opts.JoinGrace))
	// A peer alone in its swarm fetches in parallel; in a swarm, one
	// chunk at a time, so what it fetches has time to spread.
	maxSeeds := 1
	if sw.size == 1 {
		maxSeeds = p.opts.MaxEdgeFetches
	}
	if allowed && settled && !requestable && inFlight == 0 && sw.seeding < maxSeeds && !now.Before(p.nonUrgentBlocked) &&
		(prob >= 1 || !now.Before(sw.nextSeed)) {
		type cand struct {
			f *fetch
			c int
		}
		var cands []cand
		for i, f := range sw.fetches {
			for c, st := range f.st {
				if st == stNeed && avail[i][c] == 0 && !now.Before(f.retryAt[c]) {
					cands = append(cands, cand{f, c})
				}
			}
		}
		if len(cands) > 0 {
			// Earliest deadlines first, at random among the next few so
			// the seeders of one round pick different chunks.
			sort.SliceStable(cands, func(a, b int) bool { return cands[a].f.due[cands[a].c].Before(cands[b].f.due[cands[b].c]) })
			if prob >= 1 || rand.Float64() < prob {
				// The next due, at random among those due within 2 s of
				// the earliest (every chunk of a file): seeders of one
				// round rarely pick the same chunk.
				first := cands[0].f.due[cands[0].c].Add(2 * time.Second)
				window := sort.Search(len(cands), func(i int) bool { return cands[i].f.due[cands[i].c].After(first) })
				window = max(window, min(len(cands), 16))
				for sw.seeding < maxSeeds && len(cands) > 0 {
					i := rand.IntN(min(len(cands), window))
					pick := cands[i]
					if !p.edgeAllowance(pick.f.o.m, pick.c, now) {
						break
					}
					cands = append(cands[:i], cands[i+1:]...)
					pick.f.st[pick.c] = stEdge
					jobs = append(jobs, edgeJob{f: pick.f, c: pick.c, seed: true})
					sw.seeding++
				}
			}
			// Jitter the round so peers do not toss their coins in step.
			sw.nextSeed = now.Add(time.Duration(float64(p.opts.SeedInterval) * (0.5 + rand.Float64())))
		}
	}

	// Start the edge jobs within the concurrency bound; the rest wait.
	for _, j := range jobs {
		if p.edgeFetches >= p.opts.MaxEdgeFetches {
			j.f.st[j.c] = stNeed
			if j.seed {
				sw.seeding--
			}
			if j.prefixFrom != nil {
				// The peer request was cancelled; its prefix is lost.
				j.f.from[j.c] = nil
			}
			continue
		}
		p.edgeFetches++
		if j.urgent {
			p.stats.EdgeUrgent++
		} else {
			p.stats.EdgeSeeds++
		}
		p.tel.addEdgeFetch(j.urgent)
		p.wg.Add(1)
		go p.runEdge(j)
	}
}

// edgeAllowance takes a chunk's bytes from the edge allowance of
// x_policy (non-urgent fetches only); false when it cannot pay now. Called
// with p.mu held.
func (p *Peer) edgeAllowance(m *manifest.Manifest, c int, now time.Time) bool {
	if p.edgeLimiter == nil {
		return true
	}
	s, e := m.ChunkRange(c)
	n := int(min(e-s, int64(p.edgeLimiter.Burst())))
	if p.edgeLimiter.TokensAt(now) < float64(n) {
		return false
	}
	return p.edgeLimiter.AllowN(now, n)
}

// runEdge fetches (the rest of) a chunk from the edge and stores it.
func (p *Peer) runEdge(j edgeJob) {
	defer p.wg.Done()
	f, o := j.f, j.f.o
	start, end := o.m.ChunkRange(j.c)
	data := make([]byte, end-start)
	copy(data, j.prefix)
	t0 := time.Now()
	from := start + int64(len(j.prefix))
	var err error
	if from < end {
		err = p.edge.rangeGet(f.ctx, o.path, from, end, o.m.Size, j.urgent, data[len(j.prefix):])
	}
	ok := err == nil && o.m.Verify(j.c, data)
	blamePrefix := false
	if err == nil && !ok && len(j.prefix) > 0 {
		// The neighbor's prefix or the edge's bytes are wrong: the whole
		// chunk from the edge decides.
		err = p.edge.rangeGet(f.ctx, o.path, start, end, o.m.Size, j.urgent, data)
		ok = err == nil && o.m.Verify(j.c, data)
		blamePrefix = ok
	}
	elapsed := time.Since(t0)

	p.mu.Lock()
	p.edgeFetches--
	if j.seed {
		f.sw.seeding--
	}
	if f.st[j.c] == stEdge {
		f.st[j.c] = stNeed
	}
	var refused *RefusedError
	var he *HTTPError
	var closeLink *link
	switch {
	case f.ctx.Err() != nil:
		// The fetch ended meanwhile.
	case errors.As(err, &refused):
		// The edge's limit is the session's, over all its swarms: honour
		// its Retry-After for every fetch it applies to. A refused
		// non-urgent fetch stops Slurpie seeding (the chunk stays free for
		// peers and the urgent path); a refused urgent fetch (the viewer's
		// floor is spent) stops urgent fetches too, and peer requests
		// keep going meanwhile. Retrying sooner only earns more 429s.
		p.stats.EdgeRefusals++
		until := time.Now().Add(refused.RetryAfter)
		if until.After(p.nonUrgentBlocked) {
			p.nonUrgentBlocked = until
		}
		if j.urgent && until.After(p.urgentBlocked) {
			p.urgentBlocked = until
		}
	case errors.As(err, &he) && he.Status >= 400 && he.Status < 500 && he.Status != http.StatusRequestTimeout,
		errors.Is(err, ErrObjectChanged):
		p.endFetch(f, err)
	case err != nil:
		p.log.Debug("edge fetch failed; will retry", "path", o.path, "chunk", j.c, "err", err)
		f.retryAt[j.c] = time.Now().Add(500 * time.Millisecond)
	case !ok:
		p.endFetch(f, fmt.Errorf("fetching %s: chunk %d from the edge does not match its manifest: %w", o.path, j.c, ErrObjectChanged))
	default:
		if p.edgeEWMA == 0 {
			p.edgeEWMA, p.edgeDev = elapsed, elapsed/2
		} else {
			dev := elapsed - p.edgeEWMA
			if dev < 0 {
				dev = -dev
			}
			p.edgeDev = (3*p.edgeDev + dev) / 4
			p.edgeEWMA = (7*p.edgeEWMA + elapsed) / 8
		}
		prefix := len(j.prefix)
		if blamePrefix && j.prefixFrom != nil {
			p.badChunk(j.prefixFrom, f, j.c, prefix)
			closeLink = j.prefixFrom.l
			prefix = 0
		}
		p.complete(f, j.c, data, nil, j.prefixFrom, prefix)
	}
	p.mu.Unlock()
	if closeLink != nil {
		closeLink.close()
	}
	f.sw.wake()
}

// banned is the set of peers dropped for bad data. Called with p.mu held.
func (p *Peer) banned() map[signal.ID]bool {
	if p.bannedPeers == nil {
		p.bannedPeers = map[signal.ID]bool{}
	}
	return p.bannedPeers
}

func badChunkReport(n *neighbor, obj wire.ObjectID, c int) signal.BadChunk {
	return signal.BadChunk{PeerID: n.id, Object: obj.String(), Chunk: int64(c)}
}
