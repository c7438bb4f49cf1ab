package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunWritesOutputs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // in the summary table
	}{
		{"vod", []string{"-mode", "vod", "-duration", "20m", "-regions", "A:1,B:1", "-arrivals-per-day", "50000", "-catalog", "200", "-prefetch", "20s"},
			[]string{"mode vod", "pure-cdn", "p2p", "policy"}},
		{"update", []string{"-mode=update", "-duration", "30m", "-regions", "2", "-arrivals-per-day", "60000", "-service-rate", "20e6", "-isps", "V:701:1:verizon,A:7018:1:768/128/50+3000/512/50", "-plot-format", "svg"},
			[]string{"mode update", "p2p-full", "p2p-limited", "policy"}},
		{"scenarios and capacity", []string{"-duration", "10m", "-regions", "1", "-arrivals-per-day", "20000", "-scenarios", "pure-cdn,p2p:0.5", "-capacity", "50", "-seed", "9"},
			[]string{"pure-cdn", "p2p-0.50", "edge capacity: configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			if err := run(append(tt.args, "-out", dir), &out, &errb); err != nil {
				t.Fatalf("run: %v\n%s", err, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			ext := "png"
			if strings.Contains(strings.Join(tt.args, " "), "svg") {
				ext = "svg"
			}
			for _, f := range []string{"series.csv", "summary.csv", "edge_load." + ext, "ebu." + ext} {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "live"}, "mode"},
		{[]string{"-ebu-cap", "1.5"}, "policy.ebu_cap"},
		{[]string{"-policy-upload-fraction", "-1"}, "policy.upload_fraction"},
		{[]string{"-capacity", "-3"}, "capacity"},
		{[]string{"-regions", "NY"}, "regions"},
		{[]string{"-isps", "x:1:1:nope"}, "isps"},
		{[]string{"-isps", "A:1:1:768/128/50"}, "percentages add up to 50, want 100"},
		{[]string{"-isps", "A:1:1:att,A:2:1:verizon"}, "isps[1]: needs a unique name"},
		{[]string{"-surge", "10", "-surge-at", "25h"}, "surge-at: must be before the end of the run"},
		{[]string{"-scenarios", "magic"}, "scenarios"},
		{[]string{"-scenarios", "p2p:2"}, "fraction"},
		{[]string{"-tick", "0s"}, "tick"},
		{[]string{"-plot-format", "gif", "-duration", "1m", "-arrivals-per-day", "100"}, "plot format"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := run(append(tt.args, "-out", t.TempDir()), &out, &errb)
		if err == nil {
			t.Errorf("run(%q) succeeded", tt.args)
			continue
		}
		if msg := err.Error() + errb.String(); !strings.Contains(msg, tt.want) {
			t.Errorf("run(%q) = %v (%s), want it to mention %q", tt.args, err, errb.String(), tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"-mode", "update", "-h"}, &out, &errb)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(-h) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: sim", "-service-rate", "-surge", "update preset", "verizon"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
