package config

import (
	"strings"
	"testing"
)

func TestPeerAssistDefaultsValid(t *testing.T) {
	pa := DefaultPeerAssist()
	var p Problems
	pa.validate(&p)
	if err := p.Err("", nil); err != nil {
		t.Fatalf("DefaultPeerAssist() is invalid: %v", err)
	}
}

func TestPeerAssistValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*PeerAssist)
		want string // substring of the error, with its path
	}{
		{"offers", func(c *PeerAssist) { c.MaxOffers = 0 }, "peer_assist.max_offers: must be in 1..100"},
		{"timeout vs interval", func(c *PeerAssist) { c.PeerTimeout = c.AnnounceInterval }, "peer_assist.peer_timeout: must be longer"},
		{"message bytes", func(c *PeerAssist) { c.MaxMessageBytes = 10 }, "peer_assist.max_message_bytes"},
		{"send queue", func(c *PeerAssist) { c.MaxSendQueueBytes = 1024 }, "peer_assist.max_send_queue_bytes"},
		{"rate", func(c *PeerAssist) { c.MessagesPerSecond = 0 }, "peer_assist.messages_per_second"},
		{"pending", func(c *PeerAssist) { c.MaxPendingOffers = 0 }, "peer_assist.max_pending_offers"},
		{"origin path", func(c *PeerAssist) { c.AllowedOrigins = []string{"https://a.example/x"} }, "peer_assist.allowed_origins[0]"},
		{"origin scheme", func(c *PeerAssist) { c.AllowedOrigins = []string{"https://ok.example", "ftp://a"} }, "peer_assist.allowed_origins[1]"},
		{"reporters", func(c *PeerAssist) { c.BadChunkReporters = 0 }, "peer_assist.bad_chunk_reporters"},
		{"accusations", func(c *PeerAssist) { c.MaxAccusations = 0 }, "peer_assist.max_accusations"},
		{"ban", func(c *PeerAssist) { c.BanDuration = -1 }, "peer_assist.ban_duration"},
		{"trace ratio", func(c *PeerAssist) { c.RelayTraceRatio = 2 }, "peer_assist.relay_trace_ratio"},
		{"max conns", func(c *PeerAssist) { c.MaxConnections = 0 }, "peer_assist.max_connections"},
		{"swarms per conn", func(c *PeerAssist) { c.MaxSwarmsPerConnection = 0 }, "peer_assist.max_swarms_per_connection"},
	}
	for _, tt := range tests {
		pa := DefaultPeerAssist()
		tt.mod(&pa)
		var p Problems
		pa.validate(p.Sub("peer_assist"))
		err := p.Err("", nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestPeerAssistYAML(t *testing.T) {
	c, err := Parse("pa.yaml", []byte("sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\npeer_assist:\n  max_offers: 5\n  bad_chunk_window: 2m\n  allowed_origins: [\"https://video.example\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PeerAssist.MaxOffers != 5 || c.PeerAssist.BadChunkWindow.D().Minutes() != 2 || c.PeerAssist.MessageBurst != 60 {
		t.Errorf("peer_assist = %+v", c.PeerAssist)
	}
	_, err = Parse("pa.yaml", []byte("sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\npeer_assist:\n  max_offers: 500\n"))
	if err == nil || !strings.Contains(err.Error(), "pa.yaml:5: peer_assist.max_offers") {
		t.Errorf("Parse(max_offers: 500) = %v, want pa.yaml:5: peer_assist.max_offers", err)
	}
}
