package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Report is a set of scenarios run over one workload: plain data once
// RunAll returns.
type Report struct {
	Config Config
	// CapacityBps is each region's edge capacity in the peer-assisted and
	// policy runs; CapacitySource says where it came from.
	CapacityBps    []float64
	CapacitySource string
	Results        []*Result
}

// RunAll runs the scenarios over cfg's workload, at most parallel at a
// time (each run is single-threaded and deterministic). Unless the
// configuration sets an edge capacity, each region's capacity is its peak
// load in the pure-CDN run (CloudTracker's B_max), run first.
func RunAll(cfg Config, scenarios []Scenario, parallel int) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(scenarios) == 0 {
		return nil, errors.New("sim: no scenario to run")
	}
	rep := &Report{Config: cfg, Results: make([]*Result, len(scenarios))}
	pure := -1
	for i, sc := range scenarios {
		if sc.Kind == PureCDN {
			pure = i
			break
		}
	}
	var baseline *Result
	switch {
	case cfg.EdgeCapacityBps > 0:
		rep.CapacitySource = "configured"
		for range cfg.Regions {
			rep.CapacityBps = append(rep.CapacityBps, cfg.EdgeCapacityBps)
		}
	default:
		sc := Scenario{Name: "pure-cdn", Kind: PureCDN}
		if pure >= 0 {
			sc = scenarios[pure]
		}
		r, err := Run(cfg, sc, nil)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		baseline = r
		if pure >= 0 {
			rep.Results[pure] = r
		}
		rep.CapacitySource = "pure-CDN peak per region (B_max)"
		rep.CapacityBps = r.PeakBps
	}
	parallel = max(parallel, 1)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(scenarios))
	for i, sc := range scenarios {
		if rep.Results[i] != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			caps := rep.CapacityBps
			if sc.Kind == PureCDN && baseline == nil && cfg.EdgeCapacityBps == 0 {
				caps = nil
			}
			r, err := Run(cfg, sc, caps)
			if err != nil {
				errs[i] = fmt.Errorf("scenario %s: %w", sc.Name, err)
				return
			}
			rep.Results[i] = r
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if baseline == nil && pure >= 0 {
		baseline = rep.Results[pure]
	}
	if baseline != nil && baseline.Summary.MeanEdgeBps > 0 {
		for _, r := range rep.Results {
			r.Summary.Savings = 1 - r.Summary.MeanEdgeBps/baseline.Summary.MeanEdgeBps
		}
	}
	return rep, nil
}

// WriteFiles writes series.csv, summary.csv and the plots (edge_load and
// ebu, in format "png" or "svg") into dir, creating it.
func (rep *Report) WriteFiles(dir, format string) error {
	if format != "png" && format != "svg" {
		return fmt.Errorf("plot format %q: want png or svg", format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	write := func(name string, f func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		fh, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := f(fh); err != nil {
			fh.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	if err := write("series.csv", rep.WriteSeriesCSV); err != nil {
		return err
	}
	if err := write("summary.csv", rep.WriteSummaryCSV); err != nil {
		return err
	}
	if err := rep.plotEdgeLoad(filepath.Join(dir, "edge_load."+format)); err != nil {
		return err
	}
	return rep.plotEBU(filepath.Join(dir, "ebu."+format))
}

func ff(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }

// WriteSeriesCSV writes one row per scenario and tick.
func (rep *Report) WriteSeriesCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"scenario", "time_s", "active", "waiting", "edge_bps", "edge_urgent_bps", "edge_nonurgent_bps", "edge_unknown_bps", "peer_bps", "ebu", "ebu_max_region", "stopped", "floor_violations"})
	for _, r := range rep.Results {
		for _, s := range r.Series {
			cw.Write([]string{
				r.Scenario.Name, ff(s.TimeSec), strconv.Itoa(s.Active), strconv.Itoa(s.Waiting), ff(s.EdgeBps), ff(s.EdgeUrgentBps),
				ff(s.EdgeNonUrgentBps), ff(s.EdgeUnknownBps), ff(s.PeerBps), ff(s.EBU), ff(s.EBUMax), strconv.Itoa(s.Stopped),
				strconv.Itoa(s.FloorViolations),
			})
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteSummaryCSV writes one row per scenario.
func (rep *Report) WriteSummaryCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"scenario", "sessions", "unfinished", "mean_edge_mbps", "p95_edge_mbps", "peak_edge_mbps", "savings_pct",
		"mean_peer_mbps", "floor_violations", "stall_s", "cross_region_bytes", "upload_gb", "budget_gb", "over_budget",
		"mean_ebu", "max_ebu", "over_cap_region_ticks", "longest_over_cap_ticks", "max_ebu_with_unknown", "stops", "wall_s"})
	for _, r := range rep.Results {
		s := r.Summary
		cw.Write([]string{
			s.Scenario, strconv.Itoa(s.Sessions), strconv.Itoa(s.Unfinished), ff(s.MeanEdgeBps / 1e6), ff(s.P95EdgeBps / 1e6), ff(s.PeakEdgeBps / 1e6),
			ff(100 * s.Savings), ff(s.MeanPeerBps / 1e6), strconv.Itoa(s.FloorViolations), ff(s.StallSeconds),
			ff(s.CrossRegionBytes), ff(s.UploadBytes / 1e9), ff(s.BudgetBytes / 1e9), strconv.Itoa(s.OverBudget),
			ff(s.MeanEBU), ff(s.MaxEBU), strconv.Itoa(s.OverCapTicks), strconv.Itoa(s.LongestOverCap),
			ff(s.MaxEBUWithUnknown), strconv.Itoa(s.Stops), ff(s.Wall.Seconds()),
		})
	}
	cw.Flush()
	return cw.Error()
}

// WriteText writes a human-readable table of the summaries. EBU columns
// read "-" for pure CDN: it has no peer-assisted session.
func (rep *Report) WriteText(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "mode %s, %d regions, %d ISPs, %s simulated in %s ticks, seed %d, edge capacity: %s\n",
		c.Mode, len(c.Regions), len(c.ISPs), c.Duration, c.Tick, c.Seed, rep.CapacitySource)
	fmt.Fprintf(w, "%-12s %9s %10s %10s %10s %8s %9s %9s %8s %7s %9s %6s\n",
		"scenario", "sessions", "edge Mbps", "p95 Mbps", "peak Mbps", "savings", "floor vio", "x-region", "max EBU", ">cap", "up/budget", "wall")
	var unknown []string
	for _, r := range rep.Results {
		s := r.Summary
		ub := "-"
		if s.BudgetBytes > 0 {
			ub = fmt.Sprintf("%.0f%%", 100*s.UploadBytes/s.BudgetBytes)
		}
		maxEBU, overCap := "-", "-"
		if r.Scenario.Kind != PureCDN {
			maxEBU, overCap = fmt.Sprintf("%.3f", s.MaxEBU), strconv.Itoa(s.OverCapTicks)
			if s.MaxEBUWithUnknown > s.MaxEBU+5e-4 {
				unknown = append(unknown, fmt.Sprintf("%s %.3f", s.Scenario, s.MaxEBUWithUnknown))
			}
		}
		fmt.Fprintf(w, "%-12s %9d %10.1f %10.1f %10.1f %7.1f%% %9d %9.0f %8s %7s %9s %6s\n",
			s.Scenario, s.Sessions, s.MeanEdgeBps/1e6, s.P95EdgeBps/1e6, s.PeakEdgeBps/1e6, 100*s.Savings,
			s.FloorViolations, s.CrossRegionBytes, maxEBU, overCap, ub, s.Wall.Round(time.Millisecond*100))
	}
	if len(unknown) > 0 {
		fmt.Fprintf(w, "EBU counts peer-assisted sessions only; with the unannounced arrivals' first tick (no peers, no limit) max EBU would be: %s\n",
			strings.Join(unknown, ", "))
	}
}

// maxPlotPoints bounds the points per line: ticks are averaged in buckets.
const maxPlotPoints = 1500

func bucketed(series []Sample, value func(Sample) float64) plotter.XYs {
	step := max(1, (len(series)+maxPlotPoints-1)/maxPlotPoints)
	var xys plotter.XYs
	for i := 0; i < len(series); i += step {
		end := min(len(series), i+step)
		sum := 0.0
		for _, s := range series[i:end] {
			sum += value(s)
		}
		xys = append(xys, plotter.XY{X: series[i].TimeSec / 3600, Y: sum / float64(end-i)})
	}
	return xys
}

func (rep *Report) plotEdgeLoad(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Edge load, %s workload", rep.Config.Mode)
	p.X.Label.Text = "time (hours)"
	p.Y.Label.Text = "edge egress (Mbit/s)"
	p.Legend.Top = true
	p.Y.Min = 0
	top := 0.0
	for i, r := range rep.Results {
		xys := bucketed(r.Series, func(s Sample) float64 { return s.EdgeBps / 1e6 })
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", path, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (mean %.1f)", r.Scenario.Name, r.Summary.MeanEdgeBps/1e6), l)
	}
	p.Y.Max = 1.3 * max(top, 1e-3) // room for the legend above the lines
	if err := p.Save(10*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

func (rep *Report) plotEBU(path string) error {
	p := plot.New()
	p.Title.Text = "Extra bandwidth utilization (non-urgent edge egress to peer-assisted sessions / capacity), highest region"
	p.X.Label.Text = "time (hours)"
	p.Y.Label.Text = "EBU"
	p.Legend.Top = true
	p.Y.Min = 0
	top := rep.Config.Policy.EBUCap
	for i, r := range rep.Results {
		if r.Scenario.Kind == PureCDN {
			continue
		}
		xys := bucketed(r.Series, func(s Sample) float64 { return s.EBUMax })
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", path, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(r.Scenario.Name, l)
	}
	capLine := plotter.NewFunction(func(float64) float64 { return rep.Config.Policy.EBUCap })
	capLine.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	capLine.Width = vg.Points(1)
	p.Add(capLine)
	p.Legend.Add(fmt.Sprintf("cap %.2f", rep.Config.Policy.EBUCap), capLine)
	p.X.Min, p.X.Max = 0, math.Max(rep.Config.Duration.Hours(), 1e-3)
	p.Y.Max = 1.3 * top
	if err := p.Save(10*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}
