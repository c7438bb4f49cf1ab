package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("sites:\n  - name: a\n    origins: [{url: \"http://127.0.0.1:1\"}]\n"), 0o644)
	os.WriteFile(bad, []byte("listen: nope\nsites:\n  - name: a\n    origins:\n      - url: ftp://x\npolicy:\n  ebu_cap: 2\n"), 0o644)
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err []string
	}{
		{"good", []string{"check", "--config", good}, 0, []string{"ok (1 sites)"}, nil},
		{"bad lists every problem", []string{"check", "--config", bad}, 2, nil,
			[]string{"bad.yaml:1: listen", "bad.yaml:5: sites[0].origins[0].url", "bad.yaml:7: policy.ebu_cap"}},
		{"missing file", []string{"check", "--config", filepath.Join(dir, "none.yaml")}, 2, nil, []string{"no such file"}},
		{"no config", []string{"check"}, 2, nil, []string{"--config FILE is required"}},
		{"serve without mode", []string{}, 2, nil, []string{"nothing to serve"}},
		{"exclusive modes", []string{"--demo", "--origin", "http://x"}, 2, nil, []string{"exclusive"}},
		{"stray argument", []string{"--demo", "extra"}, 2, nil, []string{"unexpected argument"}},
		{"bad config serve", []string{"--config", bad}, 2, nil, []string{"3 configuration problem(s)", "policy.ebu_cap"}},
		{"version", []string{"version"}, 0, []string{"edge "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.code, errb.String())
			}
			for _, w := range tt.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout %q lacks %q", out.String(), w)
				}
			}
			for _, w := range tt.err {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
		})
	}
}

func TestDemoConfig(t *testing.T) {
	cfg, err := buildConfig(&options{demo: true, listen: "127.0.0.5:8080"}, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	hosts := cfg.Sites[0].Hosts
	for _, want := range []string{"localhost", "127.0.0.1", "127.0.0.5"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("demo hosts %v lack %s", hosts, want)
		}
	}
	if slices.Contains(hosts, "") || len(cfg.Region.Regions) != 1 {
		t.Errorf("hosts %v, regions %v", hosts, cfg.Region.Regions)
	}
}

func TestCheckRegionSourceErrorsHaveLines(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.tsv"), []byte("1.0.0.0\t1.0.0.255\t13335\tUS\tX\nnot a line\n"), 0o644)
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte("sites:\n  - name: a\n    origins: [{url: \"http://127.0.0.1:1\"}]\nregion:\n  sources:\n    - path: bad.tsv\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", cfg}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "edge.yaml:6: region.sources[0]:") || !strings.Contains(errb.String(), "bad.tsv:2") {
		t.Errorf("stderr = %q, want the config line and the TSV line", errb.String())
	}
}

// TestCheckEveryProblemOnce: keys that do not fit, values out of range and
// a region source that cannot be read, all in one run (QA: 3 of 33
// problems were printed, then the rest once those were fixed, and region
// files only once everything else was valid).
func TestCheckEveryProblemOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte("cache:\n  memory_bytes: 16XB\nsites:\n  - name: a\n    origins: [{url: \"http://127.0.0.1:1\"}]\n"+
		"policy:\n  ebu_cap: 7\n  colour: red\nregion:\n  sources:\n    - path: missing.tsv\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", cfg}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
	}
	for _, w := range []string{"edge.yaml:2: cache.memory_bytes", "edge.yaml:8: policy.colour: unknown field", "edge.yaml:7: policy.ebu_cap", "edge.yaml:11: region.sources[0]"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errb.String())
		}
	}
}
