package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/peerassist/edgebox/peerassist/peer"
	"github.com/peerassist/edgebox/peerassist/wire"
)

// member is one peer of the run and what happened to it.
type member struct {
	idx      int
	addr     netip.Addr
	poisoner bool
	p        *peer.Peer
	loc      locality

	start, end time.Time // its playback or fetch, start to last byte
	err        error
	digest     string // SHA-256 of the object (file mode)
	size       int64  // the object's bytes (file mode)
	segments   int
	late       int
	maxLate    time.Duration
	stats      peer.Stats
}

// locality is where the edge places an address (GET /pa/v1/whoami).
type locality struct {
	Known  bool   `json:"known"`
	Region string `json:"region"`
	ISP    string `json:"isp"`
}

func (l locality) String() string {
	if !l.Known {
		return "unknown"
	}
	return l.Region + "/" + l.ISP
}

func runSwarm(ctx context.Context, o *options, log *slog.Logger) (*report, error) {
	var segs []vodSegment
	var swarmName string
	var totalBytes, bitrateBps int64
	if o.vod != "" {
		var err error
		if segs, swarmName, bitrateBps, err = loadVOD(ctx, o); err != nil {
			return nil, err
		}
		for _, s := range segs {
			totalBytes += s.bytes
		}
	} else {
		// Fail fast, with the edge's own words, when the edge is not
		// there or will not serve the object, rather than after every
		// peer's deadline. Its size is what one viewer needs, whether
		// or not any peer gets it all.
		hc := &http.Client{Timeout: 30 * time.Second}
		n, err := manifestSize(ctx, hc, o.edge, o.object)
		if err != nil {
			return nil, fmt.Errorf("edge %s: %w", o.edge, err)
		}
		totalBytes = n
	}

	members := make([]*member, o.n)
	poison := map[int]bool{}
	for _, i := range o.poison {
		poison[i] = true
	}
	defer func() {
		var wg sync.WaitGroup
		for _, m := range members {
			if m != nil && m.p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); _ = m.p.Close() }()
			}
		}
		wg.Wait()
	}()
	for i := range members {
		m := &member{idx: i, addr: o.addrs[i%len(o.addrs)], poisoner: poison[i]}
		members[i] = m
		po := peer.Options{
			Edge: o.edge, Announce: o.announce, ListenAddr: m.addr, Site: o.site, Device: "stb",
			UploadCapacityBps: o.uploadBps, UploadFraction: o.uploadFraction,
			MaxNeighbors: o.maxNeighbors, SlurpieK: o.k,
			Logger: log.With("peer", i, "addr", m.addr.String()),
		}
		if o.unlimited {
			po.UploadBudgetBps = peer.Unlimited
		}
		if m.poisoner {
			po.Corrupt = func(wire.ObjectID, uint32) bool { return true }
		}
		p, err := peer.New(po)
		if err != nil {
			return nil, fmt.Errorf("peer %d (%v): %w", i, m.addr, err)
		}
		m.p = p
	}
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.loc = whoami(ctx, o.edge, m.addr) }()
	}
	wg.Wait()

	runStart := time.Now()
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(m.idx) * o.stagger):
			case <-ctx.Done():
				m.err = ctx.Err()
				return
			}
			if o.vod != "" {
				play(ctx, o, m, segs, swarmName, bitrateBps)
			} else {
				fetchObject(ctx, o, m)
			}
		}()
	}
	wg.Wait()
	runEnd := time.Now()
	for _, m := range members {
		m.stats = m.p.Stats()
	}
	return buildReport(o, members, totalBytes, runStart, runEnd), nil
}

// fetchObject is one peer of a flash crowd: fetch the object, due
// -deadline after the peer starts (chunk by chunk at -rate when given).
func fetchObject(ctx context.Context, o *options, m *member) {
	m.start = time.Now()
	fo := peer.FetchOptions{Deadline: m.start.Add(o.deadline), RateBps: o.rateBps, StartupDelay: o.startup}
	data, err := m.p.Fetch(ctx, o.object, fo)
	m.end = time.Now()
	// Late whether it came late or not at all by the end of the run.
	if m.end.After(fo.Deadline) {
		m.late, m.maxLate = 1, m.end.Sub(fo.Deadline)
	}
	if err != nil {
		m.err = err
		return
	}
	sum := sha256.Sum256(data)
	m.digest = hex.EncodeToString(sum[:])
	m.segments = 1
	m.size = int64(len(data))
}

// vodSegment is a segment of the chosen rendition with its size.
type vodSegment struct {
	segment
	bytes int64
}

// play is one viewer of the VOD: segment i is due at start + startup + the
// media time before it (divided by -speed); segments are fetched from
// -prefetch ahead of their time, a few at once.
//
// The rendition's bitrate (its BANDWIDTH) is declared to the edge, which
// keeps the viewer's floor at it where the site's configuration has none.
func play(ctx context.Context, o *options, m *member, segs []vodSegment, swarm string, bitrateBps int64) {
	m.start = time.Now()
	playAt := m.start.Add(o.startup)
	due := make([]time.Time, len(segs))
	var media time.Duration
	for i, s := range segs {
		due[i] = playAt.Add(time.Duration(float64(media) / o.speed))
		media += s.Duration
	}
	prefetch := time.Duration(float64(o.prefetch) / o.speed)
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, s := range segs {
		if wait := time.Until(due[i].Add(-prefetch)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// The run ended: this segment and the rest never came, and
			// those already due are late.
			now := time.Now()
			mu.Lock()
			m.err = ctx.Err()
			for _, d := range due[i:] {
				if now.After(d) {
					m.late++
					m.maxLate = max(m.maxLate, now.Sub(d))
				}
			}
			mu.Unlock()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := m.p.Fetch(ctx, s.Path, peer.FetchOptions{Swarm: swarm, Deadline: due[i], BitrateBps: bitrateBps})
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			// A segment missing at the end of the run is late too.
			if late := done.Sub(due[i]); late > 0 {
				m.late++
				m.maxLate = max(m.maxLate, late)
			}
			if err != nil {
				if m.err == nil {
					m.err = fmt.Errorf("%s: %w", s.Path, err)
				}
				return
			}
			m.segments++
			if done.After(m.end) {
				m.end = done
			}
		}()
	}
	wg.Wait()
}

// loadVOD reads the master and media playlists from the edge. It returns
// the rendition's segments, the stream's swarm name and the rendition's
// BANDWIDTH (0 when the playlist gives none).
func loadVOD(ctx context.Context, o *options) ([]vodSegment, string, int64, error) {
	base, err := url.Parse(o.edge)
	if err != nil {
		return nil, "", 0, fmt.Errorf("-edge %q: %w", o.edge, err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	master, err := httpGet(ctx, hc, o.edge+o.vod)
	if err != nil {
		return nil, "", 0, err
	}
	variants, err := parseMaster(master)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%s: %w", o.vod, err)
	}
	if o.rendition < 0 || o.rendition >= len(variants) {
		return nil, "", 0, fmt.Errorf("-rendition %d: %s lists %d variants", o.rendition, o.vod, len(variants))
	}
	mediaPath, err := resolve(o.vod, variants[o.rendition].URI)
	if err != nil {
		return nil, "", 0, err
	}
	media, err := httpGet(ctx, hc, o.edge+mediaPath)
	if err != nil {
		return nil, "", 0, err
	}
	segs, err := parseMedia(media, mediaPath)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%s: %w", mediaPath, err)
	}
	out := make([]vodSegment, len(segs))
	for i, s := range segs {
		out[i].segment = s
		n, err := manifestSize(ctx, hc, o.edge, s.Path)
		if err != nil {
			return nil, "", 0, err
		}
		out[i].bytes = n
	}
	// The stream's swarm, named as the browser client names it: the
	// master playlist's URL without query.
	swarm := base.Scheme + "://" + base.Host + strings.SplitN(o.vod, "?", 2)[0]
	return out, swarm, variants[o.rendition].BandwidthBps, nil
}

func httpGet(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPlaylistBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &httpStatusError{url: u, status: resp.StatusCode, body: string(body)}
	}
	return body, nil
}

type httpStatusError struct {
	url    string
	status int
	body   string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d: %.200s", e.url, e.status, e.body)
}

// manifestSize asks the edge for an object's size (its manifest),
// retrying what the edge says is transient (5xx) a few times.
func manifestSize(ctx context.Context, hc *http.Client, edge, path string) (int64, error) {
	var body []byte
	var err error
	for attempt := range 5 {
		body, err = httpGet(ctx, hc, edge+"/pa/v1/manifest?url="+url.QueryEscape(path))
		var he *httpStatusError
		if err == nil || !errors.As(err, &he) || he.status < 500 {
			break
		}
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err != nil {
		return 0, err
	}
	var m struct {
		Size int64 `json:"size"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.Size < 0 {
		return 0, fmt.Errorf("manifest of %s: %v", path, err)
	}
	return m.Size, nil
}

// whoami asks the edge where it places addr, from addr.
func whoami(ctx context.Context, edge string, addr netip.Addr) locality {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IP(addr.AsSlice())}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	defer hc.CloseIdleConnections()
	body, err := httpGet(ctx, hc, strings.TrimSuffix(edge, "/")+"/pa/v1/whoami")
	var l locality
	if err == nil {
		_ = json.Unmarshal(body, &l)
	}
	return l
}
