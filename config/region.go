package config

import (
	"fmt"
	"net/netip"
)

// Region maps viewer addresses to regions (POPs) and ISPs. The region
// package owns the meaning of these fields; see region/doc.go.
type Region struct {
	// Name is the region this edge box serves; viewers mapped elsewhere get
	// HTTP only. "" serves every region in the table. Default "".
	Name string `yaml:"name"`
	// Regions lists regions, their ISPs and each ISP's prefixes.
	Regions []RegionDef `yaml:"regions"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For / Forwarded headers
	// are believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SubnetBitsV4 is the access-network prefix length for IPv4. Default 24.
	SubnetBitsV4 int `yaml:"subnet_bits_v4"`
	// SubnetBitsV6 is the access-network prefix length for IPv6. Default 56.
	SubnetBitsV6 int `yaml:"subnet_bits_v6"`
}

// RegionDef is one region and the ISPs in it.
type RegionDef struct {
	Name string   `yaml:"name"`
	ISPs []ISPDef `yaml:"isps"`
}

// ISPDef is one ISP of a region with the prefixes it announces there.
type ISPDef struct {
	Name     string   `yaml:"name"`
	ASN      uint32   `yaml:"asn"`
	Prefixes []string `yaml:"prefixes"`
}

// DefaultRegion returns the documented defaults.
func DefaultRegion() Region {
	return Region{SubnetBitsV4: 24, SubnetBitsV6: 56}
}

func (r *Region) validate(p *Problems) {
	if r.SubnetBitsV4 < 8 || r.SubnetBitsV4 > 32 {
		p.Addf("subnet_bits_v4", "must be in 8..32 (got %d)", r.SubnetBitsV4)
	}
	if r.SubnetBitsV6 < 16 || r.SubnetBitsV6 > 128 {
		p.Addf("subnet_bits_v6", "must be in 16..128 (got %d)", r.SubnetBitsV6)
	}
	for i, c := range r.TrustedProxies {
		if _, err := netip.ParsePrefix(c); err != nil {
			if _, err2 := netip.ParseAddr(c); err2 != nil {
				p.Addf(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR or address", c)
			}
		}
	}
	seen := map[string]bool{}
	for i, rd := range r.Regions {
		rp := p.Sub(fmt.Sprintf("regions[%d]", i))
		if rd.Name == "" {
			rp.Add("name", "required")
		} else if seen[rd.Name] {
			rp.Addf("name", "duplicate region %q", rd.Name)
		}
		seen[rd.Name] = true
		for j, isp := range rd.ISPs {
			ip := rp.Sub(fmt.Sprintf("isps[%d]", j))
			if isp.Name == "" && isp.ASN == 0 {
				ip.Add("", "an ISP needs a name or an asn")
			}
			for k, pfx := range isp.Prefixes {
				if _, err := netip.ParsePrefix(pfx); err != nil {
					ip.Addf(fmt.Sprintf("prefixes[%d]", k), "%q is not a CIDR prefix: %v", pfx, err)
				}
			}
		}
	}
}
