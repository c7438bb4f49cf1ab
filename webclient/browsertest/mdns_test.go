package browsertest

import (
	"net"
	"testing"
	"time"
)

// Hidden host addresses that cannot be resolved. Real browsers publish
// their host candidates as random mDNS ".local" names. Inside the test
// namespace two Chromium processes resolve each other's names over
// multicast (TestThreeTabs connects that way). Here the mDNS port is held
// by the test, so Chromium's responder cannot run: as observed, Chromium
// then gathers no host candidate at all and the peers cannot connect. The
// pages must simply play from the edge: to the end, nothing from peers, no
// uncaught error, startup and stalls no worse than a page without peer
// assistance played at the same time.
func TestHiddenAddressesUnresolvable(t *testing.T) {
	RequireNetns(t)
	hold, err := net.ListenPacket("udp4", "0.0.0.0:5353") // exclusive: no SO_REUSEADDR
	if err != nil {
		t.Fatalf("holding the mDNS port: %v", err)
	}
	defer hold.Close()
	e := StartEdge(t)
	page := demoPage(e)
	first := NewBrowser(t, HideLocalIPs).Open("first", page)
	first.WaitFor("paDemo.metrics.startupMs >= 0", 30*time.Second)
	time.Sleep(2 * time.Second)
	baseline := NewBrowser(t).Open("baseline", page+"&p2p=0")
	second := NewBrowser(t, HideLocalIPs).Open("second", page)
	pages := []*Page{first, second, baseline}
	for _, p := range pages {
		p.WaitFor("paDemo.metrics.ended || paDemo.metrics.error", playTimeout)
	}
	st := map[string]pageState{}
	for _, p := range pages {
		st[p.name] = state(p)
		t.Logf("%s: %+v", p.name, st[p.name])
		checkPlayed(t, p.name, st[p.name])
	}
	for _, name := range []string{"first", "second"} {
		if s := st[name]; s.Stats.BytesFromPeers != 0 || s.Stats.PeersConnected != 0 {
			t.Errorf("%s: %.0f bytes from %d peers: want none (the peers cannot connect)", name, s.Stats.BytesFromPeers, s.Stats.PeersConnected)
		}
	}
	s, b := st["second"], st["baseline"]
	checkStartup(t, "second page", s, b)
	if s.Metrics.Stalls > b.Metrics.Stalls {
		t.Errorf("second page stalled %d times (%.0f ms), baseline %d", s.Metrics.Stalls, s.Metrics.StallMs, b.Metrics.Stalls)
	}
}
