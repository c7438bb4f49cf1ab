package region

import (
	"strings"
	"testing"

	"github.com/peerassist/edgebox/config"
)

const siteYAML = "sites:\n  - name: v\n    origins: [{url: \"http://127.0.0.1:1\"}]\n"

// TestRegionSectionValidation checks every rule of config/region.go
// through the real loader: path, line and message.
func TestRegionSectionValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string   // the region section, indented under "region:"
		want []string // substrings of the error; nil means valid
	}{
		{"defaults", "  name: \"\"\n", nil},
		{"full", `  name: paris
  trusted_proxies: ["10.0.0.0/8", "127.0.0.1", "::1"]
  client_ip_header: forwarded
  watch_interval: 5s
  sources:
    - path: a.tsv
    - {path: b.mmdb}
    - {path: c.dat, format: MMDB}
  regions:
    - name: paris
      isps:
        - {name: Orange, asn: 3215, prefixes: ["90.0.0.0/16"], subnet_bits_v4: 28, subnet_bits_v6: 64}
        - {asn: 12322}
      asns:
        - {asn: 3215, within: ["90.0.0.0/10"]}
        - {asn: 3215, within: ["90.0.0.0/12"]}
        - {asn: 3215}
    - name: lyon
      asns:
        - {asn: 3215, within: ["90.64.0.0/10"]}
`, nil},
		{"bad subnet bits", "  subnet_bits_v4: 33\n  subnet_bits_v6: 8\n",
			[]string{"cfg.yaml:5: region.subnet_bits_v4: must be in 8..32 (got 33)", "cfg.yaml:6: region.subnet_bits_v6: must be in 16..128 (got 8)"}},
		{"bad header", "  client_ip_header: X-Real-IP\n", []string{`cfg.yaml:5: region.client_ip_header: "X-Real-IP": must be "X-Forwarded-For" or "Forwarded"`}},
		{"negative watch", "  watch_interval: -1s\n", []string{"region.watch_interval: must not be negative"}},
		{"tiny watch", "  watch_interval: 1ms\n", []string{"region.watch_interval: must be 0 (off) or at least 100ms"}},
		{"bad proxies", "  trusted_proxies: [\"10.0.0.1/8\", \"nope\", \"fe80::1%eth0\", \"::ffff:10.0.0.0/104\"]\n", []string{
			`region.trusted_proxies[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`,
			`region.trusted_proxies[1]: "nope" is not a CIDR or address`,
			`region.trusted_proxies[2]: "fe80::1%eth0": zones are not allowed`,
			`region.trusted_proxies[3]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 prefix; write it as IPv4`,
		}},
		{"bad sources", "  sources:\n    - path: \"\"\n    - path: x.csv\n      format: csv\n", []string{
			"cfg.yaml:6: region.sources[0].path: required",
			`cfg.yaml:8: region.sources[1].format: "csv": must be "tsv" or "mmdb"`,
		}},
		{"regions", `  name: nowhere
  regions:
    - name: ""
    - name: a
      isps:
        - {prefixes: ["10.0.0.0/8"]}
        - {name: x, prefixes: ["10.0.0.0/33", "10.0.0.0/8", "11.0.0.0/8"], subnet_bits_v4: 4}
    - name: a
      isps:
        - {name: y, prefixes: ["11.0.0.0/8"]}
      asns:
        - {asn: 0}
        - {asn: 5, within: ["1.2.3.4/8"], subnet_bits_v6: 200}
        - {asn: 6}
        - {asn: 6}
        - {asn: 7, within: ["7.0.0.0/8"]}
        - {asn: 7, within: ["7.0.0.0/8"]}
`, []string{
			`cfg.yaml:5: region.name: region "nowhere" is not defined in regions`,
			"cfg.yaml:7: region.regions[0].name: required",
			"cfg.yaml:10: region.regions[1].isps[0]: an ISP needs a name or an asn",
			`cfg.yaml:11: region.regions[1].isps[1].prefixes[0]: "10.0.0.0/33" is not a CIDR prefix`,
			"region.regions[1].isps[1].prefixes[1]: prefix 10.0.0.0/8 is also listed at regions[1].isps[0].prefixes[0]",
			"region.regions[1].isps[1].subnet_bits_v4: must be 0 (inherit) or in 8..32 (got 4)",
			`cfg.yaml:12: region.regions[2].name: duplicate region "a" (also regions[1])`,
			"region.regions[2].isps[0].prefixes[0]: prefix 11.0.0.0/8 is also listed at regions[1].isps[1].prefixes[2]",
			"region.regions[2].asns[0].asn: required (AS 0 means not routed",
			`region.regions[2].asns[1].within[0]: "1.2.3.4/8" has host bits set; did you mean 1.0.0.0/8?`,
			"region.regions[2].asns[1].subnet_bits_v6: must be 0 (inherit) or in 16..128 (got 200)",
			"region.regions[2].asns[3].asn: AS6 is already assigned without within at regions[2].asns[2]",
			"region.regions[2].asns[5].within[0]: AS7 within 7.0.0.0/8 is already assigned at regions[2].asns[4].within[0]",
		}},
		{"unknown key", "  sorces: []\n", []string{"cfg.yaml:5", "sorces"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("cfg.yaml", []byte(siteYAML+"region:\n"+tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse = %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant containing %q", err, w)
				}
			}
		})
	}
}

func TestRegionSourceResolve(t *testing.T) {
	tests := []struct {
		src        config.RegionSource
		dir        string
		wantPath   string
		wantFormat string
	}{
		{config.RegionSource{Path: "a.tsv"}, "/etc/edge", "/etc/edge/a.tsv", "tsv"},
		{config.RegionSource{Path: "db/GeoLite2-ASN.MMDB"}, "/etc/edge", "/etc/edge/db/GeoLite2-ASN.MMDB", "mmdb"},
		{config.RegionSource{Path: "/var/lib/ip2asn.tsv.gz"}, "/etc/edge", "/var/lib/ip2asn.tsv.gz", "tsv"},
		{config.RegionSource{Path: "asn.bin", Format: "MMDB"}, "", "asn.bin", "mmdb"},
	}
	for _, tt := range tests {
		if got := tt.src.ResolvedPath(tt.dir); got != tt.wantPath {
			t.Errorf("ResolvedPath(%+v, %q) = %q, want %q", tt.src, tt.dir, got, tt.wantPath)
		}
		if got := tt.src.ResolvedFormat(); got != tt.wantFormat {
			t.Errorf("ResolvedFormat(%+v) = %q, want %q", tt.src, got, tt.wantFormat)
		}
	}
}

func TestTooManySources(t *testing.T) {
	yaml := siteYAML + "region:\n  sources:\n" + strings.Repeat("    - path: a.tsv\n", config.MaxRegionSources+1)
	_, err := config.Parse("cfg.yaml", []byte(yaml))
	if err == nil || !strings.Contains(err.Error(), "cfg.yaml:5: region.sources: at most 64 sources are supported (got 65)") {
		t.Errorf("Parse(65 sources) = %v, want the limit error", err)
	}
}
