package coordinator

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// reload applies the running settings changed by mod (on a fresh copy of
// testSites) and fails the test on an error.
func (e *testEdge) reload(mod func(c *config.PeerAssist, sites []config.Site) (region string)) {
	e.t.Helper()
	st := e.co.set.Load()
	cfg, sites, region := st.cfg, testSites(), st.region
	if mod != nil {
		if r := mod(&cfg, sites); r != "" {
			region = r
		}
	}
	if err := e.co.Reload(cfg, sites, region); err != nil {
		e.t.Fatalf("Reload: %v", err)
	}
}

func (e *testEdge) conns() int {
	e.co.mu.Lock()
	defer e.co.mu.Unlock()
	return len(e.co.conns)
}

// scrapeOK checks that c's socket is open and served: a scrape is answered.
func (c *client) scrapeOK() {
	c.t.Helper()
	c.sendRaw(`{"action":"scrape","info_hash":"zzzzzzzzzzzzzzzzzzzz"}`)
	c.mustRecv(signal.KindScrape)
}

var (
	videoOrigin = http.Header{"Origin": {"https://video.example"}}
	openOrigin  = http.Header{"Origin": {"https://open.example"}}
)

// TestReload: settings reloaded on a running coordinator apply to new
// messages and connections, and no socket is closed by the reload.
func TestReload(t *testing.T) {
	type state map[string]*client
	tests := []struct {
		name   string
		cfg    func(*config.PeerAssist)
		opts   func(*Options)
		before func(t *testing.T, e *testEdge) state
		change func(c *config.PeerAssist, sites []config.Site) (region string)
		after  func(t *testing.T, e *testEdge, s state)
	}{
		{
			name: "a lower rate limit applies to a live connection",
			cfg:  func(c *config.PeerAssist) { c.MessagesPerSecond, c.MessageBurst = 1000, 1000 },
			before: func(t *testing.T, e *testEdge) state {
				c := e.mustDial("127.1.0.1")
				for range 20 {
					c.scrapeOK()
				}
				return state{"c": c}
			},
			change: func(c *config.PeerAssist, _ []config.Site) string {
				c.MessagesPerSecond, c.MessageBurst = 0.5, 3
				return ""
			},
			after: func(t *testing.T, e *testEdge, s state) {
				c := s["c"]
				for range 3 {
					c.scrapeOK()
				}
				c.sendRaw(`{"action":"scrape","info_hash":"zzzzzzzzzzzzzzzzzzzz"}`)
				if r := c.mustRecv(signal.KindFailure); !strings.Contains(r.Failure, "at most 0.5 messages per second") {
					t.Errorf("4th message after the reload: %q, want the new rate limit", r.Failure)
				}
			},
		},
		{
			name: "a higher max_message_bytes applies to a live connection",
			cfg:  func(c *config.PeerAssist) { c.MaxMessageBytes = 2048 },
			before: func(t *testing.T, e *testEdge) state {
				return state{"c": e.mustDial("127.1.0.1")}
			},
			change: func(c *config.PeerAssist, _ []config.Site) string { c.MaxMessageBytes = 8192; return "" },
			after: func(t *testing.T, e *testEdge, s state) {
				c := s["c"]
				c.sendRaw(`{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa","pad":"` + strings.Repeat("x", 3000) + `"}`)
				if _, err := c.recv(5 * time.Second); err != nil {
					t.Fatalf("a 3 KB message after raising the limit to 8 KiB: %v", err)
				}
				c.scrapeOK()
			},
		},
		{
			name: "the origin allowlist applies to new upgrades, open sockets stay",
			cfg:  func(c *config.PeerAssist) { c.AllowedOrigins = []string{"https://video.example"} },
			before: func(t *testing.T, e *testEdge) state {
				c, _, err := e.dial("127.1.0.1", videoOrigin)
				if err != nil {
					t.Fatal(err)
				}
				c.join(ih("allow"))
				return state{"c": c}
			},
			change: func(c *config.PeerAssist, _ []config.Site) string {
				c.AllowedOrigins = []string{"https://open.example"}
				return ""
			},
			after: func(t *testing.T, e *testEdge, s state) {
				if _, resp, err := e.dial("127.1.0.2", videoOrigin); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("new upgrade from the origin removed: err %v, resp %v; want 403", err, resp)
				}
				if _, _, err := e.dial("127.1.0.3", openOrigin); err != nil {
					t.Errorf("new upgrade from the origin added: %v", err)
				}
				s["c"].scrapeOK()
				s["c"].join(ih("allow")) // its announces are served too
			},
		},
		{
			name: "a lower per-address cap applies to new connections only",
			cfg:  func(c *config.PeerAssist) { c.MaxConnectionsPerIP = 3 },
			before: func(t *testing.T, e *testEdge) state {
				s := state{"a": e.mustDial("127.1.0.1"), "b": e.mustDial("127.1.0.1")}
				waitFor(t, func() bool { return e.conns() == 2 })
				return s
			},
			change: func(c *config.PeerAssist, _ []config.Site) string { c.MaxConnectionsPerIP = 1; return "" },
			after: func(t *testing.T, e *testEdge, s state) {
				if _, resp, err := e.dial("127.1.0.1", nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
					t.Errorf("third connection: err %v, resp %v; want 429", err, resp)
				}
				s["a"].scrapeOK()
				s["b"].scrapeOK()
			},
		},
		{
			name: "max_offers and announce_interval apply to the next announce",
			before: func(t *testing.T, e *testEdge) state {
				s := state{}
				for _, ip := range []string{"127.1.0.1", "127.1.0.2", "127.1.0.3"} {
					s[ip] = e.mustDial(ip)
					s[ip].join(ih("offers"))
				}
				return s
			},
			change: func(c *config.PeerAssist, _ []config.Site) string {
				c.MaxOffers, c.AnnounceInterval = 1, config.Duration(30*time.Second)
				return ""
			},
			after: func(t *testing.T, e *testEdge, s state) {
				o := e.mustDial("127.1.0.9")
				o.announce(ih("offers"), signal.EventStarted, 3, 0, nil)
				if r := o.mustRecv(signal.KindAnnounce); r.Interval != 30 {
					t.Errorf("interval told %d, want 30", r.Interval)
				}
				got := 0
				for _, ip := range []string{"127.1.0.1", "127.1.0.2", "127.1.0.3"} {
					if r, err := s[ip].recv(300 * time.Millisecond); err == nil && r.Kind == signal.KindOffer {
						got++
					}
				}
				if got != 1 {
					t.Errorf("%d offers relayed, want max_offers 1", got)
				}
			},
		},
		{
			name: "allow_cross_isp applies to the next offers",
			before: func(t *testing.T, e *testEdge) state {
				s := state{}
				for _, ip := range []string{"127.1.0.1", "127.2.0.1"} {
					c, _, err := e.dial(ip, videoOrigin)
					if err != nil {
						t.Fatal(err)
					}
					c.join(ih("cross"))
					s[ip] = c
				}
				s["127.2.0.1"].announce(ih("cross"), signal.EventUpdate, 1, 0, nil)
				s["127.2.0.1"].mustRecv(signal.KindAnnounce)
				s["127.1.0.1"].expectNothing(100 * time.Millisecond) // another ISP: not yet
				return s
			},
			change: func(_ *config.PeerAssist, sites []config.Site) string {
				sites[0].PeerAssist.AllowCrossISP = true
				return ""
			},
			after: func(t *testing.T, e *testEdge, s state) {
				s["127.2.0.1"].announce(ih("cross"), signal.EventUpdate, 1, 1, nil)
				s["127.2.0.1"].mustRecv(signal.KindAnnounce)
				if r := s["127.1.0.1"].mustRecv(signal.KindOffer); r.PeerID != s["127.2.0.1"].id {
					t.Errorf("offer from %x, want the other ISP's peer", r.PeerID)
				}
			},
		},
		{
			name: "a site disabled: its peers leave their swarms, sockets stay open",
			before: func(t *testing.T, e *testEdge) state {
				c, _, err := e.dial("127.1.0.1", videoOrigin)
				if err != nil {
					t.Fatal(err)
				}
				c.join(ih("gone"))
				o, _, err := e.dial("127.1.0.2", openOrigin)
				if err != nil {
					t.Fatal(err)
				}
				o.join(ih("stays"))
				return state{"c": c, "o": o}
			},
			change: func(_ *config.PeerAssist, sites []config.Site) string {
				no := false
				sites[0].PeerAssist.Enabled = &no
				return ""
			},
			after: func(t *testing.T, e *testEdge, s state) {
				c := s["c"]
				if r := c.mustRecv(signal.KindFailure); !strings.Contains(r.Failure, `disabled for site "video"`) || r.InfoHash != ih("gone") {
					t.Errorf("told %q about %q, want the video site disabled", r.Failure, r.InfoHash)
				}
				c.announce(ih("gone"), signal.EventStarted, 0, 0, nil)
				if r := c.mustRecv(signal.KindFailure); !strings.Contains(r.Failure, "disabled") {
					t.Errorf("announce after the reload: %q", r.Failure)
				}
				c.scrapeOK()
				s["o"].expectNothing(50 * time.Millisecond)
				if r := s["o"].join(ih("stays")); r.Complete+r.Incomplete != 1 {
					t.Errorf("the open site's swarm has %d peers, want 1", r.Complete+r.Incomplete)
				}
			},
		},
		{
			name: "a new region name: peers of the old one leave, the new one's join",
			opts: func(o *Options) { o.Region = "paris" },
			before: func(t *testing.T, e *testEdge) state {
				p := e.mustDial("127.1.0.1")
				p.join(ih("r"))
				l := e.mustDial("127.3.0.1")
				if r := l.join(ih("r")); r.Complete+r.Incomplete != 0 {
					t.Errorf("a lyon peer sees a swarm of %d in paris", r.Complete+r.Incomplete)
				}
				return state{"paris": p, "lyon": l}
			},
			change: func(*config.PeerAssist, []config.Site) string { return "lyon" },
			after: func(t *testing.T, e *testEdge, s state) {
				if r := s["paris"].mustRecv(signal.KindFailure); !strings.Contains(r.Failure, "no longer serves your region") {
					t.Errorf("paris peer told %q", r.Failure)
				}
				s["paris"].scrapeOK()
				s["lyon"].join(ih("r"))
				l2 := e.mustDial("127.3.0.2")
				if r := l2.join(ih("r")); r.Complete+r.Incomplete != 2 {
					t.Errorf("lyon swarm has %d peers, want 2", r.Complete+r.Incomplete)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := startEdge(t, cfg, tt.opts)
			s := tt.before(t, e)
			open := e.conns()
			e.reload(tt.change)
			if n := e.conns(); n != open {
				t.Errorf("%d sockets after the reload, want the %d open before", n, open)
			}
			tt.after(t, e, s)
		})
	}
}

// TestReloadBans: bans in force end ban_duration after they began; 0
// lifts them.
func TestReloadBans(t *testing.T) {
	e := startEdge(t, testConfig(), nil) // ban_duration 1h
	key := banKey{swarmKey{"paris", ih("b")}, netip.MustParseAddr("127.1.0.1")}
	until := time.Now().Add(50 * time.Minute) // began 10 minutes ago
	e.co.mu.Lock()
	e.co.bans[key] = until
	e.co.mu.Unlock()
	ban := func() (time.Time, bool) {
		e.co.mu.Lock()
		defer e.co.mu.Unlock()
		u, ok := e.co.bans[key]
		return u, ok
	}
	e.reload(func(c *config.PeerAssist, _ []config.Site) string {
		c.BanDuration = config.Duration(30 * time.Minute)
		return ""
	})
	if got, ok := ban(); !ok || !got.Equal(until.Add(-30*time.Minute)) {
		t.Errorf("ban until %v (%v), want %v", got, ok, until.Add(-30*time.Minute))
	}
	e.reload(func(c *config.PeerAssist, _ []config.Site) string { c.BanDuration = 0; return "" })
	if _, ok := ban(); ok {
		t.Error("ban_duration 0 kept a ban")
	}
}

// TestReloadRefusals: invalid settings change nothing; enabled is kept
// and named in a warning.
func TestReloadRefusals(t *testing.T) {
	var logs bytes.Buffer
	e := startEdge(t, testConfig(), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	bad := testConfig()
	bad.MessagesPerSecond = 0
	bad.MaxOffers = 0
	err := e.co.Reload(bad, testSites(), "")
	for _, want := range []string{"peer_assist.messages_per_second", "peer_assist.max_offers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Reload = %v, want an error naming %s", err, want)
		}
	}
	if got := e.co.set.Load().cfg.MessagesPerSecond; got != 20 {
		t.Errorf("messages_per_second %g after a refused reload, want 20", got)
	}
	e.reload(func(c *config.PeerAssist, _ []config.Site) string { c.Enabled = false; return "" })
	if !e.co.set.Load().cfg.Enabled {
		t.Error("a reload turned the coordinator off")
	}
	if !strings.Contains(logs.String(), "setting=peer_assist.enabled") {
		t.Errorf("no warning naming peer_assist.enabled in %q", logs.String())
	}
	e.mustDial("127.1.0.1").scrapeOK()
	e.co.Close()
	if err := e.co.Reload(testConfig(), testSites(), ""); err != ErrClosed {
		t.Errorf("Reload after Close = %v, want ErrClosed", err)
	}
}
