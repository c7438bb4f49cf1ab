package edge

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/config"
)

// site is one configured site as the request path needs it.
type site struct {
	name        string
	prefix      string // normalized path prefix, "/" for all
	stripPrefix bool
	chunkBytes  int
	cfg         config.Site
	// hitCounters caches the telemetry counters of GET hits answered 200
	// and 206 (telemetry.record).
	hitCounters [2]atomic.Pointer[siteCounters]
}

// matchesPath reports whether path is under the site's prefix. A prefix
// that does not end in "/" matches itself and the paths below it: "/vod"
// matches "/vod" and "/vod/a", not "/vodka".
func (s *site) matchesPath(path []byte) bool {
	p := s.prefix
	if !bytes.HasPrefix(path, []byte(p)) {
		return false
	}
	return strings.HasSuffix(p, "/") || len(path) == len(p) || path[len(p)] == '/'
}

// originPath returns the path sent to the origin for a request path.
func (s *site) originPath(path []byte) []byte {
	if !s.stripPrefix || s.prefix == "/" {
		return path
	}
	rest := path[len(strings.TrimSuffix(s.prefix, "/")):]
	if len(rest) == 0 || rest[0] != '/' {
		return append([]byte{'/'}, rest...)
	}
	return rest
}

// table is the routing state that Reload swaps as a whole: sites, limits
// and cache policy. A table is immutable once built and shared by every
// request that loaded it, so in-flight requests finish on the table they
// started with.
type table struct {
	cfg *config.Config

	sites    []*site            // config order
	exact    map[string][]*site // lower-case host -> sites, longest prefix first
	wildcard []wildcardSites    // longest suffix first
	anyHost  []*site            // sites without hosts, longest prefix first

	policy         storePolicy
	maxObjectBytes int64
	accessLog      bool
}

type wildcardSites struct {
	suffix string // ".example.com"
	sites  []*site
}

// newTable builds the routing table of a validated configuration.
func newTable(cfg *config.Config) (*table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &table{
		cfg:   cfg,
		exact: map[string][]*site{},
		policy: storePolicy{
			negativeTTL: cfg.Cache.NegativeTTL.D(),
			defaultTTL:  cfg.Cache.DefaultTTL.D(),
			maxStale:    cfg.Cache.MaxStale.D(),
		},
		maxObjectBytes: int64(cfg.Limits.MaxObjectBytes),
		accessLog:      cfg.Telemetry.AccessLog,
	}
	wild := map[string][]*site{}
	for i, sc := range cfg.Sites {
		var tg target
		if err := tg.parse([]byte(sc.PathPrefix)); err != nil {
			return nil, fmt.Errorf("sites[%d].path_prefix %q: %w", i, sc.PathPrefix, err)
		}
		prefix := string(tg.path())
		if tg.query() != nil {
			return nil, fmt.Errorf("sites[%d].path_prefix %q: must not contain a query", i, sc.PathPrefix)
		}
		// removeDotSegments drops a trailing "/." but keeps a trailing "/":
		// keep what the operator wrote.
		s := &site{name: sc.Name, prefix: prefix, stripPrefix: sc.StripPrefix, cfg: sc,
			chunkBytes: int(cfg.Cache.ChunkBytes)}
		if sc.ChunkBytes != 0 {
			s.chunkBytes = int(sc.ChunkBytes)
		}
		t.sites = append(t.sites, s)
		if len(sc.Hosts) == 0 {
			t.anyHost = append(t.anyHost, s)
		}
		for _, h := range sc.Hosts {
			h = strings.TrimSuffix(strings.ToLower(h), ".")
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				wild[suffix] = append(wild[suffix], s)
				continue
			}
			t.exact[hostWithoutPort(h)] = append(t.exact[hostWithoutPort(h)], s)
		}
	}
	byPrefix := func(a, b *site) int { return len(b.prefix) - len(a.prefix) }
	for h := range t.exact {
		slices.SortStableFunc(t.exact[h], byPrefix)
	}
	for suffix, ss := range wild {
		slices.SortStableFunc(ss, byPrefix)
		t.wildcard = append(t.wildcard, wildcardSites{suffix: suffix, sites: ss})
	}
	slices.SortFunc(t.wildcard, func(a, b wildcardSites) int {
		if d := len(b.suffix) - len(a.suffix); d != 0 {
			return d
		}
		return strings.Compare(a.suffix, b.suffix)
	})
	slices.SortStableFunc(t.anyHost, byPrefix)
	return t, nil
}

// route finds the site for a Host header value and a normalized path.
// Hosts are tried from the most specific (exact, then the longest wildcard
// suffix, then sites for any host); within one, the longest matching path
// prefix wins. hostKnown is false when no site serves the host at all
// (421), true with a nil site when the host is served but not the path
// (404).
func (t *table) route(host, path []byte) (s *site, hostKnown bool) {
	h := normalizeHost(host)
	if ss, ok := t.exact[string(h)]; ok {
		hostKnown = true
		if s := firstPathMatch(ss, path); s != nil {
			return s, true
		}
	}
	for _, w := range t.wildcard {
		// "*.example.com" matches "a.example.com", not "example.com".
		if len(h) > len(w.suffix) && bytes.HasSuffix(h, []byte(w.suffix)) {
			hostKnown = true
			if s := firstPathMatch(w.sites, path); s != nil {
				return s, true
			}
		}
	}
	if len(t.anyHost) > 0 {
		hostKnown = true
		if s := firstPathMatch(t.anyHost, path); s != nil {
			return s, true
		}
	}
	return nil, hostKnown
}

// siteByName returns the named site or nil.
func (t *table) siteByName(name string) *site {
	for _, s := range t.sites {
		if s.name == name {
			return s
		}
	}
	return nil
}

func firstPathMatch(ss []*site, path []byte) *site {
	for _, s := range ss {
		if s.matchesPath(path) {
			return s
		}
	}
	return nil
}

// normalizeHost lower-cases a Host value and drops the port and a trailing
// dot. The result aliases a small internal copy only when it had to change
// case; the common lower-case host is returned without copying.
func normalizeHost(host []byte) []byte {
	host = hostWithoutPortBytes(host)
	host = bytes.TrimSuffix(host, []byte{'.'})
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			return bytes.ToLower(host)
		}
	}
	return host
}

// hostWithoutPortBytes drops the port, and the brackets of an IPv6
// literal ("[::1]:8080" and "[::1]" give "::1", as sites list it).
func hostWithoutPortBytes(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' { // [v6]:port
		if i := bytes.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

func hostWithoutPort(h string) string { return string(hostWithoutPortBytes([]byte(h))) }

// durationSeconds renders d as whole seconds for headers (rounded up, so a
// Retry-After never says 0 for a positive wait).
func durationSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
