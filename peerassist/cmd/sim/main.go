// Command sim runs the peer-assistance simulator (package
// peerassist/sim): a workload over regions and ISPs, simulated for pure
// CDN, peer assistance and the policy, with CSV and plots written to an
// output directory.
//
//	go run ./peerassist/cmd/sim -mode vod -out /tmp/sim-vod
//	go run ./peerassist/cmd/sim -mode update -out /tmp/sim-update
//
// Every flag defaults to the paper preset of its mode; see
// peerassist/sim/README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/sim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sim:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	mode := sim.VoD
	for i, a := range args { // the mode picks the defaults of the other flags
		switch {
		case a == "-mode" || a == "--mode":
			if i+1 < len(args) {
				mode = sim.Mode(args[i+1])
			}
		case strings.HasPrefix(a, "-mode=") || strings.HasPrefix(a, "--mode="):
			mode = sim.Mode(a[strings.Index(a, "=")+1:])
		}
	}
	cfg := sim.DefaultVoD()
	if mode == sim.Update {
		cfg = sim.DefaultUpdate()
	}

	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sim [flags]\n\nSimulates pure CDN, peer assistance and the edge policy over a synthetic\nworkload, and writes series.csv, summary.csv, edge_load and ebu plots.\nDefaults are the %s preset (use -mode first to see the other preset's).\n\n", mode)
		fs.PrintDefaults()
	}
	var (
		modeFlag   = fs.String("mode", string(mode), "workload: vod (video on demand) or update (software download)")
		out        = fs.String("out", "sim-out", "output `directory` for CSV files and plots")
		format     = fs.String("plot-format", "png", "plot format: png or svg")
		scenarios  = fs.String("scenarios", "", "comma-separated scenarios (pure-cdn, p2p[:FRACTION], policy); default: the paper's set for the mode")
		parallel   = fs.Int("parallel", runtime.NumCPU(), "scenarios run at the same time")
		regions    = fs.String("regions", regionsString(cfg.Regions), "regions as NAME:WEIGHT,... or a count N")
		isps       = fs.String("isps", ispsString(cfg.ISPs), "ISPs as NAME:ASN:WEIGHT:TABLE,... with TABLE att, verizon or down/up/percent+... in kbit/s")
		cpuprofile = fs.String("cpuprofile", "", "write a CPU profile to `file`")
		capMbps    = fs.Float64("capacity", 0, "edge capacity per region in Mbit/s (0: each region's pure-CDN peak)")
		surgeAt    = fs.Duration("surge-at", 0, "start of a flash crowd")
		surgeOver  = fs.Duration("surge-over", time.Minute, "length of the flash crowd's arrival window")
		quiet      = fs.Bool("q", false, "do not print the summary table")
	)
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (same seed, same results)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "simulated time")
	fs.DurationVar(&cfg.Tick, "tick", cfg.Tick, "simulation step and policy tick")
	fs.Float64Var(&cfg.ArrivalsPerDay, "arrivals-per-day", cfg.ArrivalsPerDay, "mean sessions starting per day, all regions (Poisson)")
	fs.Float64Var(&cfg.DiurnalAmplitude, "diurnal", cfg.DiurnalAmplitude, "diurnal amplitude of the arrival rate, in [0, 1)")
	fs.Float64Var(&cfg.PeakHour, "peak-hour", cfg.PeakHour, "hour of the day with the most arrivals")
	fs.IntVar(&cfg.CatalogSize, "catalog", cfg.CatalogSize, "number of videos or updates")
	fs.Float64Var(&cfg.ZipfExponent, "zipf", cfg.ZipfExponent, "Zipf exponent of popularity")
	fs.Float64Var(&cfg.ZipfPlateau, "zipf-plateau", cfg.ZipfPlateau, "Zipf-Mandelbrot plateau q: item k has weight 1/(k+q)^zipf")
	fs.Float64Var(&cfg.UploadFraction, "upload-fraction", cfg.UploadFraction, "share of upload peers give in the p2p scenario (vod)")
	fs.Float64Var(&cfg.VoD.BitrateBps, "bitrate", cfg.VoD.BitrateBps, "vod: video bitrate in bit/s")
	fs.DurationVar(&cfg.VoD.MedianLength, "length", cfg.VoD.MedianLength, "vod: median video length (lognormal)")
	fs.Float64Var(&cfg.VoD.LengthSigma, "length-sigma", cfg.VoD.LengthSigma, "vod: log-standard deviation of video lengths")
	fs.DurationVar(&cfg.VoD.MeanWatch, "watch", cfg.VoD.MeanWatch, "vod: mean time a viewer means to watch (exponential, cut at the video's end)")
	fs.DurationVar(&cfg.VoD.Prefetch, "prefetch", cfg.VoD.Prefetch, "vod: buffer kept ahead of the playhead (0: no prefetch)")
	fs.Float64Var(&cfg.Update.MeanFileBytes, "file-bytes", cfg.Update.MeanFileBytes, "update: mean download size in bytes (lognormal sizes per item, popularity-weighted mean)")
	fs.Float64Var(&cfg.Update.FileSigma, "file-sigma", cfg.Update.FileSigma, "update: log-standard deviation of download sizes")
	fs.Float64Var(&cfg.Update.ServiceRateBps, "service-rate", cfg.Update.ServiceRateBps, "update: the update service's total rate target in bit/s")
	fs.Float64Var(&cfg.Update.MinClientRateBps, "min-client-rate", cfg.Update.MinClientRateBps, "update: per-client share under which new clients back off, in bit/s")
	fs.BoolVar(&cfg.Update.SharePool, "share-pool", cfg.Update.SharePool, "update: clients of a region and ISP share whatever they download (false: only the same item)")
	fs.IntVar(&cfg.Surge.Sessions, "surge", 0, "sessions in a flash crowd for one item (0: none)")
	fs.IntVar(&cfg.Surge.Region, "surge-region", 0, "index of the flash crowd's region")
	fs.BoolVar(&cfg.Surge.Unannounced, "surge-unannounced", false, "the flash crowd fetches from the edge before the coordinator knows it (no allowance until the next tick)")
	fs.IntVar(&cfg.Surge.Item, "surge-item", 0, "catalog index of the flash crowd's item (0 is the most popular)")
	fs.IntVar(&cfg.MaxActive, "max-active", cfg.MaxActive, "abort when more sessions than this are active")
	fs.Float64Var(&cfg.Policy.EBUCap, "ebu-cap", cfg.Policy.EBUCap, "policy: EBU cap in (0, 1]")
	fs.Float64Var(&cfg.Policy.UploadFraction, "policy-upload-fraction", cfg.Policy.UploadFraction, "policy: share of upload capacity each peer gives")
	basic := fs.Int64("basic-rate", cfg.Policy.BasicRateBps, "policy: basic rate (floor of downloads) in bit/s")
	fs.Float64Var(&cfg.Policy.Exploration, "exploration", cfg.Policy.Exploration, "policy: relative exploration around each swarm's operating point")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Mode = sim.Mode(*modeFlag)
	cfg.Policy.BasicRateBps = *basic
	if cfg.Policy.HighRateBps < cfg.Policy.BasicRateBps {
		cfg.Policy.HighRateBps = cfg.Policy.BasicRateBps
	}
	if cfg.Policy.StopHold < config.Duration(cfg.Tick) {
		cfg.Policy.StopHold = config.Duration(cfg.Tick)
	}
	cfg.Policy.Tick = config.Duration(cfg.Tick)
	var err error
	if cfg.Regions, err = sim.ParseRegions(*regions); err != nil {
		return err
	}
	if cfg.ISPs, err = sim.ParseISPs(*isps); err != nil {
		return err
	}
	if *capMbps < 0 {
		return fmt.Errorf("capacity: must not be negative (got %g)", *capMbps)
	}
	cfg.EdgeCapacityBps = *capMbps * 1e6
	cfg.Surge.At, cfg.Surge.Over = *surgeAt, *surgeOver
	if err := cfg.Validate(); err != nil {
		return err
	}
	scs, err := parseScenarios(*scenarios, &cfg)
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep, err := sim.RunAll(cfg, scs, *parallel)
	if err != nil {
		return err
	}
	if err := rep.WriteFiles(*out, *format); err != nil {
		return err
	}
	if !*quiet {
		rep.WriteText(stdout)
		fmt.Fprintf(stdout, "wrote %s/{series.csv,summary.csv,edge_load.%s,ebu.%s} in %s\n", *out, *format, *format, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// parseScenarios reads "pure-cdn,p2p:0.33,policy".
func parseScenarios(s string, cfg *sim.Config) ([]sim.Scenario, error) {
	if strings.TrimSpace(s) == "" {
		return sim.DefaultScenarios(cfg), nil
	}
	var out []sim.Scenario
	for _, part := range strings.Split(s, ",") {
		name, arg, hasArg := strings.Cut(strings.TrimSpace(part), ":")
		switch name {
		case "pure-cdn":
			out = append(out, sim.Scenario{Name: name, Kind: sim.PureCDN})
		case "policy":
			out = append(out, sim.Scenario{Name: name, Kind: sim.WithPolicy})
		case "p2p":
			f := cfg.UploadFraction
			if hasArg {
				var err error
				if _, err = fmt.Sscanf(arg, "%g", &f); err != nil || !(f >= 0 && f <= 1) {
					return nil, fmt.Errorf("scenarios: %q: the fraction must be in [0, 1]", part)
				}
			}
			out = append(out, sim.Scenario{Name: fmt.Sprintf("p2p-%.2f", f), Kind: sim.PeerAssisted, UploadFraction: f})
		default:
			return nil, fmt.Errorf("scenarios: unknown %q (want pure-cdn, p2p[:FRACTION] or policy)", part)
		}
	}
	return out, nil
}

func regionsString(rs []sim.Region) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s:%g", r.Name, r.Weight)
	}
	return strings.Join(parts, ",")
}

func ispsString(is []sim.ISP) string {
	parts := make([]string, len(is))
	for i, p := range is {
		table := p.Table.String()
		switch {
		case sameTable(p.Table, sim.ATTTable):
			table = "att"
		case sameTable(p.Table, sim.VerizonTable):
			table = "verizon"
		}
		parts[i] = fmt.Sprintf("%s:%d:%g:%s", p.Name, p.ASN, p.Weight, table)
	}
	return strings.Join(parts, ",")
}

func sameTable(a, b sim.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
