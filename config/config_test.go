package config

import (
	"errors"
	"strings"
	"testing"
)

func TestExampleLoads(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load(example) = %v", err)
	}
	if got, want := c.Cache.ChunkBytes, ByteSize(256<<10); got != want {
		t.Errorf("chunk_bytes = %v, want %v", got, want)
	}
	if got := c.Sites[1-1].Origins[1].Weight; got != 2 {
		t.Errorf("weight = %d, want 2", got)
	}
	if got := c.Sites[0].Origins[0].Weight; got != 1 {
		t.Errorf("default weight = %d, want 1", got)
	}
	if c.Sites[0].PathPrefix != "/" {
		t.Errorf("default path_prefix = %q", c.Sites[0].PathPrefix)
	}
}

func TestErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each must appear in the error
	}{
		{"unknown key", "listen: \":80\"\nbogus: 1\n", []string{"cfg.yaml:2", "bogus"}},
		{"no sites", "listen: \":80\"\n", []string{"sites: at least one site"}},
		{"bad origin url", "sites:\n  - name: a\n    origins:\n      - url: ftp://x\n", []string{"cfg.yaml:4", "sites[0].origins[0].url", "scheme"}},
		{"two problems", "sites:\n  - name: a\n    origins:\n      - url: http://x\npolicy:\n  ebu_cap: 1.5\n  upload_fraction: -1\n",
			[]string{"cfg.yaml:6: policy.ebu_cap", "cfg.yaml:7: policy.upload_fraction"}},
		{"bad size", "cache:\n  chunk_bytes: lots\n", []string{"cfg.yaml:2", "invalid size"}},
		{"event loops below -1", "sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\nevent_loops: -2\n",
			[]string{"cfg.yaml:4: event_loops", "must be -1 (off)"}},
		{"event loops too many", "event_loops: 5000\nsites:\n  - name: a\n    origins: [{url: \"http://x\"}]\n",
			[]string{"cfg.yaml:1: event_loops", "got 5000"}},
		{"bad duration", "policy:\n  tick: soon\n", []string{"cfg.yaml:2", "invalid duration"}},
		{"bad prefix", "sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\nregion:\n  regions:\n    - name: r\n      isps:\n        - name: i\n          prefixes: [\"1.2.3.0/33\"]\n",
			[]string{"region.regions[0].isps[0].prefixes[0]", "not a CIDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cfg.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"262144", 262144, true}, {"256KiB", 256 << 10, true}, {"1.5GiB", 3 << 29, true},
		{"10GB", 10e9, true}, {"512k", 512 << 10, true}, {"-1", 0, false}, {"x", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\n"))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("cache:\n  memory_bytes: 16XB\npolicy: {ebu_cap: 7, colour: red}\nsites:\n  - name: a\n    origins: [{url: \"http://x\", weight: many}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse("fuzz.yaml", data) // must not panic
	})
}
