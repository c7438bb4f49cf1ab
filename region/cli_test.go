package region

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/GeoLite2-ASN-example.mmdb")

// exampleMMDB is the content of testdata/GeoLite2-ASN-example.mmdb.
var exampleMMDB = []mmdbNet{
	{"109.0.0.0/11", 15557, "Societe Francaise du Radiotelephone - SFR SA"},
	{"37.160.0.0/12", 15557, "Societe Francaise du Radiotelephone - SFR SA"},
	{"2a02:8400::/25", 15557, "Societe Francaise du Radiotelephone - SFR SA"},
	{"1.0.0.0/24", 13335, "Cloudflare, Inc."},
}

// TestExampleMMDB keeps the committed example database equal to what
// mmdbwriter builds from exampleMMDB (go test -run ExampleMMDB -update).
func TestExampleMMDB(t *testing.T) {
	path := filepath.Join("testdata", "GeoLite2-ASN-example.mmdb")
	fresh := filepath.Join(t.TempDir(), "x.mmdb")
	buildMMDB(t, fresh, 6, exampleMMDB)
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run ExampleMMDB -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test -run ExampleMMDB -update", path)
	}
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = RunCLI(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIExample(t *testing.T) {
	tests := []struct {
		ip   string
		want Answer
	}{
		{"90.0.5.5", Answer{Known: true, Region: "paris", ISP: "Orange", ASN: 3215, Prefix: "90.0.0.0/16", Subnet: "90.0.5.0/24", Source: "config", Served: true}},
		{"90.10.0.1", Answer{Known: true, Region: "paris", ISP: "Orange", ASN: 3215, Prefix: "90.0.0.0/10", Subnet: "90.10.0.0/24", Source: "ip2asn-combined.tsv", Served: true}},
		{"86.200.1.1", Answer{Known: true, Region: "paris", ISP: "Orange", ASN: 3215, Prefix: "86.192.0.0/10", Subnet: "86.200.1.0/24", Source: "ip2asn-combined.tsv", Served: true}},
		{"90.70.0.1", Answer{Known: true, Region: "lyon", ISP: "FT-ORANGE-FR Orange", ASN: 3215, Prefix: "90.64.0.0/10", Subnet: "90.70.0.0/24", Source: "ip2asn-combined.tsv"}},
		{"80.8.0.1", Answer{ISP: "FT-ORANGE-FR Orange", ASN: 3215, Prefix: "80.8.0.0/13", Subnet: "80.8.0.0/24", Source: "ip2asn-combined.tsv"}},
		{"78.200.0.1", Answer{Known: true, Region: "paris", ISP: "PROXAD Free SAS", ASN: 12322, Prefix: "78.192.0.0/10", Subnet: "78.200.0.0/24", Source: "ip2asn-combined.tsv", Served: true}},
		{"109.1.0.1", Answer{Known: true, Region: "lyon", ISP: "SFR", ASN: 15557, Prefix: "109.0.0.0/11", Subnet: "109.1.0.0/24", Source: "GeoLite2-ASN-example.mmdb"}},
		{"37.161.0.1", Answer{Known: true, Region: "lyon", ISP: "SFR", ASN: 15557, Prefix: "37.160.0.0/12", Subnet: "37.161.0.0/24", Source: "GeoLite2-ASN-example.mmdb"}},
		{"1.0.0.1", Answer{ISP: "Cloudflare, Inc.", ASN: 13335, Prefix: "1.0.0.0/24", Subnet: "1.0.0.0/24", Source: "GeoLite2-ASN-example.mmdb"}},
		{"1.0.2.1", Answer{Subnet: "1.0.2.0/24"}},
		{"185.1.3.1", Answer{ISP: "EXAMPLE-ODD", ASN: 64501, Prefix: "185.1.3.0/26", Subnet: "185.1.3.0/24", Source: "ip2asn-combined.tsv"}},
		{"127.0.0.1", Answer{Known: true, Region: "paris", ISP: "Lab", Prefix: "127.0.0.0/8", Subnet: "127.0.0.1/32", Source: "config", Served: true}},
		{"2a01:c000::1", Answer{Known: true, Region: "paris", ISP: "Orange", ASN: 3215, Prefix: "2a01:c000::/20", Subnet: "2a01:c000::/56", Source: "config", Served: true}},
		{"2a01:d000:1::1", Answer{Known: true, Region: "lyon", ISP: "FT-ORANGE-FR Orange", ASN: 3215, Prefix: "2a01:d000::/20", Subnet: "2a01:d000:1::/56", Source: "ip2asn-combined.tsv"}},
		{"2a01:e00:abcd::1", Answer{Known: true, Region: "paris", ISP: "PROXAD Free SAS", ASN: 12322, Prefix: "2a01:e00::/26", Subnet: "2a01:e00:abcd::/56", Source: "ip2asn-combined.tsv", Served: true}},
		{"2a02:8400::1", Answer{Known: true, Region: "lyon", ISP: "SFR", ASN: 15557, Prefix: "2a02:8400::/25", Subnet: "2a02:8400::/56", Source: "GeoLite2-ASN-example.mmdb"}},
		{"2001:200::1", Answer{ISP: "WIDE-BB WIDE Project", ASN: 2500, Prefix: "2001:200::/38", Subnet: "2001:200::/56", Source: "ip2asn-combined.tsv"}},
		{"::ffff:90.0.5.5", Answer{Known: true, Region: "paris", ISP: "Orange", ASN: 3215, Prefix: "90.0.0.0/16", Subnet: "90.0.5.0/24", Source: "config", Served: true}},
	}
	args := []string{"--config", "testdata/edge.yaml"}
	for _, tt := range tests {
		args = append(args, tt.ip)
	}
	code, out, errOut := runCLI(args...)
	if code != ExitOK || errOut != "" {
		t.Fatalf("RunCLI = %d, stderr %q; want 0 and nothing", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tests), out)
	}
	for i, tt := range tests {
		var got Answer
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d %q: %v", i+1, lines[i], err)
		}
		want := tt.want
		want.IP = strings.TrimPrefix(tt.ip, "::ffff:")
		if got != want {
			t.Errorf("edge region %s =\n%+v\nwant\n%+v", tt.ip, got, want)
		}
	}
}

// TestExampleV4V6EqualsCombined checks that the -v4 and -v6 files together
// give the same table as the combined file.
func TestExampleV4V6EqualsCombined(t *testing.T) {
	data, err := os.ReadFile("testdata/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"ip2asn-v4.tsv", "ip2asn-v6.tsv", "GeoLite2-ASN-example.mmdb"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, f, string(b))
	}
	split := strings.Replace(string(data), "    - path: ip2asn-combined.tsv          # iptoasn.com format\n",
		"    - path: ip2asn-v4.tsv\n    - path: ip2asn-v6.tsv\n", 1)
	cfgPath := writeFile(t, dir, "edge.yaml", split)
	ips := []string{"--config", "", "90.10.0.1", "80.8.0.1", "2a01:d000:1::1", "2001:200::1", "109.1.0.1", "1.0.2.1"}
	ips[1] = "testdata/edge.yaml"
	_, want, _ := runCLI(ips...)
	ips[1] = cfgPath
	code, got, errOut := runCLI(ips...)
	got = strings.ReplaceAll(strings.ReplaceAll(got, "ip2asn-v4.tsv", "ip2asn-combined.tsv"), "ip2asn-v6.tsv", "ip2asn-combined.tsv")
	if code != 0 || got != want {
		t.Errorf("v4+v6 files (exit %d, %s):\n%s\nwant (combined):\n%s", code, errOut, got, want)
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.tsv", "1.0.0.0\t1.0.0.255\t13335\tUS\tX\n1.0.0.0\t1.0.0.255\tASX\tUS\tX\n")
	const site = "sites:\n  - name: v\n    origins: [{url: \"http://127.0.0.1:1\"}]\n"
	badSources := writeFile(t, dir, "sources.yaml", site+"region:\n  sources:\n    - path: missing.tsv\n    - path: bad.tsv\n")
	invalid := writeFile(t, dir, "invalid.yaml", site+"region:\n  name: nowhere\n  subnet_bits_v6: 7\n  regions:\n    - name: r\n      isps:\n        - name: i\n          prefixes: [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n")
	good := writeFile(t, dir, "good.yaml", site+"region:\n  regions:\n    - name: r\n      isps:\n        - {name: i, prefixes: [\"10.0.0.0/8\"]}\n")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string
		wantErr    []string
		notWantErr string
	}{
		{"no args", nil, ExitBadConfig, nil, []string{"usage: edge region --config FILE IP..."}, ""},
		{"no IPs", []string{"--config", good}, ExitBadConfig, nil, []string{"usage:"}, ""},
		{"unknown flag", []string{"--bogus", good}, ExitBadConfig, nil, []string{"flag provided but not defined"}, ""},
		{"help", []string{"-h"}, ExitOK, nil, []string{"usage:"}, ""},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.yaml"), "1.2.3.4"}, ExitBadConfig, nil, []string{"reading config"}, ""},
		{"every config problem", []string{"--config", invalid, "1.2.3.4"}, ExitBadConfig, nil, []string{
			"invalid.yaml:6: region.subnet_bits_v6: must be in 16..128",
			"invalid.yaml:11: region.regions[0].isps[0].prefixes[1]: prefix 10.0.0.0/8 is also listed at regions[0].isps[0].prefixes[0]",
			"invalid.yaml:5: region.name: region \"nowhere\" is not defined",
		}, ""},
		{"every source problem", []string{"--config", badSources, "1.2.3.4"}, ExitBadConfig, nil, []string{
			"region.sources[0]: reading tsv database: open " + filepath.Join(dir, "missing.tsv"),
			"region.sources[1]: bad.tsv:2: AS_number \"ASX\" is not a number",
		}, ""},
		{"bad IP among good ones", []string{"--config", good, "10.1.2.3", "10.1.2.x", "2001:db8::1"}, ExitBadIP,
			[]string{`"ip":"10.1.2.3","known":true,"region":"r"`, `"ip":"2001:db8::1","known":false`},
			[]string{`edge region: "10.1.2.x" is not an IP address`}, "10.1.2.3"},
		{"zone is dropped", []string{"--config", good, "fe80::1%eth0"}, ExitOK, []string{`"ip":"fe80::1"`}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit = %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q does not contain %q", out, w)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr:\n%s\ndoes not contain %q", errOut, w)
				}
			}
			if tt.notWantErr != "" && strings.Contains(errOut, tt.notWantErr) {
				t.Errorf("stderr %q mentions %q", errOut, tt.notWantErr)
			}
		})
	}
}
