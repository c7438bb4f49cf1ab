package browsertest

import (
	"net/url"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/coordinator"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Playback metrics the demo page keeps (window.paDemo) and the client's stats.
type pageState struct {
	Metrics struct {
		StartupMs  float64  `json:"startupMs"`
		Stalls     int      `json:"stalls"`
		StallMs    float64  `json:"stallMs"`
		Ended      bool     `json:"ended"`
		Error      string   `json:"error"`
		PageErrors []string `json:"pageErrors"`
	} `json:"m"`
	Stats struct {
		BytesFromEdge        float64 `json:"bytesFromEdge"`
		BytesFromPeers       float64 `json:"bytesFromPeers"`
		BytesUploaded        float64 `json:"bytesUploaded"`
		PeersConnected       int     `json:"peersConnected"`
		VerificationFailures int     `json:"verificationFailures"`
		SessionID            string  `json:"sessionId"`
		P2P                  string  `json:"p2p"`
		BitrateBps           int64   `json:"bitrateBps"`
		EdgeRefusals         int     `json:"edgeRefusals"`
	} `json:"s"`
	Time float64 `json:"t"`
}

// checkPlayed fails the test unless the page played to the end without an
// hls.js fatal error or an exception nobody caught.
func checkPlayed(t *testing.T, name string, st pageState) {
	t.Helper()
	if !st.Metrics.Ended || st.Metrics.Error != "" || len(st.Metrics.PageErrors) > 0 {
		t.Errorf("%s: ended=%v error=%q uncaught=%q, want played to the end without errors", name, st.Metrics.Ended, st.Metrics.Error, st.Metrics.PageErrors)
	}
}

// checkEdgeSession fails the test unless the edge's coordinator knows the
// page's session with the stream bitrate the page declared (x_caps.bitrate_bps:
// one of the sample's variants, as hls.js loads them) and the policy loop
// pushed it a policy (x_policy). Announces are paced, so it waits a little.
func checkEdgeSession(t *testing.T, e *Edge, p *Page) {
	t.Helper()
	variants := sampleBitrates(t, e)
	var st pageState
	var si coordinator.SessionInfo
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		st = state(p)
		si, ok = e.Coordinator.Session(st.Stats.SessionID)
		if ok && si.Caps.BitrateBps == st.Stats.BitrateBps && variants[st.Stats.BitrateBps] && si.Policy != nil {
			t.Logf("%s: declared %d bit/s, edge holds %d; policy %+v", p.name, st.Stats.BitrateBps, si.Caps.BitrateBps, *si.Policy)
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	switch {
	case !ok:
		t.Errorf("%s: the coordinator does not know session %q", p.name, st.Stats.SessionID)
	case !variants[st.Stats.BitrateBps] || si.Caps.BitrateBps != st.Stats.BitrateBps:
		t.Errorf("%s: declared stream bitrate %d bit/s, the edge holds %d: want the same, one of the sample's %v", p.name, st.Stats.BitrateBps, si.Caps.BitrateBps, variants)
	default:
		t.Errorf("%s: no x_policy pushed to session %q by the policy loop", p.name, st.Stats.SessionID)
	}
}

// sampleBitrates are the BANDWIDTHs of the sample's master playlist.
func sampleBitrates(t *testing.T, e *Edge) map[int64]bool {
	t.Helper()
	body, err := demoGet(e, "/vod/sample/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]bool{}
	for _, m := range regexp.MustCompile(`BANDWIDTH=(\d+)`).FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out[n] = true
	}
	if len(out) == 0 {
		t.Fatalf("no BANDWIDTH in the sample's master playlist: %q", body)
	}
	return out
}

func state(p *Page) pageState {
	var s pageState
	p.MustEval(`({m: paDemo.metrics, s: paDemo.client.stats(), t: paDemo.video.currentTime})`, &s)
	return s
}

// playbackRate: the 40 s sample VOD plays at twice the normal rate, so a
// whole run takes about 20 s of playback; deadlines follow the rate.
const playbackRate = "2"

const playTimeout = 90 * time.Second

// demoPage is the demo page's URL on e at playbackRate; the client logs at
// $PA_BROWSERTEST_LOG (debug, info; default warn) into the test log.
func demoPage(e *Edge) string {
	u := e.URL + "/pa/v1/demo?rate=" + playbackRate
	if l := os.Getenv("PA_BROWSERTEST_LOG"); l != "" {
		u += "&log=" + url.QueryEscape(l)
	}
	return u
}

// Test 1: two pages play the sample VOD to the end; the second takes at
// least half of its media bytes from the first; its startup and stalls are
// no worse than those of a page without peer assistance, played at the
// same time in its own browser.
func TestTwoPagesOffload(t *testing.T) {
	RequireNetns(t)
	e := StartEdge(t)
	page := demoPage(e)
	first := NewBrowser(t).Open("first", page)
	first.WaitFor("paDemo.metrics.startupMs >= 0", 30*time.Second)
	time.Sleep(2 * time.Second)
	baseline := NewBrowser(t).Open("baseline", page+"&p2p=0")
	second := NewBrowser(t).Open("second", page)
	for _, p := range []*Page{first, baseline, second} {
		p.WaitFor("paDemo.metrics.ended || paDemo.metrics.error", playTimeout)
	}
	f, b, s := state(first), state(baseline), state(second)
	t.Logf("first:    %+v", f)
	t.Logf("baseline: %+v", b)
	t.Logf("second:   %+v", s)
	for name, st := range map[string]pageState{"first": f, "baseline": b, "second": s} {
		checkPlayed(t, name, st)
	}
	total := s.Stats.BytesFromPeers + s.Stats.BytesFromEdge
	if share := s.Stats.BytesFromPeers / total; total == 0 || share < 0.5 {
		t.Errorf("second page took %.0f of %.0f media bytes from peers (%.0f%%), want >= 50%%", s.Stats.BytesFromPeers, total, 100*share)
	}
	if f.Stats.BytesUploaded == 0 {
		t.Errorf("first page uploaded nothing")
	}
	if b.Stats.BytesFromPeers != 0 || b.Stats.P2P != "off" {
		t.Errorf("baseline: %.0f bytes from peers, p2p %q: want 0 and off", b.Stats.BytesFromPeers, b.Stats.P2P)
	}
	// Startup no worse than the baseline's, within the noise of shared
	// cores; no more stalls than the baseline.
	checkStartup(t, "second page", s, b)
	if s.Metrics.Stalls > b.Metrics.Stalls {
		t.Errorf("second page stalled %d times, baseline %d", s.Metrics.Stalls, b.Metrics.Stalls)
	}
	if s.Stats.VerificationFailures != 0 {
		t.Errorf("second page: %d verification failures between honest peers", s.Stats.VerificationFailures)
	}
	// The edge knows the sessions the pages use on HTTP, with the stream
	// bitrate they declared and the policy its loop pushed.
	if s.Stats.SessionID == "" {
		t.Errorf("second page has no session ID from the edge")
	}
	for _, p := range []*Page{first, second} {
		checkEdgeSession(t, e, p)
	}
}

// Test 4: WebRTC blocked by browser policy (no UDP without a proxy): the
// page finds no peers and plays the whole VOD over HTTP from the edge, next
// to a page that would share with it.
func TestWebRTCBlockedPlaysOverHTTP(t *testing.T) {
	RequireNetns(t)
	e := StartEdge(t)
	page := demoPage(e)
	seeder := NewBrowser(t).Open("seeder", page)
	seeder.WaitFor("paDemo.metrics.startupMs >= 0", 30*time.Second)
	blocked := NewBrowser(t, "force-webrtc-ip-handling-policy", "webrtc-ip-handling-policy=disable_non_proxied_udp").Open("blocked", page)
	blocked.WaitFor("paDemo.metrics.ended || paDemo.metrics.error", playTimeout)
	s := state(blocked)
	t.Logf("blocked: %+v", s)
	checkPlayed(t, "blocked page", s)
	if s.Stats.BytesFromPeers != 0 || s.Stats.PeersConnected != 0 {
		t.Errorf("blocked page: %.0f bytes from %d peers, want none", s.Stats.BytesFromPeers, s.Stats.PeersConnected)
	}
	if s.Stats.BytesFromEdge < 1<<20 {
		t.Errorf("blocked page: %.0f bytes from the edge, want the whole video (> 1 MiB)", s.Stats.BytesFromEdge)
	}
}

// Three tabs, as a new user opens the demo: one Chromium with its default
// settings (host addresses hidden behind mDNS ".local" names, which
// resolve over multicast inside the test namespace), the first tab, then
// a second and a third a few seconds later. All three play to the end;
// the later tabs take most of their media from peers; their startup and
// stalls are no worse than a page without peer assistance played at the
// same time in its own browser.
func TestThreeTabs(t *testing.T) {
	RequireNetns(t)
	e := StartEdge(t)
	page := demoPage(e)
	b := NewBrowser(t, HideLocalIPs)
	tabs := []*Page{b.Open("tab1", page)}
	tabs[0].WaitFor("paDemo.metrics.startupMs >= 0", 30*time.Second)
	time.Sleep(2 * time.Second)
	baseline := NewBrowser(t).Open("baseline", page+"&p2p=0")
	tabs = append(tabs, b.Open("tab2", page))
	time.Sleep(3 * time.Second)
	tabs = append(tabs, b.Open("tab3", page))
	for _, p := range append(tabs, baseline) {
		p.WaitFor("paDemo.metrics.ended || paDemo.metrics.error", playTimeout)
	}
	base := state(baseline)
	t.Logf("baseline: %+v", base)
	checkPlayed(t, "baseline", base)
	var uploaded float64
	for i, p := range tabs {
		s := state(p)
		t.Logf("%s: %+v", p.name, s)
		uploaded += s.Stats.BytesUploaded
		checkPlayed(t, p.name, s)
		if s.Stats.VerificationFailures != 0 {
			t.Errorf("%s: %d verification failures between honest peers", p.name, s.Stats.VerificationFailures)
		}
		if i == 0 {
			continue
		}
		total := s.Stats.BytesFromPeers + s.Stats.BytesFromEdge
		if share := s.Stats.BytesFromPeers / total; total == 0 || share < 0.5 {
			t.Errorf("%s took %.0f of %.0f media bytes from peers (%.0f%%), want >= 50%%", p.name, s.Stats.BytesFromPeers, total, 100*share)
		}
		checkStartup(t, p.name, s, base)
		if s.Metrics.Stalls > base.Metrics.Stalls {
			t.Errorf("%s stalled %d times (%.0f ms), baseline %d", p.name, s.Metrics.Stalls, s.Metrics.StallMs, base.Metrics.Stalls)
		}
	}
	if uploaded == 0 {
		t.Errorf("no tab uploaded anything")
	}
	for _, p := range tabs {
		checkEdgeSession(t, e, p)
	}
}

// checkStartup fails when a page started playing later than the baseline
// page (no peer assistance) by more than the noise of this machine: the
// larger of 1 s and the baseline's own startup. Startups measured here
// with pages, the edge under -race and other test packages sharing two
// cores ranged from 0.4 to 3.9 s for the same page; one tab of three took
// 2.0 s against a baseline of 0.8 s once in a full CI run and 0.43-0.87 s
// in runs of its own.
func checkStartup(t *testing.T, name string, got, baseline pageState) {
	t.Helper()
	if slack := max(1000, baseline.Metrics.StartupMs); got.Metrics.StartupMs > baseline.Metrics.StartupMs+slack {
		t.Errorf("%s: startup %.0f ms, baseline %.0f ms: want no worse (tolerance %.0f ms)", name, got.Metrics.StartupMs, baseline.Metrics.StartupMs, slack)
	}
}
