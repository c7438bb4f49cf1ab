package sim

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTable(t *testing.T) {
	tests := []struct {
		in      string
		want    Table
		wantErr string
	}{
		{"att", ATTTable, ""},
		{"Verizon", VerizonTable, ""},
		{"768/128/25+3000/768/75", Table{{768e3, 128e3, 0.25}, {3000e3, 768e3, 0.75}}, ""},
		// Rounded tables are normalized: the paper's AT&T table adds up to 100.01.
		{"768/128/15.76+1500/384/34.78+3000/512/31.58+6000/768/17.89", Table{{768e3, 128e3, 0.1576 / 1.0001}, {1500e3, 384e3, 0.3478 / 1.0001}, {3000e3, 512e3, 0.3158 / 1.0001}, {6000e3, 768e3, 0.1789 / 1.0001}}, ""},
		{"1000/500/99.6", Table{{1e6, 5e5, 1}}, ""},
		// Percentages that do not describe all users are an error, not
		// silently scaled up (QA: A:1:1:768/128/50 was accepted).
		{"768/128/50", nil, "percentages add up to 50, want 100"},
		{"768/128/1+3000/768/3", nil, "percentages add up to 4, want 100"},
		{"768/128/60+3000/768/60", nil, "percentages add up to 120, want 100"},
		{"1000/500/99.4", nil, "add up to 99.4"},
		{" 1000 / 500 / 100 ", Table{{1e6, 5e5, 1}}, ""},
		{"", nil, "empty"},
		{"768/128", nil, "want down/up/percent"},
		{"768/x/5", nil, "not a non-negative number"},
		{"-1/1/1", nil, "not a non-negative number"},
		{"0/1/1", nil, "download must be positive"},
		{"1/1/0", nil, "add up to 0, want 100"},
		{"1e12/1/1", nil, "at most 1e8"},
		{"NaN/1/1", nil, "not a non-negative number"},
		{"1/Inf/1", nil, "not a non-negative number"},
	}
	for _, tt := range tests {
		got, err := ParseTable(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTable(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseTable(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if math.Abs(got[i].DownBps-tt.want[i].DownBps) > 1e-6 || math.Abs(got[i].UpBps-tt.want[i].UpBps) > 1e-6 || math.Abs(got[i].Share-tt.want[i].Share) > 1e-9 {
				t.Errorf("ParseTable(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
	if got, err := ParseTable(ATTTable.String()); err != nil || math.Abs(got.MeanUpBps()-ATTTable.MeanUpBps()) > 1 {
		t.Errorf("ParseTable(String()) round trip: %v, %v", got, err)
	}
	// The paper's tables: AT&T's mean upload is 452.8 kbit/s, Verizon's 564.2.
	if got := ATTTable.MeanUpBps(); math.Abs(got-452.8e3) > 100 {
		t.Errorf("AT&T mean upload = %g", got)
	}
	if got := VerizonTable.MeanUpBps(); math.Abs(got-564.2e3) > 100 {
		t.Errorf("Verizon mean upload = %g", got)
	}
}

func TestParseRegionsAndISPs(t *testing.T) {
	rs, err := ParseRegions("NY:0.22,TX:0.18")
	if err != nil || len(rs) != 2 || rs[1] != (Region{"TX", 0.18}) {
		t.Errorf("ParseRegions = %v, %v", rs, err)
	}
	rs, err = ParseRegions("3")
	if err != nil || len(rs) != 3 || rs[2].Name != "R3" {
		t.Errorf("ParseRegions(3) = %v, %v", rs, err)
	}
	for _, bad := range []string{"", "NY", "NY:0", "NY:-1", ":1", "NY:x", "0", "1001", "NY:Inf"} {
		if _, err := ParseRegions(bad); err == nil {
			t.Errorf("ParseRegions(%q) succeeded", bad)
		}
	}
	is, err := ParseISPs("AT&T:7018:2:att,Local:64500:1:1000/500/100")
	if err != nil || len(is) != 2 || is[0].ASN != 7018 || is[1].Table[0].UpBps != 5e5 {
		t.Errorf("ParseISPs = %+v, %v", is, err)
	}
	for _, bad := range []string{"", "a:1:1", "a:0:1:att", "a:x:1:att", "a:1:0:att", "a:1:1:nope", ":1:1:att", "a:99999999999:1:att", "A:1:1:768/128/50"} {
		if _, err := ParseISPs(bad); err == nil {
			t.Errorf("ParseISPs(%q) succeeded", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if c := DefaultVoD(); c.Validate() != nil {
		t.Errorf("DefaultVoD invalid: %v", c.Validate())
	}
	if c := DefaultUpdate(); c.Validate() != nil {
		t.Errorf("DefaultUpdate invalid: %v", c.Validate())
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"mode", func(c *Config) { c.Mode = "live" }, "mode"},
		{"tick", func(c *Config) { c.Tick = 0 }, "tick"},
		{"duration", func(c *Config) { c.Duration = time.Millisecond }, "duration"},
		{"no regions", func(c *Config) { c.Regions = nil }, "regions"},
		{"duplicate region", func(c *Config) { c.Regions = []Region{{"a", 1}, {"a", 1}} }, "regions[1]"},
		{"region weight", func(c *Config) { c.Regions[0].Weight = math.NaN() }, "regions[0].weight"},
		{"isp table", func(c *Config) { c.ISPs[0].Table = nil }, "isps[0].table"},
		{"arrivals", func(c *Config) { c.ArrivalsPerDay = -1 }, "arrivals-per-day"},
		{"diurnal", func(c *Config) { c.DiurnalAmplitude = 1 }, "diurnal"},
		{"catalog", func(c *Config) { c.CatalogSize = 0 }, "catalog"},
		{"zipf", func(c *Config) { c.ZipfExponent = -1 }, "zipf"},
		{"plateau", func(c *Config) { c.ZipfPlateau = -1 }, "zipf-plateau"},
		{"fraction", func(c *Config) { c.UploadFraction = 1.5 }, "upload-fraction"},
		{"capacity", func(c *Config) { c.EdgeCapacityBps = -5 }, "capacity"},
		{"bitrate", func(c *Config) { c.VoD.BitrateBps = 0 }, "bitrate"},
		{"watch", func(c *Config) { c.VoD.MeanWatch = 0 }, "watch"},
		{"prefetch", func(c *Config) { c.VoD.Prefetch = -time.Second }, "prefetch"},
		{"surge region", func(c *Config) { c.Surge = Surge{Sessions: 5, Region: 99} }, "surge-region"},
		{"surge item", func(c *Config) { c.Surge = Surge{Sessions: 5, Item: -1} }, "surge-item"},
		{"surge after the end", func(c *Config) { c.Surge = Surge{Sessions: 5, At: 30 * time.Hour} }, "surge-at: must be before the end of the run (24h0m0s)"},
		{"surge at the end", func(c *Config) { c.Surge = Surge{Sessions: 5, At: 24 * time.Hour} }, "surge-at"},
		{"duplicate ISP", func(c *Config) {
			c.ISPs = []ISP{{Name: "x", ASN: 1, Weight: 1, Table: ATTTable}, {Name: "x", ASN: 2, Weight: 1, Table: ATTTable}}
		}, `isps[1]: needs a unique name (got "x")`},
		{"unnamed ISP", func(c *Config) { c.ISPs[0].Name = "" }, "isps[0]: needs a unique name"},
		{"policy cap", func(c *Config) { c.Policy.EBUCap = 0 }, "policy.ebu_cap"},
		{"policy capacity", func(c *Config) { c.Policy.EdgeCapacityBps = -1 }, "policy.edge_capacity_bps"},
		{"policy fraction", func(c *Config) { c.Policy.UploadFraction = -1 }, "policy.upload_fraction"},
	}
	for _, tt := range tests {
		c := DefaultVoD()
		tt.modify(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error naming %q", tt.name, err, tt.want)
		}
		if _, err := Run(c, pure, nil); err == nil {
			t.Errorf("%s: Run accepted an invalid configuration", tt.name)
		}
	}
	u := DefaultUpdate()
	u.Update.MinClientRateBps = 0
	if err := u.Validate(); err == nil || !strings.Contains(err.Error(), "min-client-rate") {
		t.Errorf("update min-client-rate 0: %v", err)
	}
}

func TestMaxActive(t *testing.T) {
	c := smallVoD(1)
	c.MaxActive = 10
	if _, err := Run(c, pure, nil); err == nil || !strings.Contains(err.Error(), "too many active sessions") {
		t.Errorf("Run with MaxActive 10 = %v, want ErrTooManySessions", err)
	}
}

func TestReportFiles(t *testing.T) {
	c := smallVoD(4)
	c.Duration = 30 * time.Minute
	rep, err := RunAll(c, DefaultScenarios(&c), 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CapacitySource == "" || len(rep.CapacityBps) != len(c.Regions) || rep.CapacityBps[0] <= 0 {
		t.Errorf("capacity %v from %q", rep.CapacityBps, rep.CapacitySource)
	}
	dir := t.TempDir()
	for _, format := range []string{"png", "svg"} {
		if err := rep.WriteFiles(dir, format); err != nil {
			t.Fatal(err)
		}
	}
	if err := rep.WriteFiles(dir, "gif"); err == nil {
		t.Error("WriteFiles(gif) succeeded")
	}
	magic := map[string]string{"edge_load.png": "\x89PNG", "ebu.png": "\x89PNG", "edge_load.svg": "<?xml", "ebu.svg": "<?xml"}
	for name, m := range magic {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.HasPrefix(b, []byte(m)) {
			t.Errorf("%s: %v, starts with %q", name, err, b[:min(len(b), 8)])
		}
	}
	for name, rows := range map[string]int{"series.csv": 1 + 3*len(rep.Results[0].Series), "summary.csv": 4} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(recs) != rows {
			t.Errorf("%s: %d rows, %v; want %d", name, len(recs), err, rows)
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"pure-cdn", "p2p", "policy", "savings"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	// The plots need at least two points; a one-tick run still writes them.
	c.Duration = c.Tick
	one, err := RunAll(c, []Scenario{pure, withPol}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := one.WriteFiles(t.TempDir(), "png"); err != nil {
		t.Errorf("one-tick run: %v", err)
	}
}

func FuzzParseTable(f *testing.F) {
	for _, s := range []string{"att", "verizon", "768/128/31.85+3000/768/68.15", "1/2/3", "", "+", "1/2/3+", "//", "1e400/1/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := ParseTable(s)
		if err != nil {
			return
		}
		sum := 0.0
		for _, c := range tab {
			if !(c.DownBps > 0) || c.UpBps < 0 || c.Share < 0 || math.IsNaN(c.Share) || math.IsInf(c.DownBps, 0) {
				t.Fatalf("ParseTable(%q) accepted a bad class %+v", s, c)
			}
			sum += c.Share
		}
		if math.Abs(sum-1) > 2e-4 { // the paper's AT&T table adds up to 100.01%
			t.Fatalf("ParseTable(%q): shares add up to %g", s, sum)
		}
	})
}

func FuzzParseISPs(f *testing.F) {
	for _, s := range []string{"AT&T:7018:1:att", "a:1:1:1/1/1,b:2:2:verizon", "a:1:1", ":::", "a:1:1:att,", "a:4294967295:1e300:att"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		is, err := ParseISPs(s)
		if err != nil {
			return
		}
		for _, p := range is {
			if p.Name == "" || p.ASN == 0 || !(p.Weight > 0) || math.IsInf(p.Weight, 0) || len(p.Table) == 0 {
				t.Fatalf("ParseISPs(%q) accepted %+v", s, p)
			}
		}
	})
}

func FuzzParseRegions(f *testing.F) {
	for _, s := range []string{"NY:0.22,TX:0.18", "7", "a:1", "", ",", "a:1:2", "0", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRegions(s)
		if err != nil {
			return
		}
		if len(rs) == 0 || len(rs) > 1000 {
			t.Fatalf("ParseRegions(%q) = %d regions", s, len(rs))
		}
		for _, r := range rs {
			if r.Name == "" || !(r.Weight > 0) || math.IsInf(r.Weight, 0) {
				t.Fatalf("ParseRegions(%q) accepted %+v", s, r)
			}
		}
	})
}
