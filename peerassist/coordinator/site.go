package coordinator

import (
	"net"
	"net/url"
	"strings"

	"github.com/peerassist/edgebox/config"
)

// siteInfo is what the coordinator needs of a configured site. Immutable.
type siteInfo struct {
	name     string
	hosts    []string // lowercase; "*.example.com" matches subdomains
	enabled  bool
	crossISP bool
}

// siteTable resolves a connection's site. Immutable after construction.
type siteTable struct {
	sites    []*siteInfo
	byName   map[string]*siteInfo
	catchAll *siteInfo // the first site with no hosts (it answers any host)
}

func newSiteTable(cfg []config.Site) siteTable {
	t := siteTable{byName: map[string]*siteInfo{}}
	for _, s := range cfg {
		si := &siteInfo{name: s.Name, enabled: s.PeerAssist.IsEnabled(), crossISP: s.PeerAssist.AllowCrossISP}
		for _, h := range s.Hosts {
			si.hosts = append(si.hosts, strings.ToLower(h))
		}
		t.sites = append(t.sites, si)
		t.byName[s.Name] = si
		if len(si.hosts) == 0 && t.catchAll == nil {
			t.catchAll = si
		}
	}
	return t
}

// forHost returns the site serving host (a Host header or an Origin's host,
// port ignored): an exact host match first, then a wildcard, then the
// catch-all site; nil when none.
func (t *siteTable) forHost(host string) *siteInfo {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	for _, s := range t.sites {
		for _, h := range s.hosts {
			if h == host {
				return s
			}
		}
	}
	for _, s := range t.sites {
		for _, h := range s.hosts {
			if suffix, ok := strings.CutPrefix(h, "*."); ok && strings.HasSuffix(host, "."+suffix) {
				return s
			}
		}
	}
	return t.catchAll
}

// refresh returns the site of this table that replaces old (one of an
// earlier table), found by name; def when old is nil or gone.
func (t *siteTable) refresh(old, def *siteInfo) *siteInfo {
	if old != nil {
		if s := t.byName[old.name]; s != nil {
			return s
		}
	}
	return def
}

// forRequest resolves the site of an upgrade request: a browser's page is
// named by its Origin; a native client by the Host it connected to.
func (t *siteTable) forRequest(origin, host string) *siteInfo {
	if origin != "" && origin != "null" {
		if u, err := url.Parse(origin); err == nil && u.Host != "" {
			return t.forHost(u.Host)
		}
	}
	return t.forHost(host)
}
