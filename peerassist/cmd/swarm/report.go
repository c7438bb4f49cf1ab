package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what a run found; its JSON form is the -json output.
type report struct {
	Mode        string        `json:"mode"` // "object" or "vod"
	Edge        string        `json:"edge"`
	Object      string        `json:"object,omitempty"`
	VOD         string        `json:"vod,omitempty"`
	ObjectBytes int64         `json:"object_bytes"` // what one viewer needs
	DurationSec float64       `json:"duration_sec"`
	AllDone     bool          `json:"all_done"` // every peer got every byte
	Consistent  bool          `json:"consistent"`
	Totals      totals        `json:"totals"`
	Groups      []group       `json:"groups"`
	Poisoners   []poisoner    `json:"poisoners,omitempty"`
	Peers       []peerSummary `json:"peers"`
}

type totals struct {
	EdgeBytes  int64 `json:"edge_bytes"`
	PeersBytes int64 `json:"peers_bytes"`
	// OffloadRatio is peers / (edge + peers).
	OffloadRatio float64 `json:"offload_ratio"`
	// EdgeCopies is edge bytes over the bytes one viewer needs.
	EdgeCopies float64 `json:"edge_copies"`
	// CrossISPBytes and CrossRegionBytes are peer bytes between peers the
	// edge places in different ISPs of one region, or in different
	// regions; ExternalBytes came from peers not run by this command.
	CrossISPBytes        int64 `json:"cross_isp_bytes"`
	CrossRegionBytes     int64 `json:"cross_region_bytes"`
	ExternalBytes        int64 `json:"external_peer_bytes"`
	UploadedBytes        int64 `json:"uploaded_bytes"`
	VerificationFailures int   `json:"verification_failures"`
	// EdgeRefusals counts the peers' edge requests refused with 429.
	EdgeRefusals     int64   `json:"edge_refusals"`
	LateSegments     int     `json:"late"`
	CompletionP50Sec float64 `json:"completion_p50_sec"`
	CompletionP90Sec float64 `json:"completion_p90_sec"`
	CompletionMaxSec float64 `json:"completion_max_sec"`
}

// group is one region/ISP of the run.
type group struct {
	Locality   string  `json:"locality"`
	Peers      int     `json:"peers"`
	EdgeBytes  int64   `json:"edge_bytes"`
	EdgeCopies float64 `json:"edge_copies"`
	PeersBytes int64   `json:"peers_bytes"`
}

type poisoner struct {
	Index         int    `json:"index"`
	Addr          string `json:"addr"`
	PeerID        string `json:"peer_id"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	// DetectedBy is how many peers found a bad chunk from it, DroppedBy
	// how many disconnected and banned it; UsedBytes what peers used of
	// its uploads (must be 0).
	DetectedBy int   `json:"detected_by"`
	DroppedBy  int   `json:"dropped_by"`
	BadChunks  int   `json:"bad_chunks"`
	UsedBytes  int64 `json:"used_bytes"`
}

type peerSummary struct {
	Index    int    `json:"index"`
	Addr     string `json:"addr"`
	PeerID   string `json:"peer_id"`
	Locality string `json:"locality"`
	Poisoner bool   `json:"poisoner,omitempty"`
	Done     bool   `json:"done"`
	Error    string `json:"error,omitempty"`
	// Seconds is from the peer's start to its last byte.
	Seconds    float64 `json:"seconds"`
	Segments   int     `json:"segments"`
	Late       int     `json:"late"`
	MaxLateSec float64 `json:"max_late_sec"`

	FromEdgeBytes  int64            `json:"from_edge_bytes"`
	FromPeersBytes int64            `json:"from_peers_bytes"`
	FromPeer       map[string]int64 `json:"from_peer"` // by sender: "#index" or peer_id
	UploadedBytes  int64            `json:"uploaded_bytes"`
	// UploadBudgetBps is the budget at the end of the run (-1 unlimited);
	// UploadAllowedBytes what it allows over the peer's time in the run
	// (plus the token bucket's depth), -1 unlimited.
	UploadBudgetBps    int64    `json:"upload_budget_bps"`
	UploadAllowedBytes int64    `json:"upload_allowed_bytes"`
	CrossISPBytes      int64    `json:"cross_isp_bytes"`
	CrossRegionBytes   int64    `json:"cross_region_bytes"`
	BadChunks          int      `json:"bad_chunks"`
	Dropped            []string `json:"dropped,omitempty"` // "#index" or peer_id
	// EdgeRefusals counts its edge requests refused with 429.
	EdgeRefusals int64 `json:"edge_refusals"`
}

// bucketBytes is the peer's token bucket depth (peer.burstBytes).
const bucketBytes = 64 << 10

func buildReport(o *options, members []*member, objectBytes int64, start, end time.Time) *report {
	r := &report{Edge: o.edge, ObjectBytes: objectBytes, DurationSec: end.Sub(start).Seconds(), AllDone: true, Consistent: true}
	if o.vod != "" {
		r.Mode, r.VOD = "vod", o.vod
	} else {
		r.Mode, r.Object = "object", o.object
	}
	byID := map[string]*member{}
	for _, m := range members {
		byID[m.stats.PeerID] = m
	}
	label := func(id string) string {
		if m := byID[id]; m != nil {
			return fmt.Sprintf("#%d", m.idx)
		}
		return id
	}
	digests := map[string]int{}
	groups := map[string]*group{}
	var times []float64
	for _, m := range members {
		s := m.stats
		ps := peerSummary{
			Index: m.idx, Addr: m.addr.String(), PeerID: s.PeerID, Locality: m.loc.String(), Poisoner: m.poisoner,
			Done: m.err == nil, Segments: m.segments, Late: m.late, MaxLateSec: m.maxLate.Seconds(),
			FromEdgeBytes: s.FromEdgeBytes, FromPeersBytes: s.FromPeersBytes, UploadedBytes: s.UploadedBytes,
			FromPeer: map[string]int64{}, UploadBudgetBps: s.UploadBudgetBps, UploadAllowedBytes: -1,
			BadChunks: len(s.BadChunks), EdgeRefusals: s.EdgeRefusals,
		}
		if m.err != nil {
			ps.Error = m.err.Error()
			r.AllDone = false
		}
		if !m.end.IsZero() {
			ps.Seconds = m.end.Sub(m.start).Seconds()
		}
		if !m.end.IsZero() && m.err == nil {
			// Completion times are of the peers that completed.
			times = append(times, ps.Seconds)
		}
		if s.UploadBudgetBps >= 0 && !m.start.IsZero() {
			ps.UploadAllowedBytes = int64(float64(s.UploadBudgetBps)/8*end.Sub(m.start).Seconds()) + bucketBytes
		}
		for id, n := range s.FromPeer {
			ps.FromPeer[label(id)] = n
			src := byID[id]
			switch {
			case src == nil:
				r.Totals.ExternalBytes += n
			case !src.loc.Known || !m.loc.Known:
			case src.loc.Region != m.loc.Region:
				ps.CrossRegionBytes += n
			case src.loc.ISP != m.loc.ISP:
				ps.CrossISPBytes += n
			}
		}
		for _, d := range s.Dropped {
			ps.Dropped = append(ps.Dropped, label(d))
		}
		r.Peers = append(r.Peers, ps)
		if m.digest != "" {
			digests[m.digest]++
		}

		t := &r.Totals
		t.EdgeBytes += s.FromEdgeBytes
		t.PeersBytes += s.FromPeersBytes
		t.UploadedBytes += s.UploadedBytes
		t.CrossISPBytes += ps.CrossISPBytes
		t.CrossRegionBytes += ps.CrossRegionBytes
		t.VerificationFailures += len(s.BadChunks)
		t.LateSegments += m.late
		t.EdgeRefusals += s.EdgeRefusals
		g := groups[ps.Locality]
		if g == nil {
			g = &group{Locality: ps.Locality}
			groups[ps.Locality] = g
		}
		g.Peers++
		g.EdgeBytes += s.FromEdgeBytes
		g.PeersBytes += s.FromPeersBytes
	}
	if len(digests) > 1 {
		r.Consistent = false
	}
	t := &r.Totals
	if sum := t.EdgeBytes + t.PeersBytes; sum > 0 {
		t.OffloadRatio = float64(t.PeersBytes) / float64(sum)
	}
	if objectBytes > 0 {
		t.EdgeCopies = float64(t.EdgeBytes) / float64(objectBytes)
	}
	sort.Float64s(times)
	if n := len(times); n > 0 {
		t.CompletionP50Sec = times[(n-1)/2]
		t.CompletionP90Sec = times[int(math.Ceil(0.9*float64(n)))-1]
		t.CompletionMaxSec = times[n-1]
	}
	for _, g := range groups {
		if objectBytes > 0 {
			g.EdgeCopies = float64(g.EdgeBytes) / float64(objectBytes)
		}
		r.Groups = append(r.Groups, *g)
	}
	sort.Slice(r.Groups, func(i, j int) bool { return r.Groups[i].Locality < r.Groups[j].Locality })
	for _, m := range members {
		if !m.poisoner {
			continue
		}
		pr := poisoner{Index: m.idx, Addr: m.addr.String(), PeerID: m.stats.PeerID, UploadedBytes: m.stats.UploadedBytes}
		for _, v := range members {
			found := false
			for _, bc := range v.stats.BadChunks {
				if bc.From == m.stats.PeerID {
					pr.BadChunks++
					found = true
				}
			}
			if found {
				pr.DetectedBy++
			}
			for _, d := range v.stats.Dropped {
				if d == m.stats.PeerID {
					pr.DroppedBy++
				}
			}
			if !v.poisoner {
				pr.UsedBytes += v.stats.FromPeer[m.stats.PeerID]
			}
		}
		r.Poisoners = append(r.Poisoners, pr)
	}
	return r
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) error {
	var b strings.Builder
	what := r.Object
	if r.Mode == "vod" {
		what = r.VOD + " (VOD)"
	}
	fmt.Fprintf(&b, "swarm: %d peers, %s of %s via %s, %.1fs\n\n", len(r.Peers), map[string]string{"object": "flash crowd", "vod": "playback"}[r.Mode],
		what, r.Edge, r.DurationSec)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peer\taddr\tlocality\tdone\ttime\tlate\tfrom edge\t429s\tfrom peers\tuploaded\tbudget\tof budget\tbad\tdropped\t")
	for _, p := range r.Peers {
		done := "yes"
		if !p.Done {
			done = "NO"
		}
		name := fmt.Sprint(p.Index)
		if p.Poisoner {
			name += " (poison)"
		}
		budget, of := "unlimited", "-"
		if p.UploadBudgetBps >= 0 {
			budget = rate(p.UploadBudgetBps)
			if p.UploadAllowedBytes > 0 {
				of = fmt.Sprintf("%.0f%%", 100*float64(p.UploadedBytes)/float64(p.UploadAllowedBytes))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fs\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t\n", name, p.Addr, p.Locality, done, p.Seconds, p.Late,
			size(p.FromEdgeBytes), p.EdgeRefusals, size(p.FromPeersBytes), size(p.UploadedBytes), budget, of, p.BadChunks, strings.Join(p.Dropped, ","))
	}
	_ = tw.Flush()
	t := r.Totals
	fmt.Fprintf(&b, "\nbytes by source: edge %s, peers %s; offload ratio %.1f%%; edge egress %.2f copies of %s\n",
		size(t.EdgeBytes), size(t.PeersBytes), 100*t.OffloadRatio, t.EdgeCopies, size(r.ObjectBytes))
	fmt.Fprintf(&b, "peer bytes across ISPs: %s; across regions: %s; from peers outside this run: %s\n",
		size(t.CrossISPBytes), size(t.CrossRegionBytes), size(t.ExternalBytes))
	done := 0
	for _, p := range r.Peers {
		if p.Done {
			done++
		}
	}
	fmt.Fprintf(&b, "completion (%d of %d peers done): p50 %.1fs, p90 %.1fs, max %.1fs; late %s: %d\n", done, len(r.Peers),
		t.CompletionP50Sec, t.CompletionP90Sec, t.CompletionMaxSec,
		map[string]string{"object": "objects", "vod": "segments"}[r.Mode], t.LateSegments)
	fmt.Fprintf(&b, "edge refusals (429, over the session's allowance or floor): %d\n", t.EdgeRefusals)
	fmt.Fprintf(&b, "verification failures: %d\n", t.VerificationFailures)
	for _, p := range r.Poisoners {
		fmt.Fprintf(&b, "  poisoner #%d (%s): uploaded %s, %d bad chunks detected by %d peers, dropped by %d, bytes used by others %s\n",
			p.Index, p.Addr, size(p.UploadedBytes), p.BadChunks, p.DetectedBy, p.DroppedBy, size(p.UsedBytes))
	}
	fmt.Fprintln(&b, "by locality:")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "  %-20s %3d peers  edge %s (%.2f copies)  peers %s\n", g.Locality, g.Peers, size(g.EdgeBytes), g.EdgeCopies, size(g.PeersBytes))
	}
	switch {
	case !r.AllDone:
		for _, p := range r.Peers {
			if !p.Done {
				fmt.Fprintf(&b, "  peer %d (%s): %s\n", p.Index, p.Addr, p.Error)
			}
		}
		fmt.Fprintln(&b, "RESULT: some peers did not get every byte (errors above; -json has them too)")
	case !r.Consistent:
		fmt.Fprintln(&b, "RESULT: peers disagree on the object's bytes")
	default:
		fmt.Fprintln(&b, "RESULT: every peer got every byte, each chunk verified against the edge's SHA-256 manifest")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func rate(bps int64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f Gbit/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0f kbit/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d bit/s", bps)
}
