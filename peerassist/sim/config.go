package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/peerassist/edgebox/config"
)

// Mode is the kind of workload.
type Mode string

const (
	// VoD: viewers watch videos at a bitrate; peers serve what they hold
	// (the no-prefetch model of Huang, Li and Ross: older viewers of a
	// video serve younger ones).
	VoD Mode = "vod"
	// Update: clients download a file (a software update) at the rate the
	// update service allows them; peers upload while they download.
	Update Mode = "update"
)

// Region is one POP region with its share of the arrivals.
type Region struct {
	Name   string
	Weight float64
}

// ISP is an access network present in every region.
type ISP struct {
	Name   string
	ASN    uint32
	Weight float64
	Table  Table
}

// VoDConfig shapes the VoD workload.
type VoDConfig struct {
	// BitrateBps is every video's bitrate.
	BitrateBps float64
	// MedianLength and LengthSigma define the video lengths: lognormal
	// with this median and log-standard deviation, clamped to
	// [30s, 3h]. Each video's length is fixed by its index and the seed.
	MedianLength time.Duration
	LengthSigma  float64
	// MeanWatch is the mean of the time a viewer means to watch
	// (exponential); a viewer leaves then or at the video's end.
	MeanWatch time.Duration
	// Prefetch is the buffer a player keeps ahead of the playhead (0 is
	// the paper's no-prefetch model: everything is fetched when needed).
	Prefetch time.Duration
}

// UpdateConfig shapes the software-update workload.
type UpdateConfig struct {
	// MeanFileBytes and FileSigma define the download sizes: lognormal
	// with this log-standard deviation, fixed per catalog item, then
	// scaled so that the mean over downloads (weighted by popularity) is
	// MeanFileBytes, whichever item happens to be the most popular.
	MeanFileBytes float64
	FileSigma     float64
	// ServiceRateBps is the update service's total rate target, split
	// across regions by weight: the service throttles its clients so that
	// together they download at most this much (the "traffic engineering"
	// that keeps Windows Update's CDN load flat); each client gets an equal
	// share, up to its link.
	ServiceRateBps float64
	// MinClientRateBps is the share below which the service admits no more
	// clients: new ones back off and wait (in arrival order) until a
	// download ends (the paper: "clients automatically back-off to avoid
	// overwhelming the distribution servers").
	MinClientRateBps float64
	// SharePool lets every client of a region and ISP upload to every
	// other, whatever they download (the paper's assumption that clients
	// always hold something others need). false limits sharing to clients
	// of the same item (our swarms).
	SharePool bool
}

// Surge adds a flash crowd: Sessions arrivals for one catalog item in one
// region, spread evenly over Over, starting At after the start.
type Surge struct {
	At       time.Duration
	Over     time.Duration
	Sessions int
	Region   int
	Item     int
	// Unannounced crowds fetch from the edge before the coordinator knows
	// them: the edge admits unknown sessions, so they draw without limit
	// until the first tick that sees them. Otherwise they get the last
	// decision's join allowance, as any joining session.
	Unannounced bool
}

// Config is a simulation: a workload, the network and the policy.
type Config struct {
	Mode Mode
	// Seed makes the run deterministic.
	Seed uint64
	// Duration is the simulated time; Tick the step, which is also the
	// policy tick.
	Duration, Tick time.Duration
	Regions        []Region
	ISPs           []ISP
	// ArrivalsPerDay is the mean number of sessions starting per day, all
	// regions together (Poisson).
	ArrivalsPerDay float64
	// DiurnalAmplitude modulates the arrival rate over the day:
	// rate(t) = mean*(1 + a*cos(2*pi*(t - PeakHour)/24h)); in [0, 1).
	DiurnalAmplitude float64
	// PeakHour is the hour of the day (from the start) with most arrivals.
	PeakHour float64
	// CatalogSize items with Zipf-Mandelbrot popularity: item k (from 1)
	// is chosen with probability proportional to 1/(k+ZipfPlateau)^ZipfExponent
	// (a plateau of 0 is plain Zipf; a larger one flattens the head).
	CatalogSize  int
	ZipfExponent float64
	ZipfPlateau  float64
	VoD          VoDConfig
	Update       UpdateConfig
	// UploadFraction is the share of their upload the peers give in the
	// peer-assisted runs without the policy (1: full assistance; 1/3: the
	// paper's limited assistance).
	UploadFraction float64
	// EdgeCapacityBps is each region's edge capacity; 0 takes each
	// region's peak load of the pure-CDN run (CloudTracker's B_max,
	// measured on an unlimited day). The pure-CDN run itself is unlimited.
	EdgeCapacityBps float64
	// Policy configures the policy run. Its edge_capacity_bps, when set,
	// replaces the capacity above for the policy's EBU only.
	Policy config.Policy
	// Surge, when Sessions > 0, adds a flash crowd.
	Surge Surge
	// MaxActive aborts a run whose active sessions exceed it (a workload
	// the machine cannot hold). Default 5,000,000.
	MaxActive int
}

// DefaultVoD is the hybrid CDN-P2P paper's video-on-demand study: MSN
// Video in AT&T, 7 Akamai regions, 17,000 videos, one day of the month's
// average arrivals. The bitrate, lengths, watch behaviour, Zipf exponent
// and the regions' weights are assumptions (the trace is not public): see
// README.md.
func DefaultVoD() Config {
	return Config{
		Mode: VoD, Seed: 1, Duration: 24 * time.Hour, Tick: 5 * time.Second,
		Regions: []Region{
			{"NY", 0.22}, {"TX", 0.18}, {"VA", 0.16}, {"IN", 0.12}, {"NC", 0.12}, {"MO", 0.10}, {"UT", 0.10},
		},
		ISPs:             []ISP{{Name: "AT&T", ASN: 7018, Weight: 1, Table: ATTTable}},
		ArrivalsPerDay:   780_000,
		DiurnalAmplitude: 0.5,
		PeakHour:         20,
		CatalogSize:      17_000,
		ZipfExponent:     1.9,
		ZipfPlateau:      5,
		VoD:              defaultVoD(),
		Update:           defaultUpdate(),
		UploadFraction:   1,
		Policy:           config.DefaultPolicy(),
		MaxActive:        5_000_000,
	}
}

// DefaultUpdate is the paper's software-update study: Windows Update in
// Verizon, 4 Akamai regions, 2,617 updates, 1.57 million clients over two
// days. File sizes, the service's rate target and the regions' weights
// are assumptions: see README.md.
func DefaultUpdate() Config {
	return Config{
		Mode: Update, Seed: 1, Duration: 48 * time.Hour, Tick: 5 * time.Second,
		Regions:          []Region{{"POP1", 0.35}, {"POP2", 0.25}, {"POP3", 0.2}, {"POP4", 0.2}},
		ISPs:             []ISP{{Name: "Verizon", ASN: 701, Weight: 1, Table: VerizonTable}},
		ArrivalsPerDay:   785_000,
		DiurnalAmplitude: 0.6,
		PeakHour:         14,
		CatalogSize:      2_617,
		ZipfExponent:     1.0,
		VoD:              defaultVoD(),
		Update:           defaultUpdate(),
		UploadFraction:   1,
		Policy:           config.DefaultPolicy(),
		MaxActive:        5_000_000,
	}
}

func defaultVoD() VoDConfig {
	return VoDConfig{BitrateBps: 400e3, MedianLength: 4 * time.Minute, LengthSigma: 0.8, MeanWatch: 3 * time.Minute}
}

func defaultUpdate() UpdateConfig {
	return UpdateConfig{MeanFileBytes: 2.66e6, FileSigma: 0.8, ServiceRateBps: 187e6, MinClientRateBps: 265e3, SharePool: true}
}

// Validate returns every problem with the configuration, each naming its
// field (the command's flag of the same name).
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	positive := func(field string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			bad(field, "must be a positive number (got %g)", v)
		}
	}
	if c.Mode != VoD && c.Mode != Update {
		bad("mode", "must be vod or update (got %q)", c.Mode)
	}
	if c.Tick <= 0 || c.Tick > time.Hour {
		bad("tick", "must be in (0, 1h] (got %s)", c.Tick)
	}
	if c.Duration < c.Tick || c.Duration > 400*24*time.Hour {
		bad("duration", "must be at least one tick and at most 400 days (got %s)", c.Duration)
	}
	if len(c.Regions) == 0 {
		bad("regions", "at least one region is required")
	}
	names := map[string]bool{}
	for i, r := range c.Regions {
		if r.Name == "" || names[r.Name] {
			bad(fmt.Sprintf("regions[%d]", i), "needs a unique name (got %q)", r.Name)
		}
		names[r.Name] = true
		positive(fmt.Sprintf("regions[%d].weight", i), r.Weight)
	}
	if len(c.ISPs) == 0 {
		bad("isps", "at least one ISP is required")
	}
	ispNames := map[string]bool{}
	for i, p := range c.ISPs {
		// Swarm keys carry the ISP's name: two ISPs with one name would
		// be one swarm to the policy and two to the simulator.
		if p.Name == "" || ispNames[p.Name] {
			bad(fmt.Sprintf("isps[%d]", i), "needs a unique name (got %q)", p.Name)
		}
		ispNames[p.Name] = true
		positive(fmt.Sprintf("isps[%d].weight", i), p.Weight)
		if len(p.Table) == 0 {
			bad(fmt.Sprintf("isps[%d].table", i), "needs at least one bandwidth class")
		}
	}
	positive("arrivals-per-day", c.ArrivalsPerDay)
	if !(c.DiurnalAmplitude >= 0 && c.DiurnalAmplitude < 1) {
		bad("diurnal", "must be in [0, 1) (got %g)", c.DiurnalAmplitude)
	}
	if !(c.PeakHour >= 0 && c.PeakHour < 24) {
		bad("peak-hour", "must be in [0, 24) (got %g)", c.PeakHour)
	}
	if c.CatalogSize < 1 || c.CatalogSize > 10_000_000 {
		bad("catalog", "must be in 1..10000000 (got %d)", c.CatalogSize)
	}
	if !(c.ZipfExponent >= 0 && c.ZipfExponent <= 5) {
		bad("zipf", "must be in [0, 5] (got %g)", c.ZipfExponent)
	}
	if !(c.ZipfPlateau >= 0 && c.ZipfPlateau <= 1e6) {
		bad("zipf-plateau", "must be in [0, 1e6] (got %g)", c.ZipfPlateau)
	}
	if !(c.UploadFraction >= 0 && c.UploadFraction <= 1) {
		bad("upload-fraction", "must be in [0, 1] (got %g)", c.UploadFraction)
	}
	if !(c.EdgeCapacityBps >= 0) || math.IsInf(c.EdgeCapacityBps, 0) {
		bad("capacity", "must be a finite number >= 0 (got %g)", c.EdgeCapacityBps)
	}
	switch c.Mode {
	case VoD:
		positive("bitrate", c.VoD.BitrateBps)
		if c.VoD.MedianLength < time.Second {
			bad("length", "must be at least 1s (got %s)", c.VoD.MedianLength)
		}
		if !(c.VoD.LengthSigma >= 0 && c.VoD.LengthSigma <= 5) {
			bad("length-sigma", "must be in [0, 5] (got %g)", c.VoD.LengthSigma)
		}
		if c.VoD.MeanWatch < time.Second {
			bad("watch", "must be at least 1s (got %s)", c.VoD.MeanWatch)
		}
		if c.VoD.Prefetch < 0 || c.VoD.Prefetch > time.Hour {
			bad("prefetch", "must be in [0, 1h] (got %s)", c.VoD.Prefetch)
		}
	case Update:
		positive("file-bytes", c.Update.MeanFileBytes)
		if c.Update.MeanFileBytes > 1<<40 {
			bad("file-bytes", "must be at most 1TiB (got %g)", c.Update.MeanFileBytes)
		}
		if !(c.Update.FileSigma >= 0 && c.Update.FileSigma <= 5) {
			bad("file-sigma", "must be in [0, 5] (got %g)", c.Update.FileSigma)
		}
		positive("service-rate", c.Update.ServiceRateBps)
		positive("min-client-rate", c.Update.MinClientRateBps)
	}
	if c.Surge.Sessions < 0 || c.Surge.Sessions > 10_000_000 {
		bad("surge", "sessions must be in 0..10000000 (got %d)", c.Surge.Sessions)
	}
	if c.Surge.Sessions > 0 {
		if c.Surge.Region < 0 || c.Surge.Region >= len(c.Regions) {
			bad("surge-region", "must name one of the %d regions", len(c.Regions))
		}
		if c.Surge.Item < 0 || c.Surge.Item >= c.CatalogSize {
			bad("surge-item", "must be in 0..%d", c.CatalogSize-1)
		}
		if c.Surge.At < 0 || c.Surge.Over < 0 {
			bad("surge-at", "times must not be negative")
		} else if c.Surge.At >= c.Duration {
			bad("surge-at", "must be before the end of the run (%s) (got %s)", c.Duration, c.Surge.At)
		}
	}
	if c.MaxActive < 1 {
		bad("max-active", "must be at least 1 (got %d)", c.MaxActive)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseRegions parses "NAME:WEIGHT,NAME:WEIGHT,...", or a number N for N
// equal regions named R1..RN.
func ParseRegions(s string) ([]Region, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 1000 {
			return nil, fmt.Errorf("regions: %d must be in 1..1000", n)
		}
		rs := make([]Region, n)
		for i := range rs {
			rs[i] = Region{Name: fmt.Sprintf("R%d", i+1), Weight: 1}
		}
		return rs, nil
	}
	var rs []Region
	for i, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("regions: entry %d %q: want NAME:WEIGHT", i+1, part)
		}
		f, err := strconv.ParseFloat(w, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("regions: entry %d %q: weight must be a positive number", i+1, part)
		}
		rs = append(rs, Region{Name: name, Weight: f})
	}
	if len(rs) > 1000 {
		return nil, fmt.Errorf("regions: at most 1000 (got %d)", len(rs))
	}
	return rs, nil
}

// ParseISPs parses "NAME:ASN:WEIGHT:TABLE,..." with TABLE as ParseTable
// reads it (att, verizon or down/up/percent+...).
func ParseISPs(s string) ([]ISP, error) {
	var out []ISP
	for i, part := range strings.Split(strings.TrimSpace(s), ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 4 || f[0] == "" {
			return nil, fmt.Errorf("isps: entry %d %q: want NAME:ASN:WEIGHT:TABLE", i+1, part)
		}
		asn, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || asn == 0 {
			return nil, fmt.Errorf("isps: entry %d %q: ASN must be a number in 1..4294967295", i+1, part)
		}
		w, err := strconv.ParseFloat(f[2], 64)
		if err != nil || !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("isps: entry %d %q: weight must be a positive number", i+1, part)
		}
		t, err := ParseTable(f[3])
		if err != nil {
			return nil, fmt.Errorf("isps: entry %d: %w", i+1, err)
		}
		out = append(out, ISP{Name: f[0], ASN: uint32(asn), Weight: w, Table: t})
	}
	if len(out) > 100 {
		return nil, fmt.Errorf("isps: at most 100 (got %d)", len(out))
	}
	return out, nil
}
