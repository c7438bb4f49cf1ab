package coordinator

import (
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// accusation is one bad-chunk report against a peer of a swarm.
type accusation struct {
	reporterIP netip.Addr
	session    string
	at         time.Time
}

// banKey bans one address from one swarm.
type banKey struct {
	sw swarmKey
	ip netip.Addr
}

// applyReport takes an x_report: cumulative counters (which must not go
// down) and bad chunks.
//
// The rule against false accusers:
//   - a report only counts against a peer the reporter was introduced to by
//     this coordinator (an offer or answer was relayed between them);
//   - a peer is dropped from the swarm (and its address banned from it for
//     ban_duration) once bad_chunk_reporters distinct reporter addresses
//     accused it within bad_chunk_window, so one client, or many sockets
//     from one address, cannot get anyone dropped alone;
//   - a session accusing more than max_accusations distinct peers within
//     the window is a false accuser: its reports are ignored and it is
//     dropped from the swarm itself (an honest viewer rarely meets that many
//     corrupt peers).
//
// Called with co.mu held.
func (co *Coordinator) applyReport(c *conn, h *handlerCtx, s *session, p *peer, r *signal.Report) {
	if r.FromPeersBytes < s.fromPeersBytes && r.FromPeersBytes >= 0 ||
		r.FromEdgeBytes < s.fromEdgeBytes && r.FromEdgeBytes >= 0 ||
		r.UploadedBytes < s.uploadedBytes && r.UploadedBytes >= 0 {
		co.tel.reject(reasonBadReport)
		h.failure(c, signal.ActionAnnounce, &h.req.InfoHash, "invalid x_report: counters are cumulative and must not decrease")
		return
	}
	sw := p.sw
	if r.FromPeersBytes >= 0 {
		sw.fromPeersBytes += r.FromPeersBytes - s.fromPeersBytes
		s.fromPeersBytes = r.FromPeersBytes
	}
	if r.FromEdgeBytes >= 0 {
		sw.fromEdgeBytes += r.FromEdgeBytes - s.fromEdgeBytes
		s.fromEdgeBytes = r.FromEdgeBytes
	}
	if r.UploadedBytes >= 0 {
		sw.uploadedBytes += r.UploadedBytes - s.uploadedBytes
		s.uploadedBytes = r.UploadedBytes
	}
	s.lastReport = time.Now()

	now := time.Now()
	cfg := &co.set.Load().cfg
	window := cfg.BadChunkWindow.D()
	for _, bc := range r.BadChunks {
		if bc.PeerID == p.id {
			continue
		}
		if !p.hasMet(bc.PeerID) {
			co.tel.reject(reasonUnverifiedReport)
			continue
		}
		// The reporter's own record first: a false accuser's reports do
		// not count.
		kept := s.accusations[:0]
		for _, a := range s.accusations {
			if now.Sub(a.at) < window {
				kept = append(kept, a)
			}
		}
		s.accusations = kept
		known := false
		for i := range s.accusations {
			if s.accusations[i].sw == sw.key && s.accusations[i].id == bc.PeerID {
				s.accusations[i].at = now
				known = true
			}
		}
		if !known {
			s.accusations = append(s.accusations, accused{sw: sw.key, id: bc.PeerID, at: now})
		}
		if len(s.accusations) > cfg.MaxAccusations {
			co.tel.reject(reasonFalseAccuser)
			co.log.Warn("peerassist: dropping a false accuser from its swarm",
				"client.address", c.ip.String(), "accused_peers", len(s.accusations))
			co.drop(p, "false accuser: reported bad chunks from too many peers")
			return
		}

		list := sw.accused[bc.PeerID]
		kept2 := list[:0]
		for _, a := range list {
			if now.Sub(a.at) < window && a.reporterIP != c.ip {
				kept2 = append(kept2, a)
			}
		}
		kept2 = append(kept2, accusation{reporterIP: c.ip, session: s.id, at: now})
		if sw.accused == nil {
			sw.accused = map[signal.ID][]accusation{}
		}
		sw.accused[bc.PeerID] = kept2
		if len(kept2) >= cfg.BadChunkReporters {
			delete(sw.accused, bc.PeerID)
			if bad := sw.peers[bc.PeerID]; bad != nil {
				co.drop(bad, "chunks failed verification")
			}
		}
	}
}

// drop removes a peer from its swarm for misbehaving, bans its address from
// that swarm and tells it why. Called with co.mu held.
func (co *Coordinator) drop(p *peer, why string) {
	sw := p.sw
	if sw == nil {
		return
	}
	ban := co.set.Load().cfg.BanDuration
	until := time.Now().Add(ban.D())
	if ban > 0 {
		co.bans[banKey{sw.key, p.c.ip}] = until
	}
	co.tel.span("peerassist.drop", p.c, sw, attribute.String("peerassist.peer_id", p.id.String()),
		attribute.String("peerassist.reason", why))
	co.log.Info("peerassist: dropped a peer from its swarm", "client.address", p.c.ip.String(),
		"peerassist.info_hash", sw.key.infoHash.String(), "peerassist.reason", why)
	resp := signal.Response{Kind: signal.KindFailure, Action: signal.ActionAnnounce,
		Failure: "dropped from swarm: " + why, InfoHash: sw.key.infoHash, HasInfoHash: true}
	buf := make([]byte, maxFrameHeader, 256)
	buf = resp.AppendJSON(buf)
	start := frameHeader(buf[:maxFrameHeader], opText, len(buf)-maxFrameHeader)
	// Writing under co.mu is safe: write never takes co.mu.
	p.c.write(buf[start:])
	co.removePeer(p, "dropped")
}
