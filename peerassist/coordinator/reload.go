package coordinator

import (
	"fmt"
	"strconv"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// settings are the coordinator's configuration: the peer_assist section,
// the sites and what is derived from them. Immutable: Reload swaps in new
// ones, so the paths that read them (every message, every upgrade) pay one
// atomic load and no lock.
type settings struct {
	cfg config.PeerAssist
	// region is the region this box serves (Options.Region).
	region  string
	sites   siteTable
	origins map[string]bool // the allowlist; empty accepts any Origin

	offerMaxAge time.Duration
	peerTimeout time.Duration
	intervalSec int // announce_interval told to clients, in whole seconds
}

func newSettings(cfg config.PeerAssist, sites []config.Site, region string) *settings {
	st := &settings{
		cfg:         cfg,
		region:      region,
		sites:       newSiteTable(sites),
		origins:     map[string]bool{},
		offerMaxAge: cfg.OfferMaxAge.D(),
		peerTimeout: cfg.PeerTimeout.D(),
		intervalSec: int((cfg.AnnounceInterval.D() + time.Second - 1) / time.Second),
	}
	for _, o := range cfg.AllowedOrigins {
		st.origins[o] = true
	}
	return st
}

// eligible reports whether a connection located at loc takes part in
// swarms: its region is known and is the one this box serves.
func (st *settings) eligible(c *conn) bool {
	return c.loc.Known && c.loc.Region != "" && (st.region == "" || c.loc.Region == st.region)
}

// Reload applies a new peer_assist section, sites and region name (a
// configuration reload: the edge calls it on SIGHUP) without closing any
// signaling socket. Invalid input changes nothing and is returned, each
// problem with its path.
//
// What changes, and when:
//   - per-connection rate limits (messages_per_second, message_burst),
//     max_message_bytes and max_send_queue_bytes: from the next message or
//     write on every socket, open or new (a socket already over a lowered
//     send queue is closed at its next write, as any slow reader);
//   - max_offers, max_pending_offers, max_swarms_per_connection,
//     offer_max_age, the bad-chunk rules (bad_chunk_reporters,
//     max_accusations, bad_chunk_window) and relay_trace_ratio: from the
//     next message;
//   - announce_interval: in every reply from now on (clients re-announce
//     at the interval they were last told);
//   - peer_timeout: at the next sweep (silent sockets, detached sessions);
//   - ban_duration: new bans, and bans in force now end ban_duration after
//     they began (0 lifts them);
//   - allowed_origins, max_connections and max_connections_per_ip: for new
//     upgrades; sockets already open stay open even over a lowered cap;
//   - sites and the region name: every connection's site is resolved
//     again (by its Origin or Host) and every peer's (by name), so
//     allow_cross_isp applies to the next offers; peers of a site whose
//     peer assistance is now disabled, and of connections no longer in
//     the region served, leave their swarms and are told why (their
//     sockets stay open: the client keeps its session and HTTP use).
//
// peer_assist.enabled changes only on restart (it decides whether the edge
// runs a coordinator and a policy loop at all): a change is logged as such
// and ignored. Reload is safe for concurrent use.
func (co *Coordinator) Reload(cfg config.PeerAssist, sites []config.Site, region string) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("coordinator: reload: %w", err)
	}
	next := newSettings(cfg, sites, region)
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return ErrClosed
	}
	old := co.set.Load()
	if cfg.Enabled != old.cfg.Enabled {
		co.log.Warn("peerassist: a setting changes only on restart; keeping the running value",
			"setting", "peer_assist.enabled", "running", old.cfg.Enabled, "configured", cfg.Enabled)
		next.cfg.Enabled = old.cfg.Enabled
	}
	co.set.Store(next)

	if d := next.cfg.BanDuration.D() - old.cfg.BanDuration.D(); d != 0 {
		for k, until := range co.bans {
			if next.cfg.BanDuration <= 0 {
				delete(co.bans, k)
			} else {
				co.bans[k] = until.Add(d)
			}
		}
	}

	// Sites and region: resolve every connection's and peer's again. The
	// fields are guarded by mu, which every reader holds.
	var leaving []*peer
	var why []string
	for c := range co.conns {
		c.site = next.sites.forRequest(c.origin, c.host)
		c.eligible = next.eligible(c)
		for _, p := range c.peers {
			p.site = next.sites.refresh(p.site, c.site)
			switch {
			case !c.eligible:
				leaving, why = append(leaving, p), append(why, "this edge no longer serves your region")
			case p.site != nil && !p.site.enabled:
				leaving, why = append(leaving, p), append(why, "peer assistance is disabled for site "+strconv.Quote(p.site.name))
			}
		}
	}
	for i, p := range leaving {
		co.expel(p, why[i])
	}
	co.sessions.Range(func(_, v any) bool {
		if s := v.(*session); s.site != "" && next.sites.byName[s.site] == nil {
			// Its site is gone: it takes its connection's, or none.
			s.site = ""
			if s.c != nil && s.c.site != nil {
				s.site = s.c.site.name
			}
		}
		return true
	})
	co.log.Info("peerassist: configuration reloaded", "sites", len(next.sites.sites),
		"allowed_origins", len(next.origins), "messages_per_second", next.cfg.MessagesPerSecond,
		"message_burst", next.cfg.MessageBurst, "left_swarms", len(leaving))
	return nil
}

// expel takes p out of its swarm after a reload, without a ban, and tells
// the client why. Called with co.mu held.
func (co *Coordinator) expel(p *peer, why string) {
	sw := p.sw
	if sw == nil {
		return
	}
	resp := signal.Response{Kind: signal.KindFailure, Action: signal.ActionAnnounce,
		Failure: "left the swarm: " + why, InfoHash: sw.key.infoHash, HasInfoHash: true}
	buf := make([]byte, maxFrameHeader, 256)
	buf = resp.AppendJSON(buf)
	start := frameHeader(buf[:maxFrameHeader], opText, len(buf)-maxFrameHeader)
	// Writing under co.mu is safe: write never takes co.mu.
	p.c.write(buf[start:])
	co.removePeer(p, "reload")
}
