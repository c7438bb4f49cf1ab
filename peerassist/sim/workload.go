package sim

import (
	"math"
	"math/rand/v2"
	"sort"
)

// arrival is one session starting.
type arrival struct {
	region, isp int
	// unannounced: the session fetches from the edge before the
	// coordinator gives it an allowance (part of an Unannounced surge).
	unannounced bool
	downBps     float64
	upBps       float64
	item        int
	// watchSec is how long a VoD viewer watches (VoD only).
	watchSec float64
}

// workload generates the arrivals of a run from its own random source, so
// that every scenario of one seed sees exactly the same sessions.
//
// Not safe for concurrent use.
type workload struct {
	cfg       *Config
	rng       *rand.Rand
	regionW   []float64 // normalized region weights
	ispCDF    []float64
	classCDF  [][]float64 // per ISP
	itemCDF   []float64   // Zipf popularity
	itemSec   []float64   // VoD: each video's length in seconds
	itemBits  []float64   // update: each download's size in bits
	surgeDone int
}

const secondsPerDay = 86400

func newWorkload(cfg *Config) *workload {
	w := &workload{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed_a11))}
	total := 0.0
	for _, r := range cfg.Regions {
		total += r.Weight
	}
	for _, r := range cfg.Regions {
		w.regionW = append(w.regionW, r.Weight/total)
	}
	w.ispCDF = cdf(len(cfg.ISPs), func(i int) float64 { return cfg.ISPs[i].Weight })
	for _, isp := range cfg.ISPs {
		t := isp.Table
		w.classCDF = append(w.classCDF, cdf(len(t), func(i int) float64 { return t[i].Share }))
	}
	w.itemCDF = cdf(cfg.CatalogSize, func(i int) float64 { return math.Pow(float64(i+1)+cfg.ZipfPlateau, -cfg.ZipfExponent) })
	// Item properties come from their own source so that they do not
	// depend on how many arrivals were drawn before.
	items := rand.New(rand.NewPCG(cfg.Seed, 0x17e5))
	switch cfg.Mode {
	case VoD:
		w.itemSec = make([]float64, cfg.CatalogSize)
		for i := range w.itemSec {
			l := cfg.VoD.MedianLength.Seconds() * math.Exp(cfg.VoD.LengthSigma*items.NormFloat64())
			w.itemSec[i] = math.Min(math.Max(l, 30), 3*3600)
		}
	case Update:
		w.itemBits = make([]float64, cfg.CatalogSize)
		mean := 0.0
		for i := range w.itemBits {
			w.itemBits[i] = math.Exp(cfg.Update.FileSigma * items.NormFloat64())
			p := w.itemCDF[i]
			if i > 0 {
				p -= w.itemCDF[i-1]
			}
			mean += p * w.itemBits[i]
		}
		for i := range w.itemBits {
			w.itemBits[i] = math.Max(8*cfg.Update.MeanFileBytes*w.itemBits[i]/mean, 8)
		}
	}
	return w
}

// cdf returns the normalized cumulative distribution of n weights.
func cdf(n int, weight func(int) float64) []float64 {
	c := make([]float64, n)
	s := 0.0
	for i := range c {
		s += weight(i)
		c[i] = s
	}
	for i := range c {
		c[i] /= s
	}
	c[n-1] = 1
	return c
}

func pick(rng *rand.Rand, c []float64) int {
	u := rng.Float64()
	return min(sort.SearchFloat64s(c, u), len(c)-1)
}

// ratePerSecond is the mean arrival rate at time t (seconds from the
// start), with the diurnal modulation.
func (w *workload) ratePerSecond(t float64) float64 {
	c := w.cfg
	hour := math.Mod(t/3600, 24)
	return c.ArrivalsPerDay / secondsPerDay * (1 + c.DiurnalAmplitude*math.Cos(2*math.Pi*(hour-c.PeakHour)/24))
}

// next appends the arrivals of the tick [t, t+dt) to out.
func (w *workload) next(t, dt float64, out []arrival) []arrival {
	rate := w.ratePerSecond(t + dt/2)
	for r, wr := range w.regionW {
		n := poisson(w.rng, rate*dt*wr)
		for range n {
			out = append(out, w.draw(r, pick(w.rng, w.itemCDF)))
		}
	}
	// The surge's sessions arrive evenly over its window.
	if s := w.cfg.Surge; s.Sessions > 0 {
		for w.surgeDone < s.Sessions {
			at := s.At.Seconds()
			if s.Sessions > 1 {
				at += s.Over.Seconds() * float64(w.surgeDone) / float64(s.Sessions)
			}
			if at >= t+dt {
				break
			}
			a := w.draw(s.Region, s.Item)
			a.unannounced = s.Unannounced
			out = append(out, a)
			w.surgeDone++
		}
	}
	return out
}

func (w *workload) draw(region, item int) arrival {
	isp := pick(w.rng, w.ispCDF)
	class := w.cfg.ISPs[isp].Table[pick(w.rng, w.classCDF[isp])]
	a := arrival{region: region, isp: isp, item: item, downBps: class.DownBps, upBps: class.UpBps}
	if w.cfg.Mode == VoD {
		a.watchSec = math.Min(w.itemSec[item], math.Max(1, w.cfg.VoD.MeanWatch.Seconds()*w.rng.ExpFloat64()))
	}
	return a
}

// poisson draws a Poisson variate: Knuth's product method for small means,
// Hörmann's transformed rejection (PTRS) above.
func poisson(rng *rand.Rand, mean float64) int {
	switch {
	case !(mean > 0):
		return 0
	case mean < 30:
		l := math.Exp(-mean)
		k, p := 0, rng.Float64()
		for p > l {
			k++
			p *= rng.Float64()
		}
		return k
	}
	slam, loglam := math.Sqrt(mean), math.Log(mean)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invAlpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + mean + 0.43)
		if us >= 0.07 && v <= vr {
			return int(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invAlpha)-math.Log(a/(us*us)+b) <= -mean+k*loglam-lg {
			return int(k)
		}
	}
}
