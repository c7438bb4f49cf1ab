package config

import (
	"errors"
	"strings"
	"testing"
)

func TestEveryProblemAtOnce(t *testing.T) {
	const site = "sites:\n  - name: a\n    origins: [{url: \"http://x\"}]\n"
	tests := []struct {
		name string
		yaml string
		want []string // each must be one of the errors, in this order
	}{
		{"two unknown keys", "foo: 1\nbar: 2\n" + site, []string{`cfg.yaml:1: foo: unknown field "foo"`, `cfg.yaml:2: bar: unknown field "bar"`}},
		{"nested unknown with hint", site + "policy:\n  ebu-cap: 0.3\n  tik: 5s\n", []string{`cfg.yaml:5: policy.ebu-cap: unknown field "ebu-cap" (did you mean "ebu_cap"?)`, `cfg.yaml:6: policy.tik: unknown field`}},
		{"type errors with paths", "limits:\n  max_connections: lots\n  read_timeout: 5\n" + site, []string{`cfg.yaml:2: limits.max_connections: want a whole number, got "lots"`, `cfg.yaml:3: limits.read_timeout: invalid duration "5"`}},
		{"size and list shapes", "cache:\n  chunk_bytes: big\nsites: 3\n", []string{`cfg.yaml:2: cache.chunk_bytes: invalid size "big"`, `cfg.yaml:3: sites: want a list`}},
		{"unknown key in a list element", "sites:\n  - name: a\n    origin: [{url: \"http://x\"}]\n", []string{`cfg.yaml:3: sites[0].origin: unknown field "origin"`,
			`cfg.yaml:2: sites[0].origins: at least one origin is required`}},
		// Keys that do not fit are left out, and the rest is validated:
		// one run reports both kinds (QA: 3 of 33 problems, then 30 more
		// once those were fixed); a key left out is not reported again.
		{"type errors and values out of range", "limits:\n  max_connections: lots\n  read_timeout: -5s\npolicy:\n  ebu_cap: 7\n  tick: soon\n" + site,
			[]string{`cfg.yaml:2: limits.max_connections: want a whole number, got "lots"`, `cfg.yaml:6: policy.tick: invalid duration "soon"`,
				`cfg.yaml:3: limits.read_timeout: must be greater than 0 (got -5s)`, `cfg.yaml:5: policy.ebu_cap: must be in (0, 1]`}},
		{"bool", site + "telemetry:\n  access_log: sometimes\n", []string{`cfg.yaml:5: telemetry.access_log: want true or false`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cfg.yaml", []byte(tt.yaml))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v, want Errors", err)
			}
			if len(es) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(es[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

func TestEmptyFileKeepsDefaults(t *testing.T) {
	for _, data := range []string{"", "# only a comment\n", "\n\n"} {
		_, err := Parse("e.yaml", []byte(data))
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "sites" {
			t.Errorf("Parse(%q) = %v, want exactly the missing-sites error", data, err)
		}
	}
}

func TestUnreachableSite(t *testing.T) {
	yaml := `sites:
  - name: a
    hosts: [Video.example]
    origins: [{url: "http://x"}]
  - name: b
    hosts: [video.example]
    origins: [{url: "http://y"}]
  - name: c
    path_prefix: /c/
    origins: [{url: "http://y"}]
  - name: d
    path_prefix: /d/
    hosts:
      - d.example
      - D.example
    origins: [{url: "http://y"}]
`
	_, err := Parse("d.yaml", []byte(yaml))
	if err == nil || !strings.Contains(err.Error(), `d.yaml:6: sites[1].hosts: host "video.example" with path_prefix "/" is also sites[0]'s`) {
		t.Fatalf("Parse = %v", err)
	}
	if !strings.Contains(err.Error(), `d.yaml:15: sites[3].hosts[1]: host "D.example" is listed twice`) {
		t.Errorf("a host listed twice in one site: %v", err)
	}
	if strings.Contains(err.Error(), "sites[2]") {
		t.Errorf("a site on another prefix was flagged: %v", err)
	}
}

func TestNegativeDurationMessage(t *testing.T) {
	_, err := Parse("n.yaml", []byte("limits:\n  read_timeout: -5s\nsites: [{name: a, origins: [{url: \"http://x\"}]}]\n"))
	if err == nil || !strings.Contains(err.Error(), "n.yaml:2: limits.read_timeout: must be greater than 0 (got -5s)") {
		t.Fatalf("Parse = %v", err)
	}
}
