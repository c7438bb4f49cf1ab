package config

import (
	"net/url"
	"strings"
)

// PeerAssist configures the coordinator: the WebTorrent-compatible signaling
// endpoint (/pa/v1/announce), swarms and sessions. See peerassist/PROTOCOL.md.
// Every setting but enabled changes on reload (SIGHUP) for the next
// messages and upgrades; open signaling sockets stay open.
type PeerAssist struct {
	// Enabled turns the coordinator on. Default true. Changes only on
	// restart.
	Enabled bool `yaml:"enabled"`
	// AnnounceInterval is the interval told to clients. Default 120s.
	AnnounceInterval Duration `yaml:"announce_interval"`
	// PeerTimeout closes a signaling socket silent this long (no message,
	// no pong to our pings, which go out after PeerTimeout/3 of silence),
	// removing its peers, and forgets a session this long after its socket
	// is gone. Default 180s.
	PeerTimeout Duration `yaml:"peer_timeout"`
	// OfferMaxAge is how long a relayed offer may be answered. Default 120s.
	OfferMaxAge Duration `yaml:"offer_max_age"`
	// MaxOffers caps the offers relayed per announce. Default 10; 1..100.
	MaxOffers int `yaml:"max_offers"`
	// MaxPendingOffers caps the offers relayed to one peer and not yet
	// answered that the coordinator remembers (the oldest is forgotten
	// first); an answer is relayed only for a remembered offer. Default 64.
	MaxPendingOffers int `yaml:"max_pending_offers"`
	// MaxMessageBytes is the largest WebSocket message accepted; a larger
	// one closes the socket (1009). Default 64KiB; 1KiB..1MiB.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// MaxSendQueueBytes is how much may wait to be written to one socket
	// whose reader is slow; beyond it the socket is closed. Default 1MiB.
	MaxSendQueueBytes ByteSize `yaml:"max_send_queue_bytes"`
	// MessagesPerSecond and MessageBurst limit each connection (token
	// bucket). A message beyond the limit is refused with a failure reason;
	// a connection that keeps sending while refused (a debt of another
	// MessageBurst messages) is closed (1008). Malformed messages cost 5
	// tokens. Defaults 20 and 60.
	MessagesPerSecond float64 `yaml:"messages_per_second"`
	MessageBurst      int     `yaml:"message_burst"`
	// MaxConnectionsPerIP caps signaling sockets per client address (after
	// trusted-proxy resolution); more get 429. Default 64.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxSwarmsPerConnection caps the swarms one socket may be in at once
	// (a player joins one per stream or rendition; a socket joining
	// thousands is abuse). Default 32.
	MaxSwarmsPerConnection int `yaml:"max_swarms_per_connection"`
	// MaxConnections caps all signaling sockets; more get 503. The
	// process's open-files limit must be above it. Default 50000.
	MaxConnections int `yaml:"max_connections"`
	// AllowedOrigins are the browser Origin values accepted on the
	// signaling socket ("https://video.example", scheme://host[:port]);
	// empty accepts any Origin. Requests without an Origin header (native
	// peers) are always accepted.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// BadChunkReporters is how many distinct reporters (distinct client
	// addresses, each of which was introduced to the sender by this
	// coordinator) must report a chunk from one peer that failed
	// verification, within BadChunkWindow, before that peer is dropped from
	// the swarm. Default 2; 1 trusts every single report.
	BadChunkReporters int `yaml:"bad_chunk_reporters"`
	// MaxAccusations is how many distinct peers one session may accuse
	// within BadChunkWindow; a session accusing more is treated as a false
	// accuser: its reports are ignored and it is dropped from the swarm.
	// Default 3.
	MaxAccusations int `yaml:"max_accusations"`
	// BadChunkWindow is how long bad-chunk reports are remembered.
	// Default 10m.
	BadChunkWindow Duration `yaml:"bad_chunk_window"`
	// BanDuration is how long a dropped peer's address may not rejoin the
	// swarm it was dropped from. Default 1h.
	BanDuration Duration `yaml:"ban_duration"`
	// RelayTraceRatio is the fraction of offer and answer relays that get
	// a span (joins and leaves always do, subject to the tracer's sampler).
	// Default 0.001; 0..1.
	RelayTraceRatio float64 `yaml:"relay_trace_ratio"`
}

// DefaultPeerAssist returns the documented defaults.
func DefaultPeerAssist() PeerAssist {
	return PeerAssist{
		Enabled:                true,
		AnnounceInterval:       Duration(120e9),
		PeerTimeout:            Duration(180e9),
		OfferMaxAge:            Duration(120e9),
		MaxOffers:              10,
		MaxPendingOffers:       64,
		MaxMessageBytes:        64 << 10,
		MaxSendQueueBytes:      1 << 20,
		MessagesPerSecond:      20,
		MessageBurst:           60,
		MaxConnectionsPerIP:    64,
		MaxSwarmsPerConnection: 32,
		MaxConnections:         50000,
		BadChunkReporters:      2,
		MaxAccusations:         3,
		BadChunkWindow:         Duration(600e9),
		BanDuration:            Duration(3600e9),
		RelayTraceRatio:        0.001,
	}
}

func (c *PeerAssist) validate(p *Problems) {
	p.CheckPositiveDuration("announce_interval", c.AnnounceInterval)
	p.CheckPositiveDuration("peer_timeout", c.PeerTimeout)
	if c.PeerTimeout > 0 && c.AnnounceInterval > 0 && c.PeerTimeout <= c.AnnounceInterval {
		p.Addf("peer_timeout", "must be longer than announce_interval (%s), or announcing peers would be dropped", c.AnnounceInterval)
	}
	p.CheckPositiveDuration("offer_max_age", c.OfferMaxAge)
	if c.MaxOffers < 1 || c.MaxOffers > 100 {
		p.Addf("max_offers", "must be in 1..100 (got %d)", c.MaxOffers)
	}
	if c.MaxPendingOffers < 1 || c.MaxPendingOffers > 10000 {
		p.Addf("max_pending_offers", "must be in 1..10000 (got %d)", c.MaxPendingOffers)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<20 {
		p.Addf("max_message_bytes", "must be between 1KiB and 1MiB (got %s)", c.MaxMessageBytes)
	}
	if c.MaxSendQueueBytes < c.MaxMessageBytes {
		p.Addf("max_send_queue_bytes", "must hold at least one message (max_message_bytes %s) (got %s)", c.MaxMessageBytes, c.MaxSendQueueBytes)
	}
	if !(c.MessagesPerSecond > 0) || c.MessagesPerSecond > 1e6 {
		p.Addf("messages_per_second", "must be in (0, 1000000] (got %g)", c.MessagesPerSecond)
	}
	p.CheckPositive("message_burst", int64(c.MessageBurst))
	p.CheckPositive("max_connections_per_ip", int64(c.MaxConnectionsPerIP))
	p.CheckPositive("max_connections", int64(c.MaxConnections))
	if c.MaxSwarmsPerConnection < 1 || c.MaxSwarmsPerConnection > 10000 {
		p.Addf("max_swarms_per_connection", "must be in 1..10000 (got %d)", c.MaxSwarmsPerConnection)
	}
	for i, o := range c.AllowedOrigins {
		field := "allowed_origins[" + itoa(i) + "]"
		n := p.Len()
		p.CheckURL(field, o)
		if p.Len() == n {
			if u, _ := url.Parse(o); (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				p.Addf(field, "%q: an Origin is scheme://host[:port] only", o)
			} else if strings.HasSuffix(o, "/") {
				p.Addf(field, "%q: an Origin has no trailing slash", o)
			}
		}
	}
	if c.BadChunkReporters < 1 || c.BadChunkReporters > 100 {
		p.Addf("bad_chunk_reporters", "must be in 1..100 (got %d)", c.BadChunkReporters)
	}
	if c.MaxAccusations < 1 || c.MaxAccusations > 1000 {
		p.Addf("max_accusations", "must be in 1..1000 (got %d)", c.MaxAccusations)
	}
	p.CheckPositiveDuration("bad_chunk_window", c.BadChunkWindow)
	if c.BanDuration < 0 {
		p.Add("ban_duration", "must not be negative")
	}
	p.CheckFraction("relay_trace_ratio", c.RelayTraceRatio, true)
}

// Validate checks this section alone (for a section built in code, as the
// coordinator's constructor does); paths start with "peer_assist.".
func (c PeerAssist) Validate() error {
	var p Problems
	c.validate(p.Sub("peer_assist"))
	return p.Err("", nil)
}
