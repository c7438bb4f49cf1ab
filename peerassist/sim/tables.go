package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BandwidthClass is one row of an access-bandwidth table.
type BandwidthClass struct {
	DownBps, UpBps float64
	// Share is the fraction of users in the class.
	Share float64
}

// Table is an ISP's distribution of access bandwidths.
type Table []BandwidthClass

// The tables of the hybrid CDN-P2P paper (Huang, Wang, Li, Ross,
// NOSSDAV'08): download measured, upload inferred from the ISPs' packages.
var (
	// ATTTable is its Table 1 (AT&T, MSN Video clients, July 2007).
	ATTTable = Table{
		{DownBps: 768e3, UpBps: 128e3, Share: 0.1576},
		{DownBps: 1500e3, UpBps: 384e3, Share: 0.3478},
		{DownBps: 3000e3, UpBps: 512e3, Share: 0.3158},
		{DownBps: 6000e3, UpBps: 768e3, Share: 0.1789},
	}
	// VerizonTable is its Table 3 (Verizon; "3000 and up" taken as 3000).
	VerizonTable = Table{
		{DownBps: 768e3, UpBps: 128e3, Share: 0.3185},
		{DownBps: 3000e3, UpBps: 768e3, Share: 0.6815},
	}
)

// MeanUpBps and MeanDownBps are the table's averages.
func (t Table) MeanUpBps() float64 {
	s, w := 0.0, 0.0
	for _, c := range t {
		s += c.UpBps * c.Share
		w += c.Share
	}
	return s / w
}

// MeanDownBps is the table's average download rate.
func (t Table) MeanDownBps() float64 {
	s, w := 0.0, 0.0
	for _, c := range t {
		s += c.DownBps * c.Share
		w += c.Share
	}
	return s / w
}

// ParseTable parses "att", "verizon", or classes written
// "down/up/percent" in kbit/s separated by "+", e.g.
// "768/128/31.85+3000/768/68.15". The percentages must add up to 100
// (within shareTolerancePct, for rounded tables such as the paper's AT&T
// one, which adds up to 100.01); the shares are then normalized to sum
// to exactly 1.
func ParseTable(s string) (Table, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "att", "at&t":
		return ATTTable, nil
	case "verizon":
		return VerizonTable, nil
	case "":
		return nil, fmt.Errorf("empty bandwidth table (want att, verizon or down/up/percent+...)")
	}
	var t Table
	total := 0.0
	for i, part := range strings.Split(s, "+") {
		f := strings.Split(strings.TrimSpace(part), "/")
		if len(f) != 3 {
			return nil, fmt.Errorf("bandwidth class %d %q: want down/up/percent in kbit/s", i+1, part)
		}
		var v [3]float64
		for k, x := range f {
			n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
				return nil, fmt.Errorf("bandwidth class %d %q: %q is not a non-negative number", i+1, part, x)
			}
			v[k] = n
		}
		if v[0] <= 0 {
			return nil, fmt.Errorf("bandwidth class %d %q: download must be positive", i+1, part)
		}
		if v[0] > 1e8 || v[1] > 1e8 {
			return nil, fmt.Errorf("bandwidth class %d %q: rates are in kbit/s and at most 1e8", i+1, part)
		}
		t = append(t, BandwidthClass{DownBps: v[0] * 1e3, UpBps: v[1] * 1e3, Share: v[2]})
		total += v[2]
	}
	if math.Abs(total-100) > shareTolerancePct {
		return nil, fmt.Errorf("bandwidth table %q: percentages add up to %g, want 100 (each class is down/up/percent of users)", s, total)
	}
	for i := range t {
		t[i].Share /= total
	}
	return t, nil
}

// shareTolerancePct is how far from 100 a table's percentages may add up
// (rounding of published tables).
const shareTolerancePct = 0.5

// String writes the table in ParseTable's syntax.
func (t Table) String() string {
	parts := make([]string, len(t))
	for i, c := range t {
		parts[i] = fmt.Sprintf("%g/%g/%.2f", c.DownBps/1e3, c.UpBps/1e3, c.Share*100)
	}
	return strings.Join(parts, "+")
}
