package region

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peerassist/edgebox/config"
)

func TestMMDBSource(t *testing.T) {
	nets := []mmdbNet{
		{"1.0.0.0/24", 13335, "CLOUDFLARENET"},
		{"90.0.0.0/12", 3215, "Orange"},
		{"90.8.0.0/13", 3215, "Orange Sud"}, // splits the /12: mmdb networks are disjoint
		{"2a01:c000::/19", 3215, "Orange"},
		{"2a01:e00::/26", 12322, "Free SAS"},
		{"5.5.5.0/24", 0, "not routed"},
	}
	p := netip.MustParsePrefix
	for _, ipVersion := range []int{4, 6} {
		t.Run("ipv"+string(rune('0'+ipVersion)), func(t *testing.T) {
			dir := t.TempDir()
			n := nets
			if ipVersion == 4 {
				n = []mmdbNet{nets[0], nets[1], nets[2], nets[5]}
			}
			buildMMDB(t, filepath.Join(dir, "asn.mmdb"), ipVersion, n)
			cfg := baseRegion()
			cfg.Sources = []config.RegionSource{{Path: "asn.mmdb"}}
			cfg.Regions = []config.RegionDef{
				{Name: "paris", ISPs: []config.ISPDef{{Name: "Orange FR", ASN: 3215}}, ASNs: []config.ASNDef{{ASN: 3215}, {ASN: 12322}}},
			}
			l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			v4, v6 := l.TableSize()
			wantV6 := 0
			if ipVersion == 6 {
				wantV6 = 2
			}
			if v4 != 3 || v6 != wantV6 {
				t.Errorf("TableSize() = %d, %d; want 3, %d (IPv4 aliases and AS 0 not counted)", v4, v6, wantV6)
			}
			tests := []struct {
				ip   string
				want Locality
			}{
				{"90.9.1.2", Locality{Known: true, Region: "paris", ISP: "Orange FR", ASN: 3215, Prefix: p("90.8.0.0/13"), Subnet: p("90.9.1.0/24"), Source: "asn.mmdb"}},
				{"1.0.0.1", Locality{ISP: "CLOUDFLARENET", ASN: 13335, Prefix: p("1.0.0.0/24"), Subnet: p("1.0.0.0/24"), Source: "asn.mmdb"}},
				{"5.5.5.5", Locality{Subnet: p("5.5.5.0/24")}},
			}
			if ipVersion == 6 {
				tests = append(tests,
					struct {
						ip   string
						want Locality
					}{"2a01:e00:1::1", Locality{Known: true, Region: "paris", ISP: "Free SAS", ASN: 12322, Prefix: p("2a01:e00::/26"), Subnet: p("2a01:e00:1::/56"), Source: "asn.mmdb"}})
			}
			for _, tt := range tests {
				if got := l.Locate(netip.MustParseAddr(tt.ip)); got != tt.want {
					t.Errorf("Locate(%s) = %+v\nwant %+v", tt.ip, got, tt.want)
				}
			}
		})
	}
}

func TestMMDBCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.mmdb")
	buildMMDB(t, good, 6, []mmdbNet{{"1.0.0.0/24", 13335, "X"}, {"2a01:c000::/19", 3215, "Orange"}})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": data[:len(data)/2],
		"no tree":   data[len(data)-200:],
		"flipped": func() []byte {
			d := append([]byte(nil), data...)
			for i := 0; i < 64 && i < len(d); i++ {
				d[i] ^= 0xff
			}
			return d
		}(),
	}
	for name, d := range cases {
		err := readMMDB(d, name+".mmdb", func(netip.Prefix, uint32, string) {})
		if err == nil || !strings.Contains(err.Error(), name+".mmdb") {
			t.Errorf("readMMDB(%s) = %v, want an error naming the file", name, err)
		}
	}
}
