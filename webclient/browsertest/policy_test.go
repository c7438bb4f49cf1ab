package browsertest

import (
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
)

// Test 1 under the policy's limits: an edge whose capacity is so small
// (100 kbit/s, so 40 kbit/s of headroom under the EBU cap) that the first
// page's prefetch puts it over the cap, with a policy tick of 1 s so that
// the decision comes while the pages still prefetch (the sample is 40 s
// long). The policy loop stops the first page from non-urgent edge
// fetches (x_policy use_peers with edge_allowance_bps 0, or its floor while
// it has sent no urgent request with its session; the edge answers such
// requests 429 with Retry-After) and limits the second to at most the
// headroom; urgent requests within a viewer's floor are always served. The floor is the site's bitrate, set here to
// cover twice the top rendition because the pages play at twice the
// normal rate. Both pages play to the end without stalling more than a
// page without peer assistance, the second still takes most of its media
// from the first, and refusals stay few (the client follows x_policy and
// Retry-After: no 429 storm).

// floorBps is the viewers' floor in TestTwoPagesOverCap (the site's bitrate).
const floorBps = 1_000_000

func TestTwoPagesOverCap(t *testing.T) {
	RequireNetns(t)
	e := StartEdge(t, func(c *config.Config) {
		c.Policy.EdgeCapacityBps = 100_000 // headroom 40 kbit/s at the default cap
		c.Policy.Tick = config.Duration(time.Second)
		c.Sites[0].PeerAssist.BitrateBps = floorBps
	})
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
	const headroomBps = 40_000 // ebu_cap x edge_capacity_bps
	for name, st := range map[string]pageState{"first": f, "second": s} {
		si, ok := e.Coordinator.Session(st.Stats.SessionID)
		switch {
		case !ok:
			t.Errorf("%s: the coordinator does not know session %q", name, st.Stats.SessionID)
		case si.Policy == nil:
			t.Errorf("%s: no x_policy pushed", name)
		case name == "first" && (!si.Policy.UsePeers || si.Policy.EdgeAllowanceBps != 0 && si.Policy.Reason != "stopped_ebu"):
			// Stopped: allowance 0, or, while the page has not yet sent an
			// urgent request with its session (its first segments go out
			// before the edge issues one), its floor through the
			// allowance, which is the edge's rule for such clients.
			t.Errorf("first: policy %+v, want stopped by the EBU cap (use_peers; allowance 0, or its floor with reason stopped_ebu)", *si.Policy)
		case name == "first" && si.Policy.EdgeAllowanceBps > floorBps:
			t.Errorf("first: policy %+v, want an allowance of at most its floor (%d bit/s)", *si.Policy, floorBps)
		case name != "first" && (si.Policy.EdgeAllowanceBps < 0 || si.Policy.EdgeAllowanceBps > headroomBps):
			t.Errorf("%s: policy %+v, want an allowance within the headroom (%d bit/s)", name, *si.Policy, headroomBps)
		default:
			t.Logf("%s: policy %+v; %d refusals (429) seen by the page", name, *si.Policy, st.Stats.EdgeRefusals)
		}
		if st.Metrics.Stalls > b.Metrics.Stalls {
			t.Errorf("%s stalled %d times (%.0f ms), baseline %d: urgent requests within the floor must be served", name, st.Metrics.Stalls, st.Metrics.StallMs, b.Metrics.Stalls)
		}
		// A 40 s video in 4 s segments and 256 KiB chunks is a few dozen
		// requests; a client that asked again at once would make hundreds.
		if st.Stats.EdgeRefusals > 30 {
			t.Errorf("%s: %d refusals (429): the client asks again before Retry-After", name, st.Stats.EdgeRefusals)
		}
	}
	total := s.Stats.BytesFromPeers + s.Stats.BytesFromEdge
	if share := s.Stats.BytesFromPeers / total; total == 0 || share < 0.5 {
		t.Errorf("second page took %.0f of %.0f media bytes from peers (%.0f%%), want >= 50%%", s.Stats.BytesFromPeers, total, 100*share)
	}
}
