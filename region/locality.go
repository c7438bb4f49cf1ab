package region

import "net/netip"

// Locality is where an address sits in the ISP topology.
type Locality struct {
	// Known is false when no source maps the address to a region. Unknown
	// addresses form no swarm with anyone (HTTP only).
	Known bool `json:"known"`
	// Region is the POP region name.
	Region string `json:"region,omitempty"`
	// ISP is the ISP's name; ASN its autonomous system number (0 unknown).
	ISP string `json:"isp,omitempty"`
	ASN uint32 `json:"asn,omitempty"`
	// Prefix is the most specific table prefix that matched.
	Prefix netip.Prefix `json:"prefix,omitzero"`
	// Subnet is the access network: the address masked to /24 (IPv4) or /56
	// (IPv6) unless configured otherwise.
	Subnet netip.Prefix `json:"subnet,omitzero"`
	// Source names what answered: "config" for a configured ISP prefix,
	// otherwise the database path as configured. Informational only:
	// Compare ignores it.
	Source string `json:"source,omitempty"`
}

// Tier orders how close two peers are; lower is closer.
type Tier int

const (
	// SameSubnet: same access network.
	SameSubnet Tier = iota
	// SameISP: same ISP in the same region.
	SameISP
	// SameRegionOtherISP: same region, different ISP (only where a site
	// allows cross-ISP exchange).
	SameRegionOtherISP
	// Never: other region, or either side unknown. Such peers never meet.
	Never
)

func (t Tier) String() string {
	switch t {
	case SameSubnet:
		return "same-subnet"
	case SameISP:
		return "same-isp"
	case SameRegionOtherISP:
		return "same-region"
	default:
		return "never"
	}
}

// Compare returns the tier of two localities.
func Compare(a, b Locality) Tier {
	switch {
	case !a.Known || !b.Known || a.Region != b.Region:
		return Never
	case !sameISP(a, b):
		return SameRegionOtherISP
	case a.Subnet.IsValid() && a.Subnet == b.Subnet:
		return SameSubnet
	default:
		return SameISP
	}
}

func sameISP(a, b Locality) bool {
	if a.ASN != 0 || b.ASN != 0 {
		return a.ASN == b.ASN
	}
	return a.ISP == b.ISP
}
