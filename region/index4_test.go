package region

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gaissmai/bart"
	"go4.org/netipx"

	"github.com/peerassist/edgebox/config"
)

// forceIndex4 makes every table built until the test ends have an IPv4
// index, however small.
func forceIndex4(t testing.TB) {
	t.Helper()
	n := index4MinPrefixes
	index4MinPrefixes = 0
	t.Cleanup(func() { index4MinPrefixes = n })
}

// viaBart returns Locate(ip) with the table's index bypassed: bart answers
// every lookup. The table is changed for the call, so no other goroutine
// may use l meanwhile.
func viaBart(l *Locator, ip netip.Addr) Locality {
	t := l.table.Load()
	idx := t.idx4
	t.idx4 = nil
	defer func() { t.idx4 = idx }()
	return l.Locate(ip)
}

// tsvLine is one iptoasn line for the prefix p.
func tsvLine(p netip.Prefix, asn int) string {
	return fmt.Sprintf("%s\t%s\t%d\tZZ\tAS%d-NET\n", p.Addr(), netipx.PrefixLastIP(p), asn, asn)
}

// pfx4 is the IPv4 prefix of length bits holding the address u.
func pfx4(u uint32, bits int) netip.Prefix { return prefix4(u, bits) }

// index4Cases are tables whose IPv4 index TestIndex4MatchesBart checks.
// Each returns the files (name -> content) and the config using them.
var index4Cases = []struct {
	name string
	make func(rng *rand.Rand) (map[string]string, config.Region)
}{
	{"nested prefixes of every length 0..32", func(rng *rand.Rand) (map[string]string, config.Region) {
		var tsv strings.Builder
		for chain := 0; chain < 6; chain++ {
			u := rng.Uint32()
			for bits := 0; bits <= 32; bits++ {
				if chain > 0 && bits < 8 {
					continue // one chain covers the short lengths
				}
				tsv.WriteString(tsvLine(pfx4(u, bits), 1+chain*100+bits))
			}
		}
		cfg := baseRegion()
		cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
		cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 1}, {ASN: 124}}}}
		return map[string]string{"a.tsv": tsv.String()}, cfg
	}},
	{"/25-/32 inside /24s, in supernets and in unknown space", func(rng *rand.Rand) (map[string]string, config.Region) {
		var tsv strings.Builder
		tsv.WriteString(tsvLine(netip.MustParsePrefix("20.0.0.0/16"), 7))
		tsv.WriteString(tsvLine(netip.MustParsePrefix("20.0.5.0/24"), 8))
		for i := 0; i < 300; i++ {
			var base uint32
			switch i % 3 {
			case 0: // inside 20.0.0.0/16, some in the /24 of AS8
				base = 20<<24 | rng.Uint32N(1<<16)
			case 1: // in space no other prefix covers
				base = 30<<24 | rng.Uint32N(1<<16)
			default: // the edges of the address space
				base = rng.Uint32N(1<<12) | uint32(i%2)*(0xffffffff-1<<12)
			}
			tsv.WriteString(tsvLine(pfx4(base, 25+rng.IntN(8)), 100+i%40))
		}
		tsv.WriteString(tsvLine(netip.MustParsePrefix("0.0.0.0/32"), 9))
		tsv.WriteString(tsvLine(netip.MustParsePrefix("255.255.255.255/32"), 9))
		cfg := baseRegion()
		cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
		cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 7}, {ASN: 101, Within: []string{"20.0.0.0/17"}}}}}
		return map[string]string{"a.tsv": tsv.String()}, cfg
	}},
	{"overlapping sources and config prefixes", func(rng *rand.Rand) (map[string]string, config.Region) {
		files := map[string]string{}
		for _, name := range []string{"a.tsv", "b.tsv"} {
			var tsv strings.Builder
			for i := 0; i < 1500; i++ {
				// 40.0.0.0/6 is crowded: prefixes of both files overlap
				// at every length, more specific ones more often.
				u := 40<<24 | rng.Uint32N(1<<26)
				tsv.WriteString(tsvLine(pfx4(u, 6+rng.IntN(27)), 1+rng.IntN(60)))
			}
			files[name] = tsv.String()
		}
		cfg := baseRegion()
		cfg.SubnetBitsV4 = 26
		cfg.Sources = []config.RegionSource{{Path: "a.tsv"}, {Path: "b.tsv"}}
		cfg.Regions = []config.RegionDef{
			{Name: "r", ASNs: []config.ASNDef{{ASN: 3}, {ASN: 5, Within: []string{"41.0.0.0/8", "42.1.0.0/16"}, SubnetBitsV4: 30}},
				ISPs: []config.ISPDef{{Name: "own", ASN: 900, Prefixes: []string{"40.1.0.0/16", "42.42.42.0/25", "43.0.0.0/8"}, SubnetBitsV4: 28}}},
			{Name: "s", ISPs: []config.ISPDef{{Name: "biz", Prefixes: []string{"40.1.2.0/24", "43.5.0.0/16", "41.7.7.7/32"}}}},
		}
		return files, cfg
	}},
	{"random prefixes of every length", func(rng *rand.Rand) (map[string]string, config.Region) {
		var tsv strings.Builder
		for i := 0; i < 3000; i++ {
			bits := rng.IntN(33)
			if bits < 8 && rng.IntN(8) > 0 {
				bits += 8 // few very short prefixes: keep unknown space
			}
			tsv.WriteString(tsvLine(pfx4(rng.Uint32(), bits), 1+i%90))
		}
		cfg := baseRegion()
		cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
		cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 2}, {ASN: 4}}}}
		return map[string]string{"a.tsv": tsv.String()}, cfg
	}},
	{"a /0 under everything", func(rng *rand.Rand) (map[string]string, config.Region) {
		var tsv strings.Builder
		tsv.WriteString(tsvLine(netip.MustParsePrefix("0.0.0.0/0"), 3))
		for i := 0; i < 500; i++ {
			tsv.WriteString(tsvLine(pfx4(rng.Uint32(), 8+rng.IntN(25)), 1+i%9))
		}
		cfg := baseRegion()
		cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
		cfg.Regions = []config.RegionDef{{Name: "r", ISPs: []config.ISPDef{{Name: "own", Prefixes: []string{"128.0.0.0/2", "200.1.2.0/23"}}}},
			{Name: "s", ASNs: []config.ASNDef{{ASN: 3}}}}
		return map[string]string{"a.tsv": tsv.String()}, cfg
	}},
}

// TestIndex4MatchesBart: for tables of nested, overlapping, deep and
// random prefixes, Locate with the IPv4 index answers exactly as Locate
// with bart alone, at the first and last address of every prefix and next
// to them, at /24 block edges and at random addresses; and every checked
// index entry is what bart says of its block.
func TestIndex4MatchesBart(t *testing.T) {
	forceIndex4(t)
	for i, tc := range index4Cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			files, cfg := tc.make(rng)
			dir := t.TempDir()
			for name, content := range files {
				writeFile(t, dir, name, content)
			}
			l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			checkIndex4(t, l, rng)
		})
	}
}

// checkIndex4 compares l's indexed answers with bart's on the addresses
// and blocks that TestIndex4MatchesBart describes.
func checkIndex4(t *testing.T, l *Locator, rng *rand.Rand) {
	t.Helper()
	tbl := l.table.Load()
	if tbl.idx4 == nil {
		t.Fatal("table has no IPv4 index")
	}
	// At most about 20k prefixes are probed: every stride-th.
	stride := max(1, tbl.prefixes.Size4()/20_000)
	var probes []uint32
	blocks := map[uint32]bool{}
	n := 0
	for p := range tbl.prefixes.All4() {
		if n++; n%stride != 0 {
			continue
		}
		first := binary.BigEndian.Uint32(p.Addr().AsSlice())
		last := binary.BigEndian.Uint32(netipx.PrefixLastIP(p).AsSlice())
		probes = append(probes, first-1, first, first+1, last-1, last, last+1,
			first+uint32(rng.Uint64N(uint64(last-first)+1)), first|0xff, last&^0xff)
		for _, u := range []uint32{first - 1<<8, first, last, last + 1<<8} {
			blocks[u>>8] = true
		}
	}
	for i := 0; i < 20_000; i++ {
		probes = append(probes, rng.Uint32())
		blocks[rng.Uint32N(1<<24)] = true
	}
	probes = append(probes, 0, 0xffffffff)
	var fromIndex, deeper, none int
	for _, u := range probes {
		ip := u32Addr(u)
		got, want := l.Locate(ip), viaBart(l, ip)
		if got != want {
			t.Fatalf("Locate(%s) = %+v with the index, %+v with bart alone (index entry %#x)", ip, got, want, tbl.idx4[u>>8])
		}
		if mapped := netip.AddrFrom16(ip.As16()); l.Locate(mapped) != want {
			t.Fatalf("Locate(%s) = %+v, want %+v", mapped, l.Locate(mapped), want)
		}
		switch tbl.idx4[u>>8] {
		case ref4Deeper:
			deeper++
		case ref4None:
			none++
		default:
			fromIndex++
		}
	}
	// Each kind of entry must be exercised, or the comparison proves little.
	_, everywhere := tbl.prefixes.Get(netip.MustParsePrefix("0.0.0.0/0"))
	if fromIndex == 0 || deeper == 0 || none == 0 && !everywhere {
		t.Errorf("probes: %d answered by the index, %d deeper, %d in no prefix: want each kind", fromIndex, deeper, none)
	}
	for blk := range blocks {
		if got, want := tbl.idx4[blk], wantIndex4Entry(&tbl.prefixes, blk); got != want {
			t.Fatalf("index entry of %s = %#x, want %#x", pfx4(blk<<8, 24), got, want)
		}
	}
}

// wantIndex4Entry is the index entry of block blk derived from bart alone.
func wantIndex4Entry(pfx *bart.Fast[ref], blk uint32) ref {
	b := pfx4(blk<<8, 24)
	for p := range pfx.Subnets(b) {
		if p.Bits() > 24 {
			return ref4Deeper
		}
	}
	if _, r, ok := pfx.LookupPrefixLPM(b); ok {
		return r
	}
	return ref4None
}

// TestIndex4Examples: the index's answers on a hand-made table, entry kind
// by entry kind.
func TestIndex4Examples(t *testing.T) {
	forceIndex4(t)
	dir := t.TempDir()
	writeFile(t, dir, "a.tsv", ""+
		"10.0.0.0\t10.255.255.255\t1\tZZ\tEIGHT\n"+
		"10.1.0.0\t10.1.0.255\t2\tZZ\tTWENTYFOUR\n"+
		"10.1.1.128\t10.1.1.191\t3\tZZ\tTWENTYSIX\n"+
		"10.1.2.7\t10.1.2.7\t4\tZZ\tHOST\n"+
		"50.0.0.128\t50.0.0.255\t5\tZZ\tALONE\n"+
		"255.255.255.255\t255.255.255.255\t6\tZZ\tLAST\n")
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 1}, {ASN: 3}}}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tbl := l.table.Load()
	p := netip.MustParsePrefix
	tests := []struct {
		ip        string
		wantEntry string // "ref", "deeper" or "none"
		want      Locality
	}{
		{"10.0.0.1", "ref", Locality{Known: true, Region: "r", ISP: "EIGHT", ASN: 1, Prefix: p("10.0.0.0/8"), Subnet: p("10.0.0.0/24"), Source: "a.tsv"}},
		{"10.1.0.255", "ref", Locality{ISP: "TWENTYFOUR", ASN: 2, Prefix: p("10.1.0.0/24"), Subnet: p("10.1.0.0/24"), Source: "a.tsv"}},
		{"10.1.1.127", "deeper", Locality{Known: true, Region: "r", ISP: "EIGHT", ASN: 1, Prefix: p("10.0.0.0/8"), Subnet: p("10.1.1.0/24"), Source: "a.tsv"}},
		{"10.1.1.128", "deeper", Locality{Known: true, Region: "r", ISP: "TWENTYSIX", ASN: 3, Prefix: p("10.1.1.128/26"), Subnet: p("10.1.1.0/24"), Source: "a.tsv"}},
		{"10.1.2.7", "deeper", Locality{ISP: "HOST", ASN: 4, Prefix: p("10.1.2.7/32"), Subnet: p("10.1.2.0/24"), Source: "a.tsv"}},
		{"10.1.2.8", "deeper", Locality{Known: true, Region: "r", ISP: "EIGHT", ASN: 1, Prefix: p("10.0.0.0/8"), Subnet: p("10.1.2.0/24"), Source: "a.tsv"}},
		{"10.1.3.0", "ref", Locality{Known: true, Region: "r", ISP: "EIGHT", ASN: 1, Prefix: p("10.0.0.0/8"), Subnet: p("10.1.3.0/24"), Source: "a.tsv"}},
		{"50.0.0.127", "deeper", Locality{Subnet: p("50.0.0.0/24")}},
		{"50.0.0.128", "deeper", Locality{ISP: "ALONE", ASN: 5, Prefix: p("50.0.0.128/25"), Subnet: p("50.0.0.0/24"), Source: "a.tsv"}},
		{"50.0.1.0", "none", Locality{Subnet: p("50.0.1.0/24")}},
		{"9.255.255.255", "none", Locality{Subnet: p("9.255.255.0/24")}},
		{"0.0.0.0", "none", Locality{Subnet: p("0.0.0.0/24")}},
		{"255.255.255.254", "deeper", Locality{Subnet: p("255.255.255.0/24")}},
		{"255.255.255.255", "deeper", Locality{ISP: "LAST", ASN: 6, Prefix: p("255.255.255.255/32"), Subnet: p("255.255.255.0/24"), Source: "a.tsv"}},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		entry := tbl.idx4[binary.BigEndian.Uint32(ip.AsSlice())>>8]
		kind := "ref"
		switch entry {
		case ref4Deeper:
			kind = "deeper"
		case ref4None:
			kind = "none"
		}
		if kind != tt.wantEntry {
			t.Errorf("index entry for %s = %#x (%s), want %s", ip, entry, kind, tt.wantEntry)
		}
		if got := l.Locate(ip); got != tt.want {
			t.Errorf("Locate(%s) = %+v\nwant %+v", ip, got, tt.want)
		}
	}
}

// TestIndex4Threshold: a table gets an IPv4 index from index4MinPrefixes
// IPv4 prefixes on, not below, and both kinds answer alike.
func TestIndex4Threshold(t *testing.T) {
	cfgOf := func(prefixes ...string) config.Region {
		cfg := baseRegion()
		cfg.Regions = []config.RegionDef{{Name: "r", ISPs: []config.ISPDef{{Name: "i", Prefixes: prefixes}}}}
		return cfg
	}
	demo := cfgOf("10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32")
	l, err := New(demo, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.table.Load().idx4 != nil {
		t.Errorf("a table of 2 IPv4 prefixes has an index at the default threshold %d", index4MinPrefixes)
	}

	defer func(n int) { index4MinPrefixes = n }(index4MinPrefixes)
	index4MinPrefixes = 3
	tests := []struct {
		prefixes  []string
		wantIndex bool
	}{
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32", "2001:db9::/32"}, false}, // IPv6 does not count
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/30"}, true},
	}
	for _, tt := range tests {
		l, err := New(cfgOf(tt.prefixes...), Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.table.Load().idx4 != nil; got != tt.wantIndex {
			t.Errorf("table of %v: index %v, want %v", tt.prefixes, got, tt.wantIndex)
		}
		for _, s := range []string{"10.1.2.1", "10.1.2.9", "10.2.0.0", "11.0.0.0"} {
			ip := netip.MustParseAddr(s)
			got := l.Locate(ip)
			want, _ := ip.Prefix(24)
			if got.Subnet != want || got.Known != strings.HasPrefix(s, "10.") {
				t.Errorf("table of %v: Locate(%s) = %+v", tt.prefixes, ip, got)
			}
		}
		l.Close()
	}
}

// TestIndex4Reload: a reload swaps the index with the table, from a table
// with an index to one without and back, and the answers follow.
func TestIndex4Reload(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	var big strings.Builder
	for i := 0; i < 400; i++ {
		big.WriteString(tsvLine(pfx4(60<<24|rng.Uint32N(1<<24), 16+rng.IntN(17)), 1+i%5))
	}
	writeFile(t, dir, "big.tsv", big.String())
	writeFile(t, dir, "small.tsv", "60.0.0.0\t60.255.255.255\t1\tZZ\tONE\n")
	cfg := func(src string) config.Region {
		c := baseRegion()
		c.Sources = []config.RegionSource{{Path: src}}
		c.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 1}, {ASN: 2}}}}
		return c
	}
	defer func(n int) { index4MinPrefixes = n }(index4MinPrefixes)
	index4MinPrefixes = 100
	l, err := New(cfg("big.tsv"), Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i, src := range []string{"small.tsv", "big.tsv", "small.tsv"} {
		if err := l.Reload(cfg(src)); err != nil {
			t.Fatal(err)
		}
		tbl := l.table.Load()
		if got, want := tbl.idx4 != nil, src == "big.tsv"; got != want {
			t.Fatalf("reload %d (%s): index %v, want %v", i, src, got, want)
		}
		if src == "big.tsv" {
			checkIndex4(t, l, rng)
			continue
		}
		ip := u32Addr(60<<24 | rng.Uint32N(1<<24))
		if got := l.Locate(ip); got.ASN != 1 || got.Prefix != netip.MustParsePrefix("60.0.0.0/8") {
			t.Errorf("after reload %d (%s): Locate(%s) = %+v, want AS1 in 60.0.0.0/8", i, src, ip, got)
		}
	}
}

func TestFillRefs(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 1000, 1 << 16} {
		s := make([]ref, n+2)
		fillRefs(s[1:n+1], 0x1234)
		for i, r := range s {
			want := ref(0x1234)
			if i == 0 || i == n+1 {
				want = 0
			}
			if r != want {
				t.Fatalf("fillRefs(%d): s[%d] = %#x, want %#x", n, i, r, want)
			}
		}
	}
}

// FuzzIndex4 builds an index from arbitrary IPv4 prefixes (5 bytes each:
// address and length) into one reused, dirty index and checks every
// touched block and the addresses around each prefix against bart.
func FuzzIndex4(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 10, 1, 1, 128, 25, 10, 1, 1, 0, 24})
	f.Add([]byte{0, 0, 0, 0, 0, 255, 255, 255, 255, 32, 0, 0, 0, 0, 32})
	f.Add([]byte{1, 2, 3, 4, 31, 1, 2, 3, 4, 23, 1, 2, 3, 4, 1, 1, 2, 3, 4, 30})
	x := new(index4)
	fillRefs(x[:], 0xdeadbeef) // fill must write every entry
	f.Fuzz(func(t *testing.T, data []byte) {
		tb := &table{idx4: x}
		tbl := &tb.prefixes
		var ps []netip.Prefix
		for i := 0; i+5 <= len(data) && len(ps) < 64; i += 5 {
			p := pfx4(binary.BigEndian.Uint32(data[i:]), int(data[i+4])%33)
			tbl.Insert(p, makeRef(uint32(len(ps)), p.Bits()))
			ps = append(ps, p)
		}
		x.fill(tbl)
		check := func(u uint32) {
			if got, want := x[u>>8], wantIndex4Entry(tbl, u>>8); got != want {
				t.Fatalf("entry of %s = %#x, want %#x (prefixes %v)", pfx4(u, 24), got, want, ps)
			}
			ip := u32Addr(u)
			got, gotOK := tb.lookup4(ip, u)
			want, wantOK := tbl.Lookup(ip)
			if got != want || gotOK != wantOK {
				t.Fatalf("lookup4(%s) = %#x, %v; bart %#x, %v (prefixes %v)", ip, got, gotOK, want, wantOK, ps)
			}
		}
		check(0)
		check(0xffffffff)
		for _, p := range ps {
			first := binary.BigEndian.Uint32(p.Addr().AsSlice())
			last := binary.BigEndian.Uint32(netipx.PrefixLastIP(p).AsSlice())
			for _, u := range []uint32{first - 1, first, last, last + 1, first - 1<<8, last + 1<<8} {
				check(u)
			}
		}
	})
}

// TestIndex4FullTable: the full-size synthetic table of the benchmarks has
// an index that matches bart (skipped in -short: building it takes a
// second).
func TestIndex4FullTable(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size table")
	}
	dir := t.TempDir()
	writeFullTSV(t, filepath.Join(dir, "full.tsv"), 2)
	l, err := New(fullConfig(), Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkIndex4(t, l, rand.New(rand.NewPCG(1, 1)))
}
