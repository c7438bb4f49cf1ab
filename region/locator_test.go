package region

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go4.org/netipx"

	"github.com/peerassist/edgebox/config"
)

// precedenceTSV is layer 0 of the precedence test.
const precedenceTSV = `# layer 0: iptoasn format
10.0.0.0	10.255.255.255	100	ZZ	AS-A-WIDE
10.1.0.0	10.1.255.255	200	ZZ	AS-B
10.200.5.0	10.200.5.255	800	ZZ	AS-F
20.0.0.0	20.0.0.255	400	ZZ	AS-D
30.0.0.0	30.0.255.255	500	ZZ	AS-E
50.0.0.0	50.0.0.255	300	ZZ	AS-C-first
50.0.0.0	50.0.0.255	301	ZZ	AS-C-second
60.0.0.0	60.0.0.255	100	ZZ	AS-A-WIDE
2001:db8::	2001:db8:ffff:ffff:ffff:ffff:ffff:ffff	100	ZZ	AS-A-WIDE
`

// precedenceLocator builds the table that TestPrecedence documents:
// a TSV (layer 0), an mmdb (layer 1) and config prefixes (top layer).
func precedenceLocator(t *testing.T) *Locator {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "a.tsv", precedenceTSV)
	buildMMDB(t, filepath.Join(dir, "b.mmdb"), 6, []mmdbNet{
		{"10.0.0.0/12", 600, "MMDB-WIDE"},
		{"30.0.0.0/8", 700, "MMDB-30"},
	})
	cfg := baseRegion()
	cfg.Name = "paris"
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}, {Path: "b.mmdb"}}
	cfg.Regions = []config.RegionDef{
		{Name: "paris",
			ISPs: []config.ISPDef{{Name: "Own", ASN: 900, Prefixes: []string{"10.3.0.0/16"}, SubnetBitsV4: 28}},
			ASNs: []config.ASNDef{{ASN: 600}}},
		{Name: "lyon",
			ISPs: []config.ISPDef{{Name: "Biz", ASN: 901, Prefixes: []string{"10.3.5.0/24"}}},
			ASNs: []config.ASNDef{{ASN: 100}, {ASN: 301}}},
		{Name: "marseille", ASNs: []config.ASNDef{{ASN: 100, Name: "Wide Sud", Within: []string{"10.128.0.0/9"}}}},
		{Name: "nice", ASNs: []config.ASNDef{{ASN: 100, Within: []string{"10.192.0.0/10", "10.200.5.128/25", "60.0.0.0/8"}}}},
	}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestPrecedence(t *testing.T) {
	l := precedenceLocator(t)
	p := netip.MustParsePrefix
	tests := []struct {
		ip   string
		want Locality
		why  string
	}{
		{"10.16.0.1", Locality{Known: true, Region: "lyon", ISP: "AS-A-WIDE", ASN: 100, Prefix: p("10.0.0.0/8"), Subnet: p("10.16.0.0/24"), Source: "a.tsv"},
			"TSV range outside the mmdb's; AS100's default region"},
		{"10.1.2.3", Locality{Known: true, Region: "paris", ISP: "MMDB-WIDE", ASN: 600, Prefix: p("10.0.0.0/12"), Subnet: p("10.1.2.0/24"), Source: "b.mmdb"},
			"the later database wins even over a more specific range of an earlier one"},
		{"30.0.1.1", Locality{ISP: "MMDB-30", ASN: 700, Prefix: p("30.0.0.0/8"), Subnet: p("30.0.1.0/24"), Source: "b.mmdb"},
			"later database; AS700 assigned nowhere: not known, AS still reported"},
		{"20.0.0.1", Locality{ISP: "AS-D", ASN: 400, Prefix: p("20.0.0.0/24"), Subnet: p("20.0.0.0/24"), Source: "a.tsv"},
			"earlier database fills the later one's gaps"},
		{"10.3.1.17", Locality{Known: true, Region: "paris", ISP: "Own", ASN: 900, Prefix: p("10.3.0.0/16"), Subnet: p("10.3.1.16/28"), Source: "config"},
			"config prefix overrides the databases; per-ISP subnet bits"},
		{"10.3.5.1", Locality{Known: true, Region: "lyon", ISP: "Biz", ASN: 901, Prefix: p("10.3.5.0/24"), Subnet: p("10.3.5.0/24"), Source: "config"},
			"the more specific config prefix wins"},
		{"50.0.0.1", Locality{Known: true, Region: "lyon", ISP: "AS-C-second", ASN: 301, Prefix: p("50.0.0.0/24"), Subnet: p("50.0.0.0/24"), Source: "a.tsv"},
			"equal prefix in one file: the later line wins"},
		{"10.130.0.1", Locality{Known: true, Region: "marseille", ISP: "Wide Sud", ASN: 100, Prefix: p("10.128.0.0/9"), Subnet: p("10.130.0.0/24"), Source: "a.tsv"},
			"within prefix smaller than the range carves its part out; assignment name"},
		{"10.192.0.1", Locality{Known: true, Region: "nice", ISP: "AS-A-WIDE", ASN: 100, Prefix: p("10.192.0.0/10"), Subnet: p("10.192.0.0/24"), Source: "a.tsv"},
			"the most specific within wins"},
		{"10.200.5.200", Locality{ISP: "AS-F", ASN: 800, Prefix: p("10.200.5.0/24"), Subnet: p("10.200.5.0/24"), Source: "a.tsv"},
			"a within of AS100 does not claim a more specific range of AS800"},
		{"60.0.0.1", Locality{Known: true, Region: "nice", ISP: "AS-A-WIDE", ASN: 100, Prefix: p("60.0.0.0/24"), Subnet: p("60.0.0.0/24"), Source: "a.tsv"},
			"a range inside a within prefix"},
		{"2001:db8:1:2::1", Locality{Known: true, Region: "lyon", ISP: "AS-A-WIDE", ASN: 100, Prefix: p("2001:db8::/32"), Subnet: p("2001:db8:1::/56"), Source: "a.tsv"},
			"IPv6 with the /56 default subnet"},
		{"::ffff:10.3.1.17", Locality{Known: true, Region: "paris", ISP: "Own", ASN: 900, Prefix: p("10.3.0.0/16"), Subnet: p("10.3.1.16/28"), Source: "config"},
			"IPv4-mapped IPv6 is looked up as IPv4"},
		{"40.0.0.1", Locality{Subnet: p("40.0.0.0/24")}, "in no source"},
		{"2001:db9::1", Locality{Subnet: p("2001:db9::/56")}, "IPv6 in no source"},
	}
	for _, tt := range tests {
		if got := l.Locate(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Locate(%s) = %+v\nwant %+v (%s)", tt.ip, got, tt.want, tt.why)
		}
	}
	if got := l.Locate(netip.Addr{}); got != (Locality{}) {
		t.Errorf("Locate(invalid) = %+v, want zero Locality", got)
	}
	zoned := netip.MustParseAddr("2001:db8:1:2::1%eth0")
	if got := l.Locate(zoned); got.Region != "lyon" || got.Prefix.Addr().Zone() != "" || got.Subnet.Addr().Zone() != "" {
		t.Errorf("Locate(%s) = %+v, want lyon without zones", zoned, got)
	}
}

func TestCompareThroughLocate(t *testing.T) {
	l := precedenceLocator(t)
	loc := func(s string) Locality { return l.Locate(netip.MustParseAddr(s)) }
	tests := []struct {
		a, b string
		want Tier
	}{
		{"10.3.1.17", "10.3.1.30", SameSubnet},
		{"10.3.1.17", "10.3.1.33", SameISP},
		{"10.3.1.17", "10.3.200.1", SameISP},
		{"10.3.1.17", "10.1.2.3", SameRegionOtherISP},
		{"10.3.1.17", "10.3.5.1", Never},
		{"20.0.0.1", "20.0.0.2", Never}, // both unknown, even in one subnet
		{"40.0.0.1", "10.3.1.17", Never},
		{"10.16.0.1", "2001:db8::1", SameISP},
	}
	for _, tt := range tests {
		if got := Compare(loc(tt.a), loc(tt.b)); got != tt.want {
			t.Errorf("Compare(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestServes(t *testing.T) {
	l := precedenceLocator(t) // serves paris
	tests := []struct {
		ip   string
		want bool
	}{{"10.3.1.17", true}, {"10.3.5.1", false}, {"40.0.0.1", false}}
	for _, tt := range tests {
		if got := l.Serves(l.Locate(netip.MustParseAddr(tt.ip))); got != tt.want {
			t.Errorf("Serves(Locate(%s)) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

func TestLocateDoesNotAllocate(t *testing.T) {
	l := precedenceLocator(t)
	ips := []netip.Addr{
		netip.MustParseAddr("10.3.1.17"), netip.MustParseAddr("40.0.0.1"),
		netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("::ffff:10.1.2.3"),
		netip.MustParseAddr("2001:db8::1%eth0"),
	}
	for _, ip := range ips {
		if n := testing.AllocsPerRun(100, func() { l.Locate(ip) }); n != 0 {
			t.Errorf("Locate(%s) allocates %v times, want 0", ip, n)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tX\n")
	writeFile(t, dir, "bad.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tX\n1.0.0.0\tnope\t1\tUS\tX\n")
	writeFile(t, dir, "empty.tsv", "")
	writeFile(t, dir, "junk.mmdb", "this is not a MaxMind DB")
	buildMMDB(t, filepath.Join(dir, "nonasn.mmdb"), 6, nil)
	tests := []struct {
		name    string
		mod     func(*config.Region)
		wantErr []string
	}{
		{"missing file", func(c *config.Region) { c.Sources = []config.RegionSource{{Path: "nope.tsv"}} },
			[]string{"region.sources[0]: reading tsv database: open " + filepath.Join(dir, "nope.tsv")}},
		{"malformed line", func(c *config.Region) { c.Sources = []config.RegionSource{{Path: "bad.tsv"}} },
			[]string{"region.sources[0]: bad.tsv:2: range_end: \"nope\" is not an IP address"}},
		{"every bad file", func(c *config.Region) {
			c.Sources = []config.RegionSource{{Path: "bad.tsv"}, {Path: "good.tsv"}, {Path: "empty.tsv"}, {Path: "junk.mmdb"}, {Path: "nonasn.mmdb"}}
		}, []string{"sources[0]: bad.tsv:2", "sources[2]: empty.tsv: no routed ranges", "sources[3]: junk.mmdb: not a MaxMind DB", "sources[4]: nonasn.mmdb: no routed ranges"}},
		{"tsv given as mmdb", func(c *config.Region) { c.Sources = []config.RegionSource{{Path: "good.tsv", Format: "mmdb"}} },
			[]string{"good.tsv: not a MaxMind DB"}},
		{"invalid section", func(c *config.Region) {
			c.SubnetBitsV4 = 40
			c.Regions = []config.RegionDef{{Name: "x", ISPs: []config.ISPDef{{Name: "i", Prefixes: []string{"1.2.3.4/24"}}}}}
		}, []string{"region.subnet_bits_v4: must be in 8..32", "region.regions[0].isps[0].prefixes[0]: \"1.2.3.4/24\" has host bits set; did you mean 1.2.3.0/24?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseRegion()
			tt.mod(&cfg)
			l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
			if err == nil {
				l.Close()
				t.Fatal("New succeeded, want error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant containing %q", err, w)
				}
			}
		})
	}
}

// TestLocateAgreesWithTable checks Locate's prefix and subnet against the
// prefix table's own longest-prefix match and netip on random v4 and v6
// addresses over a random table with prefixes of every length.
func TestLocateAgreesWithTable(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var tsv strings.Builder
	for i := 0; i < 3000; i++ {
		var from, to netip.Addr
		if i%3 == 0 {
			var a [16]byte
			a[0], a[1], a[2] = 0x20, 0x01, byte(rng.IntN(4))
			for j := 3; j < 16; j++ {
				a[j] = byte(rng.Uint32())
			}
			p, _ := netip.AddrFrom16(a).Prefix(24 + rng.IntN(105))
			from, to = p.Addr(), netipx.PrefixLastIP(p)
		} else {
			p, _ := u32Addr(rng.Uint32N(4 << 24)).Prefix(8 + rng.IntN(25))
			from, to = p.Addr(), netipx.PrefixLastIP(p)
		}
		fmt.Fprintf(&tsv, "%s\t%s\t%d\tZZ\tAS%d\n", from, to, 1+i%50, 1+i%50)
	}
	writeFile(t, dir, "rand.tsv", tsv.String())
	cfg := baseRegion()
	cfg.SubnetBitsV4, cfg.SubnetBitsV6 = 27, 60
	cfg.Sources = []config.RegionSource{{Path: "rand.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 1}, {ASN: 2, SubnetBitsV4: 32, SubnetBitsV6: 128}}}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tbl := l.table.Load()
	var hits [2][2]int // [v6][found]
	for i := 0; i < 20000; i++ {
		var ip netip.Addr
		if i%2 == 0 {
			ip = u32Addr(rng.Uint32N(8 << 24))
		} else {
			var a [16]byte
			a[0], a[1], a[2] = 0x20, 0x01, byte(rng.IntN(8))
			for j := 3; j < 16; j++ {
				a[j] = byte(rng.Uint32())
			}
			ip = netip.AddrFrom16(a)
		}
		got := l.Locate(ip)
		lpm, r, ok := tbl.prefixes.LookupPrefixLPM(netip.PrefixFrom(ip, ip.BitLen()))
		hits[i%2][b2i(ok)]++
		wantSub := cfg.SubnetBitsV4
		if ip.Is6() {
			wantSub = cfg.SubnetBitsV6
		}
		if ok {
			a := tbl.answers[r.answer()]
			if got.Prefix != lpm || got.ASN != a.asn || got.ISP != a.isp || got.Known != (a.region != 0) {
				t.Fatalf("Locate(%s) = %+v, want prefix %s, AS%d %q, known %v", ip, got, lpm, a.asn, a.isp, a.region != 0)
			}
			wantSub = int(a.subnetBits4)
			if ip.Is6() {
				wantSub = int(a.subnetBits6)
			}
		} else if got.Prefix.IsValid() || got.ASN != 0 || got.Known {
			t.Fatalf("Locate(%s) = %+v, want no prefix and no AS", ip, got)
		}
		if sub, _ := ip.Prefix(wantSub); got.Subnet != sub {
			t.Fatalf("Locate(%s).Subnet = %s, want %s", ip, got.Subnet, sub)
		}
	}
	for v, h := range hits {
		if h[0] < 1000 || h[1] < 1000 {
			t.Errorf("IPv%d probes: %d found, %d not: want both sides covered", 4+2*v, h[1], h[0])
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPrefix4(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 1000; i++ {
		u := rng.Uint32()
		if i < 2 {
			u = uint32(i) * math.MaxUint32 // 0 and all ones
		}
		for bits := 0; bits <= 32; bits++ {
			want, _ := u32Addr(u).Prefix(bits)
			if got := prefix4(u, bits); got != want {
				t.Fatalf("prefix4(%s, %d) = %s, want %s", u32Addr(u), bits, got, want)
			}
		}
	}
}

// TestAnswersShared: the prefixes of one AS in one file share one answer,
// and each still reports its own prefix.
func TestAnswersShared(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.tsv", "1.0.0.0\t1.0.2.255\t7\tZZ\tSEVEN\n1.0.4.0\t1.0.4.127\t7\tZZ\tSEVEN\n2001:db8::\t2001:db8::ffff\t7\tZZ\tSEVEN\n9.0.0.0\t9.0.0.255\t8\tZZ\tEIGHT\n")
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 7}}}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// AS7 unassigned (replaced at assignment), AS7 in r, AS8.
	if got, want := len(l.table.Load().answers), 3; got != want {
		t.Errorf("%d answers, want %d", got, want)
	}
	p := netip.MustParsePrefix
	tests := []struct {
		ip         string
		prefix     string
		asn        uint32
		wantRegion string
	}{
		{"1.0.0.1", "1.0.0.0/23", 7, "r"},
		{"1.0.2.1", "1.0.2.0/24", 7, "r"},
		{"1.0.4.1", "1.0.4.0/25", 7, "r"},
		{"2001:db8::1", "2001:db8::/112", 7, "r"},
		{"9.0.0.1", "9.0.0.0/24", 8, ""},
	}
	for _, tt := range tests {
		got := l.Locate(netip.MustParseAddr(tt.ip))
		if got.Prefix != p(tt.prefix) || got.ASN != tt.asn || got.Region != tt.wantRegion {
			t.Errorf("Locate(%s) = %+v, want prefix %s, AS%d, region %q", tt.ip, got, tt.prefix, tt.asn, tt.wantRegion)
		}
	}
}

// TestTooManyAnswers: a source with more distinct answers than a table can
// index is refused with an error naming it (the limit is lowered here).
func TestTooManyAnswers(t *testing.T) {
	defer func(n int) { answerLimit = n }(answerLimit)
	answerLimit = 3
	dir := t.TempDir()
	var tsv strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&tsv, "%d.0.0.0\t%d.0.0.255\t%d\tZZ\tAS%d\n", i, i, i, i)
	}
	writeFile(t, dir, "many.tsv", tsv.String())
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "many.tsv"}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err == nil {
		l.Close()
		t.Fatal("New succeeded, want ErrTooManyAnswers")
	}
	if !errors.Is(err, ErrTooManyAnswers) || !strings.Contains(err.Error(), "region.sources[0]: many.tsv: ") {
		t.Errorf("New error = %v, want ErrTooManyAnswers naming region.sources[0]: many.tsv", err)
	}
}

func TestReloadKeepsOldTableOnFailure(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n")
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 13335}}}}
	var logs bytes.Buffer
	l, err := New(cfg, Options{BaseDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ip := netip.MustParseAddr("1.0.0.1")
	if got := l.Locate(ip); got.Region != "r" {
		t.Fatalf("Locate(%s) = %+v, want region r", ip, got)
	}

	// Missing file: old table stays, error returned and logged.
	os.Remove(filepath.Join(dir, "a.tsv"))
	err = l.Reload(cfg)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload with missing file = %v, want not-exist error", err)
	}
	if got := l.Locate(ip); got.Region != "r" {
		t.Errorf("after failed reload Locate(%s) = %+v, want the old answer", ip, got)
	}
	if !strings.Contains(logs.String(), "reload failed, keeping the previous table") || !strings.Contains(logs.String(), "a.tsv") {
		t.Errorf("log = %q, want the failure and the file", logs.String())
	}

	// Malformed file: same.
	writeFile(t, dir, "a.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tX\nbroken line\n")
	if err := l.Reload(cfg); err == nil || !strings.Contains(err.Error(), "a.tsv:2:") {
		t.Fatalf("Reload with malformed file = %v, want a.tsv:2: error", err)
	}
	if got := l.Locate(ip); got.Region != "r" {
		t.Errorf("after failed reload Locate(%s) = %+v, want the old answer", ip, got)
	}

	// A good reload swaps.
	writeFile(t, dir, "a.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tX\n")
	cfg.Regions[0].Name = "s"
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := l.Locate(ip); got.Region != "s" {
		t.Errorf("after reload Locate(%s) = %+v, want region s", ip, got)
	}
	if ok, failed := l.reloads[0].Load(), l.reloads[1].Load(); ok != 2 || failed != 2 {
		t.Errorf("reload counters = %d ok, %d failed; want 2, 2", ok, failed)
	}
}

// TestReloadIsAtomic hammers Locate while tables are swapped: every answer
// must come whole from one table, never mix two.
func TestReloadIsAtomic(t *testing.T) {
	mk := func(region, isp, pfx string, bits int) config.Region {
		c := baseRegion()
		c.SubnetBitsV4 = bits
		c.Regions = []config.RegionDef{{Name: region, ISPs: []config.ISPDef{{Name: isp, Prefixes: []string{pfx}}}}}
		return c
	}
	a := mk("a", "isp-a", "10.0.0.0/8", 24)
	b := mk("b", "isp-b", "10.1.0.0/16", 20)
	l, err := New(a, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wantA := Locality{Known: true, Region: "a", ISP: "isp-a", Prefix: netip.MustParsePrefix("10.0.0.0/8"), Subnet: netip.MustParsePrefix("10.1.2.0/24"), Source: "config"}
	wantB := Locality{Known: true, Region: "b", ISP: "isp-b", Prefix: netip.MustParsePrefix("10.1.0.0/16"), Subnet: netip.MustParsePrefix("10.1.0.0/20"), Source: "config"}
	ip := netip.MustParseAddr("10.1.2.3")
	done := make(chan struct{})
	var wg sync.WaitGroup
	var bad sync.Once
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if got := l.Locate(ip); got != wantA && got != wantB {
					bad.Do(func() { t.Errorf("Locate during reload = %+v, want one whole table's answer", got) })
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		cfg := a
		if i%2 == 0 {
			cfg = b
		}
		if err := l.Reload(cfg); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
}

// TestConfigIsCopied checks that a caller reusing its config slices cannot
// change a published table.
func TestConfigIsCopied(t *testing.T) {
	cfg := baseRegion()
	cfg.Name = "r"
	cfg.Regions = []config.RegionDef{{Name: "r", ISPs: []config.ISPDef{{Name: "i", Prefixes: []string{"10.0.0.0/8"}}}}}
	l, err := New(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Regions[0].Name = "changed"
	cfg.Regions[0].ISPs[0].Prefixes[0] = "11.0.0.0/8"
	if got := l.table.Load().cfg.Regions[0]; got.Name != "r" || got.ISPs[0].Prefixes[0] != "10.0.0.0/8" {
		t.Errorf("table config = %+v, want the config as loaded", got)
	}
}

func TestTierString(t *testing.T) {
	tests := []struct {
		tier Tier
		want string
	}{{SameSubnet, "same-subnet"}, {SameISP, "same-isp"}, {SameRegionOtherISP, "same-region"}, {Never, "never"}, {Tier(42), "never"}}
	for _, tt := range tests {
		if got := tt.tier.String(); got != tt.want {
			t.Errorf("Tier(%d).String() = %q, want %q", int(tt.tier), got, tt.want)
		}
	}
}
