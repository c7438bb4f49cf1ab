package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestTickMatchesReference runs Engine and the reference engine (the
// straightforward first version, reference_test.go) side by side on random
// parameters and observations, tick after tick, and requires the same
// decisions to the last bit: the speed work must not change what the policy
// decides. The observations mix everything the tick treats specially
// (duplicate, empty and unlisted swarm keys, bad counters, seeds, floors,
// clients that mark urgency, ISP and site fractions, ticks without an
// interval, capacity from the observed peak) and push EBU over the cap
// often, with sessions that leave, join and change order between ticks so
// that held stops follow IDs, not positions.
func TestTickMatchesReference(t *testing.T) {
	var seen struct{ stops, held, floorsOverCap, noInterval, measuring, explored int }
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		p := randomParams(rng)
		e, err := NewEngine(p)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ref, err := newRefEngine(p)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		w := newRandomWorkload(rng, 1+rng.IntN(400), 1+rng.IntN(30))
		var got, want Decision
		for k := range 8 {
			obs := w.next(rng, t0.Add(time.Duration(k)*tick))
			e.Tick(&obs, &got)
			ref.Tick(&obs, &want)
			if err := sameDecision(&got, &want); err != nil {
				t.Fatalf("seed %d tick %d: %v", seed, k, err)
			}
			if !w.marksUrgent {
				// checkInvariants expects the floor need in every
				// allowance, which clients that mark urgency do not get.
				if err := checkInvariants(&obs, &got); err != nil {
					t.Fatalf("seed %d tick %d: %v", seed, k, err)
				}
			}
			seen.stops += got.StopK
			seen.held += got.Stopped - got.StopK
			if got.FloorsOverCap {
				seen.floorsOverCap++
			}
			if obs.Interval <= 0 {
				seen.noInterval++
			}
			if got.JoinUnlimited {
				seen.measuring++
			}
			if p.Exploration > 0 && got.HeadroomBps > got.GuaranteeBps {
				seen.explored++
			}
		}
	}
	t.Logf("cases: %+v", seen)
	// The comparison only means something if the special cases happened.
	if seen.stops == 0 || seen.held == 0 || seen.floorsOverCap == 0 || seen.noInterval == 0 || seen.measuring == 0 || seen.explored == 0 {
		t.Errorf("the random runs missed a case: %+v", seen)
	}
}

// sameDecision compares two decisions field by field. Printing with %v
// gives each float64's shortest exact representation, so equal strings
// mean equal bits (and NaN equals NaN).
func sameDecision(got, want *Decision) error {
	g, w := *got, *want
	g.Sessions, g.Swarms, w.Sessions, w.Swarms = nil, nil, nil, nil
	if a, b := fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", w); a != b {
		return fmt.Errorf("decision differs:\n got %s\nwant %s", a, b)
	}
	if len(got.Sessions) != len(want.Sessions) || len(got.Swarms) != len(want.Swarms) {
		return fmt.Errorf("%d sessions, %d swarms; want %d, %d", len(got.Sessions), len(got.Swarms), len(want.Sessions), len(want.Swarms))
	}
	for i := range got.Sessions {
		if a, b := fmt.Sprintf("%+v", got.Sessions[i]), fmt.Sprintf("%+v", want.Sessions[i]); a != b {
			return fmt.Errorf("session %d differs:\n got %s\nwant %s", i, a, b)
		}
	}
	for j := range got.Swarms {
		if a, b := fmt.Sprintf("%+v", got.Swarms[j]), fmt.Sprintf("%+v", want.Swarms[j]); a != b {
			return fmt.Errorf("swarm %d differs:\n got %s\nwant %s", j, a, b)
		}
	}
	return nil
}

func randomParams(rng *rand.Rand) Params {
	p := DefaultParams()
	switch rng.IntN(4) {
	case 0: // the observed peak, warm after a few ticks
		p.EdgeCapacityBps = 0
		p.PeakWarmup = time.Duration(rng.IntN(4)) * tick
	default:
		p.EdgeCapacityBps = float64(1+rng.IntN(200)) * 1e6
	}
	p.EBUCap = 0.05 + 0.95*rng.Float64()
	p.StopHold = time.Duration(rng.IntN(5)) * tick
	p.Exploration = []float64{0, 0.05, 0.2}[rng.IntN(3)]
	p.CurveMemory = 1 + 20*rng.Float64()
	if rng.IntN(2) == 0 {
		p.ISPUploadFractions = map[uint32]float64{1: 0.5, 2: 0, 7: 1, 3215: rng.Float64()}
	}
	if rng.IntN(2) == 0 {
		p.SiteUploadFractions = map[string]float64{"tv": 0.25, "web": rng.Float64()}
		p.SiteBitrateBps = map[string]float64{"tv": 1.5e6, "radio": 0}
	}
	return p
}

// randomWorkload is a population of sessions whose counters change from
// tick to tick; some leave, some join, and the order is shuffled now and
// then.
type randomWorkload struct {
	swarms   []SwarmObs
	keys     []string // session swarm keys to pick from, listed or not
	sessions []SessionObs
	nextID   int
	// marksUrgent: some sessions mark urgent requests.
	marksUrgent bool
}

func newRandomWorkload(rng *rand.Rand, sessions, swarms int) *randomWorkload {
	w := &randomWorkload{marksUrgent: rng.IntN(2) == 0}
	sites := []string{"", "tv", "web", "radio"}
	for j := range swarms {
		key := fmt.Sprint("sw", j)
		w.swarms = append(w.swarms, SwarmObs{
			Key: key, Site: sites[rng.IntN(len(sites))], Video: rng.IntN(2) == 0,
			BitrateBps: int64(rng.IntN(3)) * 500_000,
		})
		w.keys = append(w.keys, key)
	}
	// A duplicate, an empty key, and keys sessions name but nobody lists.
	w.swarms = append(w.swarms, SwarmObs{Key: w.keys[0], BitrateBps: 9e6}, SwarmObs{Key: ""})
	w.keys = append(w.keys, "unlisted-a", "unlisted-b", "")
	for range sessions {
		w.sessions = append(w.sessions, w.newSession(rng))
	}
	return w
}

func (w *randomWorkload) newSession(rng *rand.Rand) SessionObs {
	w.nextID++
	s := SessionObs{
		ID:    fmt.Sprint("id", w.nextID),
		Swarm: w.keys[rng.IntN(len(w.keys))],
		ASN:   []uint32{0, 1, 2, 7, 3215, 64512}[rng.IntN(6)],
		Seed:  rng.IntN(10) == 0, UploadOff: rng.IntN(15) == 0, MarksUrgent: w.marksUrgent && rng.IntN(2) == 0,
	}
	if rng.IntN(3) == 0 {
		// A copy of the key, not the same string: the tick must match
		// swarm keys by value.
		s.Swarm = strings.Clone(s.Swarm)
	}
	if rng.IntN(5) == 0 {
		s.FloorBps = int64(rng.IntN(2_000_000))
	}
	return s
}

func (w *randomWorkload) next(rng *rand.Rand, now time.Time) Observation {
	// Churn: a few leave, a few join; sometimes the order changes.
	for i := 0; i < len(w.sessions); i++ {
		if rng.IntN(20) == 0 {
			w.sessions = append(w.sessions[:i], w.sessions[i+1:]...)
		}
	}
	for range rng.IntN(1 + len(w.sessions)/10) {
		w.sessions = append(w.sessions, w.newSession(rng))
	}
	if rng.IntN(3) == 0 {
		rng.Shuffle(len(w.sessions), func(a, b int) { w.sessions[a], w.sessions[b] = w.sessions[b], w.sessions[a] })
	}
	scale := []float64{0.2, 1, 3}[rng.IntN(3)] // quiet, normal, surge
	for i := range w.sessions {
		s := &w.sessions[i]
		s.EdgeUrgentBytes = bytesFor(scale * float64(rng.IntN(500_000)))
		s.EdgeNonUrgentBytes = bytesFor(scale * float64(rng.IntN(3_000_000)))
		s.PeerBytes = bytesFor(float64(rng.IntN(2_000_000)))
		s.UploadedBytes = bytesFor(float64(rng.IntN(1_000_000)))
		s.DeclaredUploadBps = int64(rng.IntN(4_000_000))
		s.DemandBps = int64(rng.IntN(4_000_000))
		switch rng.IntN(40) {
		case 0: // a bad report
			s.PeerBytes = -1
		case 1: // an absurd demand
			s.DemandBps = 1 << 62
		case 2: // nothing edge-wise
			s.EdgeNonUrgentBytes = 0
		}
	}
	obs := Observation{
		Now: now, Interval: tick, Swarms: w.swarms,
		Sessions: append([]SessionObs(nil), w.sessions...),
	}
	switch rng.IntN(12) {
	case 0:
		obs.Interval = 0
	case 1:
		obs.EdgeEgressBytes = bytesFor(1e9)
	}
	if rng.IntN(2) == 0 {
		// The coordinator lists sessions swarm by swarm.
		sortBySwarm(obs.Sessions)
	}
	return obs
}

func sortBySwarm(ss []SessionObs) {
	// Insertion order within a swarm is kept (a stable sort).
	byKey := map[string][]SessionObs{}
	var order []string
	for _, s := range ss {
		if _, ok := byKey[s.Swarm]; !ok {
			order = append(order, s.Swarm)
		}
		byKey[s.Swarm] = append(byKey[s.Swarm], s)
	}
	ss = ss[:0]
	for _, k := range order {
		ss = append(ss, byKey[k]...)
	}
}
