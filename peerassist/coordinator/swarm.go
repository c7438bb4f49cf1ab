package coordinator

import (
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// swarmKey identifies a swarm: the peers of one region that share content.
type swarmKey struct {
	region   string
	infoHash signal.ID
}

// ispKey groups peers of one ISP the way region.Compare does: by ASN when
// known, else by name.
type ispKey struct {
	asn  uint32
	name string
}

func ispOf(l region.Locality) ispKey {
	if l.ASN != 0 {
		return ispKey{asn: l.ASN}
	}
	return ispKey{name: l.ISP}
}

// Which of a peer's three set memberships an index refers to.
const (
	setAll = iota
	setISP
	setSubnet
)

// peerSet is a group of peers split by what they hold, with O(1) insertion
// and removal (each peer remembers its index). The zero value is empty and
// usable; guarded by Coordinator.mu.
type peerSet struct {
	seeds, leeches []*peer
}

func (s *peerSet) list(p *peer) *[]*peer {
	if p.complete {
		return &s.seeds
	}
	return &s.leeches
}

func (s *peerSet) add(p *peer, which int) {
	l := s.list(p)
	p.idx[which] = int32(len(*l))
	*l = append(*l, p)
}

func (s *peerSet) remove(p *peer, which int) {
	l := s.list(p)
	i := p.idx[which]
	last := len(*l) - 1
	if int(i) != last {
		moved := (*l)[last]
		(*l)[i] = moved
		moved.idx[which] = i
	}
	(*l)[last] = nil
	*l = (*l)[:last]
	if cap(*l) > 64 && len(*l) < cap(*l)/4 {
		*l = slices.Clip(slices.Clone(*l))
	}
}

func (s *peerSet) size() int { return len(s.seeds) + len(s.leeches) }

// swarm is one (region, info_hash). Create it with newSwarm (the zero value
// has no maps). Guarded by Coordinator.mu, except the atomic counters.
type swarm struct {
	key      swarmKey
	ihJSON   []byte // key.infoHash as a JSON binary string
	peers    map[signal.ID]*peer
	all      peerSet
	byISP    map[ispKey]*peerSet
	bySubnet map[netip.Prefix]*peerSet
	complete int

	// accused maps a peer_id to the bad-chunk reports against it.
	accused map[signal.ID][]accusation

	// Attribution: bytes the edge served to sessions whose current swarm
	// this is (atomic, from Served) and what clients reported.
	edgeServedBytes atomic.Int64
	fromPeersBytes  int64
	fromEdgeBytes   int64
	uploadedBytes   int64
}

func newSwarm(k swarmKey) *swarm {
	return &swarm{key: k, ihJSON: k.infoHash.AppendJSON(nil), peers: map[signal.ID]*peer{}, byISP: map[ispKey]*peerSet{},
		bySubnet: map[netip.Prefix]*peerSet{}}
}

func (sw *swarm) incomplete() int { return len(sw.peers) - sw.complete }

// pendingOffer is an offer relayed to a peer and not yet answered.
type pendingOffer struct {
	offerID signal.ID
	from    signal.ID // the offerer's peer_id
	fromC   uint64    // the offerer's connection
	atSec   uint32    // seconds since the coordinator started
}

// maxMet bounds how many recent partners a peer remembers (for bad-chunk
// reports: a peer may only accuse a peer it was introduced to).
const maxMet = 32

// peer is one peer_id in one swarm, bound to one connection. Built by the
// announce handler; guarded by Coordinator.mu.
type peer struct {
	id       signal.ID
	idHash   uint64 // idHash(id), for the partners' met lists
	idJSON   []byte // id as a JSON binary string, for relays
	sw       *swarm
	c        *conn
	site     *siteInfo
	complete bool
	have     int64
	idx      [3]int32
	mark     uint64 // selection generation, to skip peers already chosen
	pending  []pendingOffer
	met      []uint64 // hashes of recently introduced partners (ring)
	metNext  uint8
}

func (p *peer) isp() ispKey { return ispOf(p.c.loc) }

func idHash(id signal.ID) uint64 {
	var h uint64 = 14695981039346656037
	for _, b := range id {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// remember records that p was introduced to other.
func (p *peer) remember(other *peer) {
	h := other.idHash
	if slices.Contains(p.met, h) {
		return
	}
	if len(p.met) < maxMet {
		p.met = append(p.met, h)
		return
	}
	p.met[p.metNext%maxMet] = h
	p.metNext++
}

func (p *peer) hasMet(other signal.ID) bool { return slices.Contains(p.met, idHash(other)) }

// join adds p to the swarm's sets.
func (sw *swarm) join(p *peer) {
	sw.peers[p.id] = p
	if p.complete {
		sw.complete++
	}
	sw.all.add(p, setAll)
	isp := sw.byISP[p.isp()]
	if isp == nil {
		isp = &peerSet{}
		sw.byISP[p.isp()] = isp
	}
	isp.add(p, setISP)
	if sub := p.c.loc.Subnet; sub.IsValid() {
		s := sw.bySubnet[sub]
		if s == nil {
			s = &peerSet{}
			sw.bySubnet[sub] = s
		}
		s.add(p, setSubnet)
	}
}

// leave removes p from the swarm's sets.
func (sw *swarm) leave(p *peer) {
	if sw.peers[p.id] != p {
		return
	}
	delete(sw.peers, p.id)
	if p.complete {
		sw.complete--
	}
	sw.all.remove(p, setAll)
	if isp := sw.byISP[p.isp()]; isp != nil {
		isp.remove(p, setISP)
		if isp.size() == 0 {
			delete(sw.byISP, p.isp())
		}
	}
	if sub := p.c.loc.Subnet; sub.IsValid() {
		if s := sw.bySubnet[sub]; s != nil {
			s.remove(p, setSubnet)
			if s.size() == 0 {
				delete(sw.bySubnet, sub)
			}
		}
	}
}

// setComplete makes p a seed (complete) or a leech, moving it between the
// seed and leech lists.
func (sw *swarm) setComplete(p *peer, complete bool) {
	if p.complete == complete {
		return
	}
	sw.leave(p)
	p.complete = complete
	sw.join(p)
}

// canServe reports whether p may be sent offers: its session allows
// uploading and is not at its upload budget.
func (p *peer) canServe() bool {
	s := p.c.sess
	return s != nil && !s.caps.NoUpload && !s.atBudget.Load() && p.c.isOpen()
}

// allowsCrossISP reports whether p's site lets it meet other ISPs' peers.
func (p *peer) allowsCrossISP() bool { return p.site != nil && p.site.crossISP }

// pick chooses up to want peers of sw for offerer o, best first: by tier
// (same subnet, same ISP, other ISPs of the region where both sites allow
// it), then by holdings (for a leecher: seeds first, then leeches with more
// chunks; for a seed: leeches first), then at random among equals. Peers
// that cannot serve, o itself and peers on o's connection are skipped. The
// result is appended to h.cands.
//
// gen must be new for each call (peers are marked with it) and unique
// across goroutines: the caller takes it from the coordinator under its
// lock.
func (h *handlerCtx) pick(sw *swarm, o *peer, want int, gen uint64) []*peer {
	h.cands = h.cands[:0]
	h.gen = gen
	o.mark = h.gen
	if want <= 0 {
		return h.cands
	}
	tiers := [3]*peerSet{}
	if sub := o.c.loc.Subnet; sub.IsValid() {
		tiers[0] = sw.bySubnet[sub]
	}
	tiers[1] = sw.byISP[o.isp()]
	if o.allowsCrossISP() {
		tiers[2] = &sw.all
	}
	for tier, set := range tiers {
		if set == nil {
			continue
		}
		first, second := set.seeds, set.leeches
		if o.complete {
			first, second = set.leeches, set.seeds
		}
		h.pickFrom(first, o, want, tier, false)
		h.pickFrom(second, o, want, tier, !o.complete)
		if len(h.cands) >= want {
			break
		}
	}
	return h.cands
}

// eligible reports whether c may be offered to o at this tier.
func (h *handlerCtx) eligible(c, o *peer, tier int) bool {
	if c.mark == h.gen || c.c == o.c || !c.canServe() {
		return false
	}
	if tier == 2 {
		// Other ISPs: both sites must allow it. Same-ISP peers were
		// considered in the earlier tiers.
		if c.isp() == o.isp() || !c.allowsCrossISP() {
			return false
		}
	}
	return region.Compare(o.c.loc, c.c.loc) != region.Never
}

// smallList is the list length up to which pickFrom shuffles exactly;
// beyond it, it samples.
const smallList = 64

// pickFrom adds up to want-len(h.cands) eligible peers of list. With
// byHave, it prefers peers holding more chunks: it draws twice as many
// eligible peers as it needs at random and keeps those with the highest
// x_have (exact on small lists), so holdings matter while the mesh stays a
// random graph.
func (h *handlerCtx) pickFrom(list []*peer, o *peer, want, tier int, byHave bool) {
	need := want - len(h.cands)
	if need <= 0 || len(list) == 0 {
		return
	}
	draw := need
	if byHave {
		draw = 2*need + 2
	}
	start := len(h.cands)
	if len(list) <= smallList || len(list) <= 4*draw {
		// Partial Fisher-Yates over the indexes.
		h.perm = h.perm[:0]
		for i := range list {
			h.perm = append(h.perm, int32(i))
		}
		for i := 0; i < len(h.perm) && len(h.cands)-start < draw; i++ {
			j := i + h.rng.IntN(len(h.perm)-i)
			h.perm[i], h.perm[j] = h.perm[j], h.perm[i]
			c := list[h.perm[i]]
			if h.eligible(c, o, tier) {
				c.mark = h.gen
				h.cands = append(h.cands, c)
			}
		}
	} else {
		// Random probing: on a large list, collisions and ineligible peers
		// are rare enough that a bounded number of tries fills the draw.
		for tries := 4*draw + 16; tries > 0 && len(h.cands)-start < draw; tries-- {
			c := list[h.rng.IntN(len(list))]
			if h.eligible(c, o, tier) {
				c.mark = h.gen
				h.cands = append(h.cands, c)
			}
		}
	}
	if byHave && len(h.cands)-start > need {
		drawn := h.cands[start:]
		slices.SortStableFunc(drawn, func(a, b *peer) int {
			switch {
			case a.have > b.have:
				return -1
			case a.have < b.have:
				return 1
			}
			return 0
		})
		// Unmark the ones we drop so a later tier may still consider them
		// (they are eligible, just ranked lower).
		for _, c := range drawn[need:] {
			c.mark = 0
		}
		clear(drawn[need:])
		h.cands = h.cands[:start+need]
	}
}
