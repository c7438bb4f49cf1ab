// Package peer is the native (Go) peer of the peer-assisted CDN: what a
// set-top box, a TV or a test runs instead of the browser client. It joins
// swarms through the edge's coordinator (WebTorrent tracker protocol with
// offers, package signal), connects to the neighbors the coordinator routes
// to it over WebRTC DataChannels (pion/webrtc), and fetches objects chunk by
// chunk from neighbors first and from the edge over HTTP when no neighbor
// can deliver in time.
//
// Every chunk that arrives from a peer is verified against the edge's
// manifest (SHA-256) before it is used or shared; a bad chunk is dropped,
// fetched again elsewhere and reported (x_report), and its sender is
// disconnected. Uploads are paced to a budget (by default 1/3 of the
// declared upload capacity, or what the edge's x_policy says) with a token
// bucket, and every DataChannel write waits for the buffered amount to fall
// (pion's Send never blocks).
//
// Scheduling, per swarm: rarest chunk first among neighbors; a chunk no
// neighbor holds is fetched from the edge by about k of the swarm's n peers
// (probability k/n per round, Slurpie), the others wait for it to appear;
// every chunk has a deadline, and before it the peer fetches what peers did
// not deliver (only the missing bytes) from the edge, marked urgent.
//
// The data protocol is package wire; peerassist/PROTOCOL.md specifies both.
package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/peerassist/wire"
)

// Unlimited as Options.UploadBudgetBps turns upload pacing off.
const Unlimited = -1

// Options configure a Peer. Zero values take the defaults in the comments.
type Options struct {
	// Edge is the edge's base URL ("http://127.0.0.1:8080"). Required.
	Edge string
	// Announce is the coordinator's WebSocket URL. Default: Edge with
	// scheme ws(s) and path /pa/v1/announce.
	Announce string
	// ListenAddr binds the peer's WebRTC socket, signaling and HTTP
	// connections to one local address, so the edge's region table places
	// it. A loopback address also keeps ICE on the loopback interface
	// (tests, the swarm command). Default: unbound, every interface.
	ListenAddr netip.Addr
	// PeerID is the peer's 20-byte peer_id. Default: "-EB0001-" and 12
	// random bytes.
	PeerID signal.ID
	// Site is sent as x_site: the configured site the swarms belong to.
	// Default "" (the coordinator infers it).
	Site string
	// Device is x_caps.device. Default signal.DeviceOther.
	Device string

	// UploadCapacityBps is the declared upload capacity in bits/s
	// (x_caps.upload_bps). Default 10,000,000 (the policy's
	// default_upload_bps, and what the browser client assumes).
	UploadCapacityBps int64
	// UploadFraction is the share of the capacity uploaded when the edge
	// sends no x_policy. Set, it is also a cap on what x_policy may ask.
	// Default 1/3.
	UploadFraction float64
	// UploadBudgetBps sets the upload budget in bits/s directly (and caps
	// x_policy); Unlimited turns pacing off. Default 0: from the fraction.
	UploadBudgetBps int64
	// NoUpload turns uploading off (data saver): x_caps says so and every
	// request is refused.
	NoUpload bool

	// MaxNeighbors bounds connected and connecting neighbors per swarm.
	// Default 8.
	MaxNeighbors int
	// OffersPerAnnounce bounds the offers (numwant) of one announce.
	// Default 4.
	OffersPerAnnounce int
	// PipelineDepth is how many chunk requests may be outstanding at one
	// neighbor (also capped by the neighbor's HELLO, and by 768 KiB of
	// requested bytes: see maxInflightBytes). Default 4.
	PipelineDepth int
	// MaxQueuedRequests is how many requests this peer queues from one
	// neighbor (its HELLO max_requests). Default 16.
	MaxQueuedRequests int
	// SlurpieK is the expected number of the swarm's peers that fetch a
	// chunk nobody holds from the edge. Default 3.
	SlurpieK float64
	// SeedInterval is the Slurpie round: how often a peer with nothing to
	// fetch from neighbors tosses its k/n coin. Default 250ms.
	SeedInterval time.Duration
	// JoinGrace is how long a peer that joined a swarm with others in it
	// waits for neighbors before it fetches chunks nobody around holds
	// from the edge (deadlines still apply). Default 2s.
	JoinGrace time.Duration
	// StallTimeout cancels a peer request that made no progress this long
	// and asks elsewhere. Default 3s.
	StallTimeout time.Duration
	// EdgeMargin is the least time before a chunk's deadline at which the
	// peer switches to the edge; it adds the time the edge needs for the
	// missing chunks due until then, as measured. Default 1s.
	EdgeMargin time.Duration
	// MaxEdgeFetches bounds concurrent edge range requests. Default 4.
	MaxEdgeFetches int
	// DefaultDeadline is when an object is due when FetchOptions give no
	// deadline. Default 30s.
	DefaultDeadline time.Duration
	// OfferTimeout drops an offer nobody answered, or a connection that
	// did not open, after this long. Default 15s.
	OfferTimeout time.Duration
	// AnnounceRetry is how often the peer announces again, with fresh
	// offers, while it has fewer neighbors than the swarm could give it.
	// Default 3s.
	AnnounceRetry time.Duration
	// ReportInterval is the period of x_report. Default 5s.
	ReportInterval time.Duration
	// MaxStoreBytes bounds the verified chunks kept for serving; the least
	// recently used complete objects are dropped first. Default 512 MiB.
	MaxStoreBytes int64

	// Corrupt makes the peer send corrupted copies of the chunks for which
	// it returns true (poisoning, for tests and the swarm command). Nil in
	// real use.
	Corrupt func(obj wire.ObjectID, chunk uint32) bool

	// HTTPClient fetches from the edge. Default: one bound to ListenAddr.
	HTTPClient *http.Client
	// Logger receives the peer's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	var errs []error
	if o.Edge == "" {
		errs = append(errs, errors.New("Edge: required"))
	}
	if o.Announce == "" && o.Edge != "" {
		u, err := url.Parse(o.Edge)
		if err != nil {
			errs = append(errs, fmt.Errorf("Edge %q: %w", o.Edge, err))
		} else {
			u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
			u.Path = strings.TrimSuffix(u.Path, "/") + "/pa/v1/announce"
			o.Announce = u.String()
		}
	}
	if o.PeerID == (signal.ID{}) {
		copy(o.PeerID[:], "-EB0001-")
		_, _ = rand.Read(o.PeerID[8:])
	}
	if o.Device == "" {
		o.Device = signal.DeviceOther
	}
	if o.UploadCapacityBps == 0 {
		o.UploadCapacityBps = 10_000_000
	}
	if o.UploadCapacityBps < 0 {
		errs = append(errs, fmt.Errorf("UploadCapacityBps %d: must not be negative", o.UploadCapacityBps))
	}
	if o.UploadFraction < 0 || o.UploadFraction > 1 || o.UploadFraction != o.UploadFraction {
		errs = append(errs, fmt.Errorf("UploadFraction %g: must be in [0, 1]", o.UploadFraction))
	}
	if o.UploadBudgetBps < Unlimited {
		errs = append(errs, fmt.Errorf("UploadBudgetBps %d: must be positive, 0 or Unlimited", o.UploadBudgetBps))
	}
	if o.SlurpieK == 0 {
		o.SlurpieK = 3
	}
	if o.SlurpieK < 1 {
		errs = append(errs, fmt.Errorf("SlurpieK %g: must be at least 1", o.SlurpieK))
	}
	setInt := func(p *int, def int) {
		if *p <= 0 {
			*p = def
		}
	}
	setInt(&o.MaxNeighbors, 8)
	setInt(&o.OffersPerAnnounce, 4)
	setInt(&o.PipelineDepth, 4)
	setInt(&o.MaxQueuedRequests, 16)
	setInt(&o.MaxEdgeFetches, 4)
	setDur := func(p *time.Duration, def time.Duration) {
		if *p <= 0 {
			*p = def
		}
	}
	setDur(&o.SeedInterval, 250*time.Millisecond)
	setDur(&o.JoinGrace, 2*time.Second)
	setDur(&o.StallTimeout, 3*time.Second)
	setDur(&o.EdgeMargin, time.Second)
	setDur(&o.DefaultDeadline, 30*time.Second)
	setDur(&o.OfferTimeout, 15*time.Second)
	setDur(&o.AnnounceRetry, 3*time.Second)
	setDur(&o.ReportInterval, 5*time.Second)
	if o.MaxStoreBytes <= 0 {
		o.MaxStoreBytes = 512 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// Peer is one native peer. Create it with New; it is safe for concurrent
// use, and Close releases everything it holds.
type Peer struct {
	opts    Options
	id      signal.ID
	log     *slog.Logger
	rtc     *rtcEngine
	edge    *edgeClient
	trk     *tracker
	limiter *rate.Limiter
	// localCapBps caps what x_policy may set: +Inf when the user set no cap.
	localCapBps float64

	created time.Time
	done    chan struct{}
	wg      sync.WaitGroup // background goroutines (edge fetches, answers, closes)

	mu          sync.Mutex
	closed      bool
	session     string
	sessionSet  chan struct{} // closed when the first x_session arrives
	swarms      map[signal.ID]*swarm
	objects     map[wire.ObjectID]*object
	storeBytes  int64
	budgetBps   float64 // current upload budget in bits/s (+Inf: unlimited)
	policy      *signal.Policy
	stats       Stats
	edgeFetches int           // edge requests in flight
	edgeEWMA    time.Duration // smoothed duration of one edge chunk fetch
	edgeDev     time.Duration // smoothed deviation from it (as TCP's RTTVAR)
	bannedPeers map[signal.ID]bool
	edgeLimiter *rate.Limiter // x_policy's edge allowance, nil: none
	// The edge refused a fetch (429) and said when to retry: no
	// non-urgent fetch before nonUrgentBlocked, no urgent one before
	// urgentBlocked (its limit is per session, over all swarms).
	nonUrgentBlocked, urgentBlocked time.Time
	tel                             telemetry
}

// New starts a peer: its WebRTC engine and its connection to the
// coordinator. It joins no swarm until Join or Fetch.
func New(opts Options) (*Peer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("peer options: %w", err)
	}
	p := &Peer{
		opts:       opts,
		id:         opts.PeerID,
		log:        opts.Logger.With("peer_id", opts.PeerID.String()[16:]),
		created:    time.Now(),
		done:       make(chan struct{}),
		sessionSet: make(chan struct{}),
		swarms:     map[signal.ID]*swarm{},
		objects:    map[wire.ObjectID]*object{},
	}
	p.tel = newTelemetry()
	p.stats.FromPeer = map[string]int64{}
	p.stats.ToPeer = map[string]int64{}
	p.localCapBps = math.Inf(1)
	switch {
	case opts.NoUpload:
		p.budgetBps, p.localCapBps = 0, 0
	case opts.UploadBudgetBps == Unlimited:
		p.budgetBps = math.Inf(1)
	case opts.UploadBudgetBps > 0:
		p.budgetBps, p.localCapBps = float64(opts.UploadBudgetBps), float64(opts.UploadBudgetBps)
	case opts.UploadFraction > 0:
		p.budgetBps = float64(opts.UploadCapacityBps) * opts.UploadFraction
		p.localCapBps = p.budgetBps
	default:
		p.budgetBps = float64(opts.UploadCapacityBps) / 3
	}
	p.limiter = rate.NewLimiter(bpsToLimit(p.budgetBps), burstBytes)
	var local net.IP
	if opts.ListenAddr.IsValid() {
		local = net.IP(opts.ListenAddr.Unmap().AsSlice())
	}
	var err error
	if p.edge, err = newEdgeClient(opts.Edge, local, opts.HTTPClient, p.sessionID); err != nil {
		return nil, err
	}
	if p.rtc, err = newRTCEngine(opts.ListenAddr, opts.Logger); err != nil {
		return nil, err
	}
	p.trk = newTracker(opts.Announce, local, p.log, p.onSignal, p.onTrackerConnected)
	return p, nil
}

// burstBytes is the token bucket's depth: one piece more than a frame, so
// pacing is smooth at the scale of DataChannel messages.
const burstBytes = 64 << 10

func bpsToLimit(bps float64) rate.Limit {
	if math.IsInf(bps, 1) {
		return rate.Inf
	}
	return rate.Limit(bps / 8)
}

// ID returns the peer's peer_id.
func (p *Peer) ID() signal.ID { return p.id }

func (p *Peer) sessionID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.session
}

// Close leaves every swarm (announcing stopped), closes every connection
// and waits for the peer's goroutines.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	var sws []*swarm
	for _, sw := range p.swarms {
		sws = append(sws, sw)
	}
	p.mu.Unlock()
	for _, sw := range sws {
		p.announce(sw, signal.EventStopped)
	}
	p.trk.close()
	for _, sw := range sws {
		sw.shutdown()
	}
	p.wg.Wait()
	p.edge.close()
	p.rtc.close()
	return nil
}

// kill stops the peer without a word to anyone, as a crash or a pulled
// cable would: its sockets go silent. Tests use it.
func (p *Peer) kill() {
	p.rtc.close()
	p.trk.close()
	_ = p.Close()
}

// Stats are a peer's counters since New.
type Stats struct {
	PeerID  string // hex
	Session string
	// FromEdgeBytes and FromPeersBytes count verified chunk bytes by
	// source; FromPeer splits the peer bytes by sender peer_id (hex).
	FromEdgeBytes  int64
	FromPeersBytes int64
	FromPeer       map[string]int64
	// UploadedBytes counts chunk bytes sent to neighbors; ToPeer by
	// receiver.
	UploadedBytes int64
	ToPeer        map[string]int64
	// UploadBudgetBps is the current budget in bits/s; -1 is unlimited.
	UploadBudgetBps int64
	// BadChunks lists chunks that failed verification, with their sender.
	BadChunks []BadChunk
	// Dropped lists the peers (hex peer_id) disconnected and banned for
	// sending a bad chunk.
	Dropped []string
	// DiscardedBytes counts peer bytes thrown away: failed verification,
	// or arrived after the chunk came from elsewhere.
	DiscardedBytes int64
	// EdgeSeeds and EdgeUrgent count edge range requests: Slurpie seeds (a
	// chunk no neighbor held) and urgent ones (a deadline close, peers too
	// slow or gone).
	EdgeSeeds, EdgeUrgent int64
	// EdgeRefusals counts edge range requests refused with 429 (over the
	// session's allowance or floor); the peer waits the edge's
	// Retry-After before asking again.
	EdgeRefusals int64
	// Neighbors is the number of connected neighbors now, all swarms.
	Neighbors int
}

// BadChunk is a chunk that failed verification.
type BadChunk struct {
	From   string // sender peer_id, hex
	Object string // object_id
	Chunk  int
}

// Stats returns a copy of the peer's counters.
func (p *Peer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.PeerID = p.id.String()
	s.Session = p.session
	s.FromPeer = make(map[string]int64, len(p.stats.FromPeer))
	for k, v := range p.stats.FromPeer {
		s.FromPeer[k] = v
	}
	s.ToPeer = make(map[string]int64, len(p.stats.ToPeer))
	for k, v := range p.stats.ToPeer {
		s.ToPeer[k] = v
	}
	s.BadChunks = append([]BadChunk(nil), p.stats.BadChunks...)
	s.Dropped = nil
	for id := range p.bannedPeers {
		s.Dropped = append(s.Dropped, id.String())
	}
	sort.Strings(s.Dropped)
	s.UploadBudgetBps = -1
	if !math.IsInf(p.budgetBps, 1) {
		s.UploadBudgetBps = int64(p.budgetBps)
	}
	for _, sw := range p.swarms {
		s.Neighbors += len(sw.neighbors)
	}
	return s
}

// applyPolicy takes the edge's x_policy. Called with p.mu held.
func (p *Peer) applyPolicy(pol *signal.Policy) {
	cp := *pol
	p.policy = &cp
	// A positive edge allowance paces Slurpie's non-urgent edge fetches;
	// -1 (no limit) and 0 (urgent only, checked by the scheduler) need no
	// bucket. Urgent fetches are never held back here: the edge serves
	// them within the viewer's floor.
	switch {
	case pol.EdgeAllowanceBps > 0:
		bytesPerSec := float64(pol.EdgeAllowanceBps) / 8
		burst := int(max(bytesPerSec*2, 4<<20))
		if p.edgeLimiter == nil {
			p.edgeLimiter = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
		} else {
			p.edgeLimiter.SetLimit(rate.Limit(bytesPerSec))
			p.edgeLimiter.SetBurst(burst)
		}
	default:
		p.edgeLimiter = nil
	}
	budget := math.Min(float64(pol.UploadBudgetBps), p.localCapBps)
	if budget != p.budgetBps {
		p.log.Info("upload budget set by the edge", "budget_bps", pol.UploadBudgetBps, "applied_bps", budget, "reason", pol.Reason)
		p.budgetBps = budget
		p.limiter.SetLimit(bpsToLimit(budget))
	}
}

// uploadAllowed reports whether the peer serves requests at all.
func (p *Peer) uploadAllowed() bool { return !p.opts.NoUpload }

// waitSession waits for the coordinator's x_session, so the first edge
// requests are attributed to the session, but never past d after New: a
// peer whose coordinator is unreachable still fetches from the edge at once.
func (p *Peer) waitSession(ctx context.Context, d time.Duration) {
	d -= time.Since(p.created)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.sessionSet:
	case <-t.C:
	case <-ctx.Done():
	case <-p.done:
	}
}
