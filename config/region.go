package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Region maps viewer addresses to regions (POPs) and ISPs. The region
// package owns the meaning of these fields; see region/doc.go for the
// sources, their file formats and the precedence rule.
type Region struct {
	// Name is the region this edge box serves; viewers mapped elsewhere get
	// HTTP only. "" serves every region in the table. When set it must be
	// one of Regions. Default "".
	Name string `yaml:"name"`
	// Regions lists regions, their ISPs with the prefixes each announces
	// there (authoritative: they override every database), and the ASNs
	// whose database ranges belong to the region. Default none.
	Regions []RegionDef `yaml:"regions"`
	// Sources are IP-to-ASN databases, read in order: a later database
	// answers wherever it has data, an earlier one only fills its gaps.
	// Relative paths are relative to the config file's directory. At most
	// MaxRegionSources. Default none.
	Sources []RegionSource `yaml:"sources"`
	// TrustedProxies are the addresses or CIDRs whose ClientIPHeader is
	// believed. Default none: the socket address is always the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader names the header a trusted proxy sets:
	// "X-Forwarded-For" or "Forwarded" (RFC 7239). Only one is read,
	// because a proxy that maintains one passes the other through from
	// the client unchecked. Default "X-Forwarded-For".
	ClientIPHeader string `yaml:"client_ip_header"`
	// SubnetBitsV4 is the access-network prefix length for IPv4. Default 24.
	SubnetBitsV4 int `yaml:"subnet_bits_v4"`
	// SubnetBitsV6 is the access-network prefix length for IPv6. Default 56.
	SubnetBitsV6 int `yaml:"subnet_bits_v6"`
	// WatchInterval is how often the source files' modification times are
	// polled; a changed file is reloaded once it has stayed unchanged for
	// one interval. 0 disables watching (reload on SIGHUP only).
	// Default 0.
	WatchInterval Duration `yaml:"watch_interval"`
}

// RegionDef is one region: the ISPs in it and the ASNs assigned to it.
type RegionDef struct {
	// Name of the region (POP). Required, unique.
	Name string `yaml:"name"`
	// ISPs with the prefixes they announce in this region. Default none.
	ISPs []ISPDef `yaml:"isps"`
	// ASNs assigns the ranges that the Sources databases attribute to these
	// autonomous systems to this region. Default none.
	ASNs []ASNDef `yaml:"asns"`
}

// ISPDef is one ISP of a region with the prefixes it announces there.
type ISPDef struct {
	// Name of the ISP. Name or ASN is required.
	Name string `yaml:"name"`
	// ASN is the ISP's autonomous system number; 0 unknown. Peers with the
	// same nonzero ASN are the same ISP. Default 0.
	ASN uint32 `yaml:"asn"`
	// Prefixes are CIDR prefixes (no host bits) of this ISP in this region.
	// A prefix may appear only once in the whole section. Default none.
	Prefixes []string `yaml:"prefixes"`
	// SubnetBitsV4 and SubnetBitsV6 override the region section's access
	// network lengths for this ISP's prefixes. Default 0: inherit.
	SubnetBitsV4 int `yaml:"subnet_bits_v4"`
	SubnetBitsV6 int `yaml:"subnet_bits_v6"`
}

// ASNDef assigns an autonomous system's database ranges to a region.
type ASNDef struct {
	// ASN is the autonomous system number (not 0). Required.
	ASN uint32 `yaml:"asn"`
	// Name is the ISP name to report. Default: the name of this region's
	// ISP with the same ASN, else the database's AS name.
	Name string `yaml:"name"`
	// Within restricts the assignment to the ASN's ranges inside these CIDR
	// prefixes. An ASN may be assigned once without Within (its default
	// region) and any number of times with disjoint-or-nested Within
	// prefixes; the most specific matching Within wins. Default none: all
	// of the ASN's ranges.
	Within []string `yaml:"within"`
	// SubnetBitsV4 and SubnetBitsV6 override the access network lengths
	// for these ranges. Default 0: inherit.
	SubnetBitsV4 int `yaml:"subnet_bits_v4"`
	SubnetBitsV6 int `yaml:"subnet_bits_v6"`
}

// RegionSource is one IP-to-ASN database file.
type RegionSource struct {
	// Path of the file, relative to the config file's directory unless
	// absolute. Required.
	Path string `yaml:"path"`
	// Format is "tsv" (iptoasn.com: range_start, range_end, AS_number,
	// country_code, AS_description; plain or gzip) or "mmdb" (MaxMind
	// GeoLite2-ASN format). Default: "mmdb" when Path ends in ".mmdb",
	// otherwise "tsv".
	Format string `yaml:"format"`
}

// MaxRegionSources bounds Region.Sources (the table keeps a source index in
// one byte per prefix).
const MaxRegionSources = 64

// Source formats.
const (
	SourceTSV  = "tsv"
	SourceMMDB = "mmdb"
)

// ResolvedFormat returns Format, or the format implied by Path when unset.
func (s RegionSource) ResolvedFormat() string {
	if s.Format != "" {
		return strings.ToLower(s.Format)
	}
	if strings.HasSuffix(strings.ToLower(s.Path), ".mmdb") {
		return SourceMMDB
	}
	return SourceTSV
}

// ResolvedPath returns Path made absolute against dir (the config file's
// directory) when it is relative.
func (s RegionSource) ResolvedPath(dir string) string {
	if filepath.IsAbs(s.Path) || dir == "" {
		return s.Path
	}
	return filepath.Join(dir, s.Path)
}

// Client address headers.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// DefaultRegion returns the documented defaults.
func DefaultRegion() Region {
	return Region{SubnetBitsV4: 24, SubnetBitsV6: 56, ClientIPHeader: HeaderXForwardedFor}
}

// Validate checks the section alone and returns every problem with its
// path below "region" (no file or line: Config.Validate adds those).
func (r *Region) Validate() error {
	var p Problems
	r.validate(p.Sub("region"))
	return p.Err("", nil)
}

func (r *Region) validate(p *Problems) {
	if r.SubnetBitsV4 < 8 || r.SubnetBitsV4 > 32 {
		p.Addf("subnet_bits_v4", "must be in 8..32 (got %d)", r.SubnetBitsV4)
	}
	if r.SubnetBitsV6 < 16 || r.SubnetBitsV6 > 128 {
		p.Addf("subnet_bits_v6", "must be in 16..128 (got %d)", r.SubnetBitsV6)
	}
	switch {
	case strings.EqualFold(r.ClientIPHeader, HeaderXForwardedFor), strings.EqualFold(r.ClientIPHeader, HeaderForwarded):
	default:
		p.Addf("client_ip_header", "%q: must be %q or %q", r.ClientIPHeader, HeaderXForwardedFor, HeaderForwarded)
	}
	if r.WatchInterval < 0 {
		p.Addf("watch_interval", "must not be negative (got %s)", r.WatchInterval)
	} else if r.WatchInterval > 0 && r.WatchInterval.D().Seconds() < 0.1 {
		p.Addf("watch_interval", "must be 0 (off) or at least 100ms (got %s)", r.WatchInterval)
	}
	for i, c := range r.TrustedProxies {
		field := fmt.Sprintf("trusted_proxies[%d]", i)
		if _, err := netip.ParseAddr(c); err == nil {
			if strings.Contains(c, "%") {
				p.Addf(field, "%q: zones are not allowed", c)
			}
			continue
		}
		checkPrefix(p, field, c, "a CIDR or address")
	}
	if len(r.Sources) > MaxRegionSources {
		p.Addf("sources", "at most %d sources are supported (got %d)", MaxRegionSources, len(r.Sources))
	}
	for i, s := range r.Sources {
		sp := p.Sub(fmt.Sprintf("sources[%d]", i))
		if strings.TrimSpace(s.Path) == "" {
			sp.Add("path", "required")
		}
		if f := s.ResolvedFormat(); f != SourceTSV && f != SourceMMDB {
			sp.Addf("format", "%q: must be %q or %q", s.Format, SourceTSV, SourceMMDB)
		}
	}

	names := map[string]int{}
	prefixes := map[netip.Prefix]string{} // config prefix -> path of its first use
	type asnKey struct {
		asn    uint32
		within netip.Prefix // zero: the ASN's default region
	}
	asns := map[asnKey]string{}
	for i, rd := range r.Regions {
		rp := p.Sub(fmt.Sprintf("regions[%d]", i))
		if strings.TrimSpace(rd.Name) == "" {
			rp.Add("name", "required")
		} else if j, dup := names[rd.Name]; dup {
			rp.Addf("name", "duplicate region %q (also regions[%d])", rd.Name, j)
		} else {
			names[rd.Name] = i
		}
		for j, isp := range rd.ISPs {
			ip := rp.Sub(fmt.Sprintf("isps[%d]", j))
			if strings.TrimSpace(isp.Name) == "" && isp.ASN == 0 {
				ip.Add("", "an ISP needs a name or an asn")
			}
			checkSubnetBits(ip, isp.SubnetBitsV4, isp.SubnetBitsV6)
			for k, s := range isp.Prefixes {
				field := fmt.Sprintf("prefixes[%d]", k)
				pfx, ok := checkPrefix(ip, field, s, "a CIDR prefix")
				if !ok {
					continue
				}
				path := fmt.Sprintf("regions[%d].isps[%d].%s", i, j, field)
				if first, dup := prefixes[pfx]; dup {
					ip.Addf(field, "prefix %s is also listed at %s", pfx, first)
					continue
				}
				prefixes[pfx] = path
			}
		}
		for j, a := range rd.ASNs {
			ap := rp.Sub(fmt.Sprintf("asns[%d]", j))
			if a.ASN == 0 {
				ap.Add("asn", "required (AS 0 means not routed and cannot be assigned)")
			}
			checkSubnetBits(ap, a.SubnetBitsV4, a.SubnetBitsV6)
			here := fmt.Sprintf("regions[%d].asns[%d]", i, j)
			if len(a.Within) == 0 && a.ASN != 0 {
				k := asnKey{asn: a.ASN}
				if first, dup := asns[k]; dup {
					ap.Addf("asn", "AS%d is already assigned without within at %s; restrict one of them with within", a.ASN, first)
				} else {
					asns[k] = here
				}
			}
			for k, s := range a.Within {
				field := fmt.Sprintf("within[%d]", k)
				pfx, ok := checkPrefix(ap, field, s, "a CIDR prefix")
				if !ok || a.ASN == 0 {
					continue
				}
				key := asnKey{asn: a.ASN, within: pfx}
				if first, dup := asns[key]; dup {
					ap.Addf(field, "AS%d within %s is already assigned at %s", a.ASN, pfx, first)
					continue
				}
				asns[key] = here + "." + field
			}
		}
	}
	if r.Name != "" {
		if _, ok := names[r.Name]; !ok {
			p.Addf("name", "region %q is not defined in regions", r.Name)
		}
	}
}

// checkPrefix parses s as a canonical CIDR prefix (no host bits, no
// IPv4-mapped IPv6) and reports why it is not one.
func checkPrefix(p *Problems, field, s, what string) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
	switch {
	case err != nil:
		p.Addf(field, "%q is not %s: %v", s, what, err)
	case pfx.Addr().Is4In6():
		p.Addf(field, "%q is an IPv4-mapped IPv6 prefix; write it as IPv4", s)
	case pfx != pfx.Masked():
		p.Addf(field, "%q has host bits set; did you mean %s?", s, pfx.Masked())
	default:
		return pfx, true
	}
	return netip.Prefix{}, false
}

func checkSubnetBits(p *Problems, v4, v6 int) {
	if v4 != 0 && (v4 < 8 || v4 > 32) {
		p.Addf("subnet_bits_v4", "must be 0 (inherit) or in 8..32 (got %d)", v4)
	}
	if v6 != 0 && (v6 < 16 || v6 > 128) {
		p.Addf("subnet_bits_v6", "must be 0 (inherit) or in 16..128 (got %d)", v6)
	}
}
