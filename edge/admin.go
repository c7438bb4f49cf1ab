package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
)

// The admin listener (config admin_listen, loopback by default):
//
//	POST /purge?url=URL      the object at URL, with all its Vary variants
//	POST /purge?prefix=URL   every object of the site under URL's path
//	GET  /healthz            200 while the process serves
//	GET  /readyz             200 when public listeners are up, the store is
//	                         open and every site has a healthy origin; else
//	                         503 with the reasons
//	GET  /stats              JSON: requests by cache status, hit ratio,
//	                         bytes, connections, store and origin status
//	GET  /metrics            the Metrics handler of Options
//
// URL is absolute (its host selects the site, as for clients), or a path
// with &site=NAME (which may be left out when one site is configured).
// PURGE is accepted as a synonym of POST for /purge.

// originStatuser is implemented by origin pools that track their origins'
// health (*origin.Pool). When Options.Origins implements it, /readyz
// requires an origin up for every site and /stats lists the origins.
type originStatuser interface {
	Status() []origin.OriginStatus
}

var _ originStatuser = (*origin.Pool)(nil)

// sitesWithOriginUp returns the sites with at least one origin up.
func sitesWithOriginUp(st []origin.OriginStatus) map[string]bool {
	up := map[string]bool{}
	for _, o := range st {
		if o.Up {
			for _, s := range o.Sites {
				up[s] = true
			}
		}
	}
	return up
}

// ServeAdmin serves the admin endpoints on ln until Shutdown.
func (s *Server) ServeAdmin(ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:               s.handleAdmin,
		Name:                  "",
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          time.Minute,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    64 << 10,
		CloseOnShutdown:       true,
		Logger:                fastLogger{s.log},
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.adminSrv = append(s.adminSrv, srv)
	s.adminLns = append(s.adminLns, ln)
	s.mu.Unlock()
	err := srv.Serve(ln)
	if err != nil && s.isShutdown() {
		return nil
	}
	return err
}

func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	path := string(ctx.Path())
	method := string(ctx.Method())
	get := method == fasthttp.MethodGet || method == fasthttp.MethodHead
	switch {
	case path == "/healthz" && get:
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
	case path == "/readyz" && get:
		s.handleReady(ctx)
	case path == "/stats" && get:
		writeJSON(ctx, fasthttp.StatusOK, s.Stats())
	case path == "/metrics" && get:
		if s.metrics == nil {
			adminFail(ctx, fasthttp.StatusNotFound, "no metrics handler configured")
			return
		}
		s.metrics(ctx)
	case path == "/purge" && (method == fasthttp.MethodPost || method == "PURGE"):
		s.handlePurge(ctx)
	case path == "/healthz" || path == "/readyz" || path == "/stats" || path == "/metrics":
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		adminFail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
	case path == "/purge":
		ctx.Response.Header.Set("Allow", "POST, PURGE")
		adminFail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use POST")
	default:
		adminFail(ctx, fasthttp.StatusNotFound, "unknown admin endpoint; see /healthz, /readyz, /stats, /metrics, /purge")
	}
}

func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	var problems []string
	if s.isShutdown() {
		problems = append(problems, "shutting down")
	}
	if s.publicUp.Load() == 0 {
		problems = append(problems, "no public listener is serving")
	}
	if _, err := s.store.Lookup(""); errors.Is(err, cache.ErrClosed) {
		problems = append(problems, "cache store is closed")
	}
	if os, ok := s.origins.(originStatuser); ok {
		up := sitesWithOriginUp(os.Status())
		for _, st := range s.tbl.Load().sites {
			if !up[st.name] {
				problems = append(problems, fmt.Sprintf("site %q has no healthy origin", st.name))
			}
		}
	}
	if len(problems) > 0 {
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"ready": false, "problems": problems})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"ready": true})
}

// Stats is the JSON document of GET /stats.
type Stats struct {
	Requests    int64 `json:"requests"`
	Hits        int64 `json:"hits"`
	Stale       int64 `json:"stale"`
	Misses      int64 `json:"misses"`
	Revalidated int64 `json:"revalidated"`
	Passes      int64 `json:"passes"`
	Errors      int64 `json:"errors"`
	// HitRatio is (hits + stale) / (hits + stale + misses + revalidated +
	// passes + errors): the share of cache requests answered without
	// waiting for the origin.
	HitRatio    float64               `json:"hit_ratio"`
	BytesServed int64                 `json:"bytes_served"`
	OriginBytes int64                 `json:"origin_bytes"`
	Connections ConnStats             `json:"connections"`
	Cache       CacheStats            `json:"cache"`
	Origins     []origin.OriginStatus `json:"origins,omitempty"`
	Sites       []SiteStatus          `json:"sites"`
}

// CacheStats are the chunk store's counters (cache.Stats) in JSON.
type CacheStats struct {
	Objects       int64 `json:"objects"`
	Chunks        int64 `json:"chunks"`
	MemoryBytes   int64 `json:"memory_bytes"`
	DiskBytes     int64 `json:"disk_bytes"`
	MemoryHits    int64 `json:"memory_hits"`
	DiskHits      int64 `json:"disk_hits"`
	Misses        int64 `json:"misses"`
	Evictions     int64 `json:"evictions"`
	CorruptChunks int64 `json:"corrupt_chunks"`
	Fills         int64 `json:"fills"`
}

// ConnStats counts public connections.
type ConnStats struct {
	Open     int   `json:"open"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

// SiteStatus names a configured site.
type SiteStatus struct {
	Name       string   `json:"name"`
	Hosts      []string `json:"hosts,omitempty"`
	PathPrefix string   `json:"path_prefix"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	// The per-request counters are the metrics' (telemetry.go): requests
	// are counted once answered.
	requests, bodyBytes, byLabel := s.tel.totals()
	st := Stats{
		Requests:    requests,
		Hits:        byLabel[labelHit],
		Stale:       byLabel[labelStale],
		Misses:      byLabel[labelMiss],
		Revalidated: byLabel[labelRevalidated],
		Passes:      byLabel[labelPass],
		Errors:      byLabel[labelError],
		BytesServed: bodyBytes,
		OriginBytes: s.stats.originBytes.Load(),
		Connections: ConnStats{
			Open:     s.conns.count(),
			Accepted: s.stats.connsAccepted.Load(),
			Rejected: s.stats.connsRejected.Load(),
		},
	}
	cs := s.store.Stats()
	st.Cache = CacheStats{Objects: cs.Objects, Chunks: cs.Chunks, MemoryBytes: cs.MemoryBytes, DiskBytes: cs.DiskBytes,
		MemoryHits: cs.MemoryHits, DiskHits: cs.DiskHits, Misses: cs.Misses, Evictions: cs.Evictions,
		CorruptChunks: cs.CorruptChunks, Fills: cs.Fills}
	if total := st.Hits + st.Stale + st.Misses + st.Revalidated + st.Passes + st.Errors; total > 0 {
		st.HitRatio = float64(st.Hits+st.Stale) / float64(total)
	}
	if os, ok := s.origins.(originStatuser); ok {
		st.Origins = os.Status()
	}
	for _, site := range s.tbl.Load().sites {
		st.Sites = append(st.Sites, SiteStatus{Name: site.name, Hosts: site.cfg.Hosts, PathPrefix: site.prefix})
	}
	return st
}

// PurgeResult is the JSON answer of /purge.
type PurgeResult struct {
	Site   string `json:"site"`
	Key    string `json:"key"` // the path (and query) purged, or the prefix
	Purged int    `json:"purged"`
}

func (s *Server) handlePurge(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	u, prefix := string(args.Peek("url")), string(args.Peek("prefix"))
	siteName := string(args.Peek("site"))
	raw, isPrefix := u, false
	switch {
	case u != "" && prefix != "":
		adminFail(ctx, fasthttp.StatusBadRequest, "give url= or prefix=, not both")
		return
	case prefix != "":
		raw, isPrefix = prefix, true
	case u == "":
		adminFail(ctx, fasthttp.StatusBadRequest, "missing url= (one object) or prefix= (a path prefix)")
		return
	}
	site, tgt, err := s.resolvePurge(raw, siteName)
	if err != nil {
		adminFail(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	var res PurgeResult
	res.Site = site.name
	base := site.name + "\x00"
	if isPrefix {
		p := string(tgt.path())
		res.Key = p
		res.Purged = s.store.PurgePrefix(base + p)
		for _, k := range s.passes.Keys() {
			if strings.HasPrefix(k, base+p) {
				s.passes.Remove(k)
			}
		}
	} else {
		pq := string(tgt.pathQuery())
		res.Key = pq
		primary := base + pq
		if s.store.Purge(primary) {
			res.Purged++
		}
		res.Purged += s.store.PurgePrefix(primary + "\x00")
		s.passes.Remove(primary)
	}
	s.log.Info("edge: purge", "site", res.Site, "key", res.Key, "prefix", isPrefix, "purged", res.Purged)
	writeJSON(ctx, fasthttp.StatusOK, res)
}

// resolvePurge finds the site and normalized target of a purge URL.
func (s *Server) resolvePurge(raw, siteName string) (*site, *target, error) {
	tbl := s.tbl.Load()
	tgt := new(target)
	if strings.HasPrefix(raw, "/") {
		if err := tgt.parse([]byte(raw)); err != nil {
			return nil, nil, fmt.Errorf("%q: %v", raw, err)
		}
		switch {
		case siteName != "":
			st := tbl.siteByName(siteName)
			if st == nil {
				return nil, nil, fmt.Errorf("no site named %q", siteName)
			}
			return st, tgt, nil
		case len(tbl.sites) == 1:
			return tbl.sites[0], tgt, nil
		default:
			return nil, nil, errors.New("several sites are configured: give an absolute URL or site=NAME")
		}
	}
	pu, err := url.Parse(raw)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, nil, fmt.Errorf("%q: want an absolute http(s) URL, or a path with site=NAME", raw)
	}
	if err := tgt.parse([]byte(pu.RequestURI())); err != nil {
		return nil, nil, fmt.Errorf("%q: %v", raw, err)
	}
	if siteName != "" {
		st := tbl.siteByName(siteName)
		if st == nil {
			return nil, nil, fmt.Errorf("no site named %q", siteName)
		}
		return st, tgt, nil
	}
	st, hostKnown := tbl.route([]byte(pu.Host), tgt.path())
	if st == nil {
		if !hostKnown {
			return nil, nil, fmt.Errorf("no site is configured for host %q", pu.Host)
		}
		return nil, nil, fmt.Errorf("no site serves %q on host %q", tgt.path(), pu.Host)
	}
	return st, tgt, nil
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		adminFail(ctx, fasthttp.StatusInternalServerError, "encoding JSON: "+err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(body, '\n'))
}

func adminFail(ctx *fasthttp.RequestCtx, status int, msg string) {
	writeJSON(ctx, status, map[string]any{"error": msg, "status": status})
}
