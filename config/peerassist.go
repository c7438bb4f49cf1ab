package config

// PeerAssist configures the coordinator: the WebTorrent-compatible signaling
// endpoint, swarms and sessions. See peerassist/PROTOCOL.md.
type PeerAssist struct {
	// Enabled turns the coordinator on. Default true.
	Enabled bool `yaml:"enabled"`
	// AnnounceInterval is the interval told to clients. Default 120s.
	AnnounceInterval Duration `yaml:"announce_interval"`
	// PeerTimeout removes a peer this long after its socket is gone.
	// Default 180s.
	PeerTimeout Duration `yaml:"peer_timeout"`
	// OfferMaxAge is how long a relayed offer may be answered. Default 120s.
	OfferMaxAge Duration `yaml:"offer_max_age"`
	// MaxOffers caps the offers relayed per announce. Default 10.
	MaxOffers int `yaml:"max_offers"`
	// MaxMessageBytes is the largest WebSocket message accepted. Default 64KiB.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// MessagesPerSecond and MessageBurst limit each connection (token
	// bucket). Defaults 20 and 60.
	MessagesPerSecond float64 `yaml:"messages_per_second"`
	MessageBurst      int     `yaml:"message_burst"`
	// MaxConnectionsPerIP caps signaling sockets per client address.
	// Default 64.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// AllowedOrigins are the browser Origin values accepted on the
	// signaling socket ("https://video.example"); empty accepts any Origin.
	// Requests without an Origin header (native peers) are always accepted.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// DefaultPeerAssist returns the documented defaults.
func DefaultPeerAssist() PeerAssist {
	return PeerAssist{
		Enabled:             true,
		AnnounceInterval:    Duration(120e9),
		PeerTimeout:         Duration(180e9),
		OfferMaxAge:         Duration(120e9),
		MaxOffers:           10,
		MaxMessageBytes:     64 << 10,
		MessagesPerSecond:   20,
		MessageBurst:        60,
		MaxConnectionsPerIP: 64,
	}
}

func (c *PeerAssist) validate(p *Problems) {
	p.CheckPositive("announce_interval", int64(c.AnnounceInterval))
	p.CheckPositive("peer_timeout", int64(c.PeerTimeout))
	p.CheckPositive("offer_max_age", int64(c.OfferMaxAge))
	if c.MaxOffers < 1 || c.MaxOffers > 100 {
		p.Addf("max_offers", "must be in 1..100 (got %d)", c.MaxOffers)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<20 {
		p.Addf("max_message_bytes", "must be between 1KiB and 1MiB (got %s)", c.MaxMessageBytes)
	}
	if !(c.MessagesPerSecond > 0) {
		p.Add("messages_per_second", "must be greater than 0")
	}
	p.CheckPositive("message_burst", int64(c.MessageBurst))
	p.CheckPositive("max_connections_per_ip", int64(c.MaxConnectionsPerIP))
	for i, o := range c.AllowedOrigins {
		p.CheckURL("allowed_origins["+itoa(i)+"]", o)
	}
}
