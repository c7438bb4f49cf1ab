package region

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"go4.org/netipx"

	"github.com/peerassist/edgebox/config"
)

// FuzzParseTSV feeds arbitrary files to the iptoasn parser: it must never
// panic, and every range it accepts must be ordered, of one family, and
// split into prefixes that tile it exactly.
func FuzzParseTSV(f *testing.F) {
	for _, name := range []string{"ip2asn-v4.tsv", "ip2asn-v6.tsv"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"))
	f.Add([]byte("16777216\t16777471\tAS13335\tUS\tX\r\n# c\n\n"))
	f.Add([]byte("::ffff:1.0.0.0\t::ffff:1.0.0.9\t1\n2001:db8::\t2001:db8::ff\t2\tZZ\n"))
	f.Add([]byte("1.0.0.9\t1.0.0.1\t1\tUS\tX\n1.0.0.0\t::1\t1\n"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ps []netip.Prefix
		_ = readTSV(bytes.NewReader(data), "fuzz.tsv", func(r dbRange, _ []byte) {
			if r.From.Is4() != r.To.Is4() || r.To.Less(r.From) || r.ASN == 0 {
				t.Fatalf("accepted bad range %+v", r)
			}
			ps = rangePrefixes(ps[:0], r.From, r.To)
			if len(ps) == 0 || ps[0].Addr() != r.From || netipx.PrefixLastIP(ps[len(ps)-1]) != r.To {
				t.Fatalf("range %s-%s split into %v", r.From, r.To, ps)
			}
		})
	})
}

// FuzzRegionConfig feeds arbitrary region sections through the real config
// loader: it must never panic, and a section that validates and names no
// source file must always build a Locator that answers.
func FuzzRegionConfig(f *testing.F) {
	f.Add([]byte("  name: paris\n  regions:\n    - name: paris\n      isps:\n        - {name: o, asn: 3215, prefixes: [\"90.0.0.0/16\", \"2a01:c000::/20\"]}\n"))
	f.Add([]byte("  trusted_proxies: [\"10.0.0.0/8\", \"::1\"]\n  client_ip_header: Forwarded\n  subnet_bits_v4: 32\n  subnet_bits_v6: 128\n"))
	f.Add([]byte("  regions:\n    - name: a\n      asns:\n        - {asn: 7, within: [\"7.0.0.0/8\"]}\n        - {asn: 7}\n"))
	f.Add([]byte("  regions:\n    - name: a\n      isps:\n        - {name: x, prefixes: [\"0.0.0.0/0\", \"::/0\", \"1.2.3.4/32\"], subnet_bits_v4: 8}\n"))
	f.Add([]byte("  sources: [{path: x.tsv}]\n"))
	f.Add([]byte("  regions: [{name: a, isps: [{name: b, prefixes: [\"1.2.3.4/24\"]}]}]\n"))
	probes := []netip.Addr{
		netip.MustParseAddr("90.0.1.2"), netip.MustParseAddr("2a01:c000::1"), netip.MustParseAddr("7.7.7.7"),
		netip.MustParseAddr("::ffff:1.2.3.4"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("ffff::1"),
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		cfg, err := config.Parse("fuzz.yaml", append([]byte(siteYAML+"region:\n"), section...))
		if err != nil {
			return
		}
		if err := cfg.Region.Validate(); err != nil {
			t.Fatalf("Parse accepted a section that Validate rejects: %v", err)
		}
		l, err := New(cfg.Region, Options{BaseDir: t.TempDir(), Logger: quietLogger()})
		if len(cfg.Region.Sources) == 0 && err != nil {
			t.Fatalf("valid section without sources failed to build: %v", err)
		}
		if err != nil {
			return
		}
		defer l.Close()
		for _, ip := range probes {
			loc := l.Locate(ip)
			if loc.Known && (loc.Region == "" || !loc.Prefix.Contains(ip.Unmap()) || !loc.Subnet.Contains(ip.Unmap())) {
				t.Fatalf("Locate(%s) = %+v: inconsistent", ip, loc)
			}
		}
	})
}

// FuzzClientAddr feeds arbitrary X-Forwarded-For and Forwarded values from
// a trusted proxy: never a panic, always a valid, unmapped address
// without zone.
func FuzzClientAddr(f *testing.F) {
	f.Add([]byte("203.0.113.9, 10.2.2.2"), []byte(`for="[2001:db8:cafe::17]:4711";proto=https, for=10.2.2.2`))
	f.Add([]byte("[::1]:80,,unknown"), []byte(`for=_hidden;by=x, For="\"q\\"`))
	f.Add([]byte(" , ,"), []byte(`for=192.0.2.43,,for="10.0.0.1:_p"`))
	f.Add([]byte("::ffff:10.1.1.1"), []byte("for= 192.0.2.1 ; proto = http"))
	remote := netip.MustParseAddr("10.1.1.1")
	mk := func(header string) *Locator {
		cfg := config.DefaultRegion()
		cfg.TrustedProxies = []string{"10.0.0.0/8", "2001:db8::/32"}
		cfg.ClientIPHeader = header
		l, err := New(cfg, Options{Logger: quietLogger()})
		if err != nil {
			f.Fatal(err)
		}
		return l
	}
	xff, fwd := mk("X-Forwarded-For"), mk("Forwarded")
	f.Cleanup(func() { xff.Close(); fwd.Close() })
	f.Fuzz(func(t *testing.T, xffValue, fwdValue []byte) {
		values := func(name string) [][]byte {
			if name == "Forwarded" {
				return [][]byte{fwdValue, fwdValue}
			}
			return [][]byte{xffValue, xffValue}
		}
		for _, l := range []*Locator{xff, fwd} {
			got := l.ClientAddr(remote, values)
			if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
				t.Fatalf("ClientAddr = %v, want a valid unmapped address without zone", got)
			}
		}
	})
}

// FuzzMMDB feeds arbitrary bytes to the MaxMind DB reader path: an error or
// networks, never a panic.
func FuzzMMDB(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "GeoLite2-ASN-example.mmdb")); err == nil {
		f.Add(b)
		f.Add(b[len(b)/3:])
	}
	f.Add([]byte("\xab\xcd\xefMaxMind.com"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readMMDB(data, "fuzz.mmdb", func(p netip.Prefix, asn uint32, _ string) {
			if !p.IsValid() || p != p.Masked() || asn == 0 {
				t.Fatalf("readMMDB yielded %v AS%d", p, asn)
			}
		})
	})
}
