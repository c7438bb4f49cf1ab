package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of what makes the tick fast: swarm guesses, scratch reuse.

// TestSwarmGuessesAreChecked: whatever order sessions come in from tick to
// tick (the same, shifted, swarm by swarm, random) and however the swarms'
// indices change, each session gets the swarm its key names.
func TestSwarmGuessesAreChecked(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	e := newTestEngine(t, nil)
	keys := make([]string, 40)
	for j := range keys {
		keys[j] = fmt.Sprint("k", j)
	}
	var sessions []SessionObs
	for i := range 3000 {
		sessions = append(sessions, SessionObs{ID: fmt.Sprint(i), Swarm: keys[rng.IntN(len(keys))]})
	}
	var d Decision
	for k := range 40 {
		switch k % 5 {
		case 1: // the first few leave
			sessions = sessions[rng.IntN(5):]
		case 2: // some join in front
			for range rng.IntN(5) {
				sessions = append([]SessionObs{{ID: fmt.Sprint("new", k, len(sessions)), Swarm: keys[rng.IntN(len(keys))]}}, sessions...)
			}
		case 3: // swarm by swarm
			slices.SortStableFunc(sessions, func(a, b SessionObs) int { return strings.Compare(a.Swarm, b.Swarm) })
		case 4:
			rng.Shuffle(len(sessions), func(a, b int) { sessions[a], sessions[b] = sessions[b], sessions[a] })
		}
		// The swarms listed in a new order (new indices), some unlisted.
		obs := Observation{Now: t0.Add(time.Duration(k) * tick), Interval: tick, Sessions: sessions}
		for _, j := range rng.Perm(len(keys))[:30] {
			obs.Swarms = append(obs.Swarms, SwarmObs{Key: strings.Clone(keys[j])})
		}
		e.Tick(&obs, &d)
		for i, s := range obs.Sessions {
			if got := e.info[e.ss[i].swarm].key; got != s.Swarm {
				t.Fatalf("tick %d: session %d of swarm %q put in swarm %q", k, i, s.Swarm, got)
			}
		}
	}
}

// TestTickAllocatesNothing: once its scratch and the decision have grown,
// a tick under the cap allocates nothing (a tick over 1M sessions must not
// allocate per session, nor feed the garbage collector each tick).
func TestTickAllocatesNothing(t *testing.T) {
	e := newTestEngine(t, func(p *Params) { p.EdgeCapacityBps = 1e11 }) // EBU about 0.3
	obs := randomObservation(7, 20_000, 200)
	for i := range obs.Sessions {
		// Demand beyond the headroom, so that the allocation water-fills.
		obs.Sessions[i].DemandBps = 20e6
	}
	var d Decision
	for k := range 3 {
		obs.Now = t0.Add(time.Duration(k) * tick)
		e.Tick(&obs, &d)
	}
	if d.StopK != 0 || d.JoinUnlimited {
		t.Fatalf("want a tick under a known cap: StopK %d, capacity unknown %v", d.StopK, d.JoinUnlimited)
	}
	k := 3
	allocs := testing.AllocsPerRun(5, func() {
		obs.Now = t0.Add(time.Duration(k) * tick)
		k++
		e.Tick(&obs, &d)
	})
	if allocs != 0 {
		t.Errorf("a tick allocates %v times, want 0", allocs)
	}
}
