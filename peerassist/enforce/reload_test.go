package enforce

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/policy"
)

// reloadTraffic is one period of five viewers s0..s4 at x (the period ends
// at x + 2.5s): each 150 kB urgent (its floor for 5 s) and (i+1) x 250 kB
// non-urgent, 0.4 to 2 Mbit/s, 6 Mbit/s in all (EBU 0.6 of 10 Mbit/s).
func reloadTraffic(l *driver, f *fakeCoord, x time.Duration) {
	l.at(x)
	for i := range 5 {
		id := "s" + string(rune('0'+i))
		f.request(id, true, 150_000, "/v/seg.ts")
		f.request(id, false, int64(i+1)*250_000, "/v/seg.ts")
	}
}

// copyDecision keeps a decision past the next tick.
func copyDecision(d *policy.Decision) *policy.Decision {
	c := *d
	c.Sessions = slices.Clone(d.Sessions)
	c.Swarms = slices.Clone(d.Swarms)
	return &c
}

// TestReload: a reloaded policy takes effect at the next tick, what the
// engine learned stays, and limiters follow.
func TestReload(t *testing.T) {
	tests := []struct {
		name    string
		before  func(*Options)
		change  func(p *config.Policy, sites []config.Site) []config.Site
		wantErr string
		check   func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision)
	}{
		{
			name:   "a lower ebu_cap stops sessions at the next tick",
			before: func(o *Options) { o.Policy.EBUCap = 1 },
			change: func(p *config.Policy, s []config.Site) []config.Site { p.EBUCap = 0.4; return s },
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if before.StopK != 0 || after.Cap != 0.4 || after.StopK != 2 {
					t.Fatalf("StopK %d, then %d at cap %g; want 0, then 2 at 0.4", before.StopK, after.StopK, after.Cap)
				}
				if ok, _, reason := f.limiter("s4").Admit(false); ok || !strings.HasPrefix(reason, "stopped_ebu") {
					t.Errorf("s4 non-urgent after the reload: admitted %v (%q), want refused as stopped_ebu", ok, reason)
				}
			},
		},
		{
			name: "a higher edge_capacity_bps lowers EBU",
			change: func(p *config.Policy, s []config.Site) []config.Site {
				p.EdgeCapacityBps = 20_000_000
				return s
			},
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if after.CapacityBps != 20e6 || after.StopK != 0 {
					t.Errorf("capacity %g, StopK %d; want 2e7 and no new stop", after.CapacityBps, after.StopK)
				}
			},
		},
		{
			name: "a site's new bitrate changes floors and limiters",
			change: func(p *config.Policy, s []config.Site) []config.Site {
				s[0].PeerAssist.BitrateBps = 1_000_000
				return s
			},
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if b, a := sessionDecision(before, "s0").FloorBps, sessionDecision(after, "s0").FloorBps; b != 240_000 || a != 1_000_000 {
					t.Errorf("s0 floor %d, then %d; want 240000, then the site's 1000000", b, a)
				}
				if got := f.limiter("s0").(*limiter).limits().floorBytesPerSec; got != 125_000 {
					t.Errorf("s0 limiter floor %g B/s, want 125000", got)
				}
				if sw := after.Swarms[0]; sw.BasicRateBps != 1_000_000 || sw.CurveSamples != 1 {
					t.Errorf("swarm basic rate %g, curve samples %d; want 1000000 and a new curve", sw.BasicRateBps, sw.CurveSamples)
				}
			},
		},
		{
			name: "a lower max_declared_bitrate_bps bounds declared floors",
			before: func(o *Options) {
				o.Policy.MaxDeclaredBitrateBps = 5_000_000
			},
			change: func(p *config.Policy, s []config.Site) []config.Site {
				p.MaxDeclaredBitrateBps = 1_000_000
				return s
			},
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if b, a := sessionDecision(before, "s1").FloorBps, sessionDecision(after, "s1").FloorBps; b != 4_000_000 || a != 1_000_000 {
					t.Errorf("s1 (declares 4 Mbit/s) floor %d, then %d; want 4000000, then 1000000", b, a)
				}
			},
		},
		{
			name: "a site's upload fraction changes budgets and is pushed",
			change: func(p *config.Policy, s []config.Site) []config.Site {
				s[0].PeerAssist.UploadFraction = 0.1
				return s
			},
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if b, a := sessionDecision(before, "s0").UploadBudgetBps, sessionDecision(after, "s0").UploadBudgetBps; b != 1_000_000 || a != 300_000 {
					t.Errorf("s0 upload budget %d, then %d; want 1000000, then 300000", b, a)
				}
				pushed := map[string]int64{}
				for _, p := range f.takePushes() {
					pushed[p.id] = p.p.UploadBudgetBps
				}
				if pushed["s0"] != 300_000 {
					t.Errorf("pushed budgets %v, want s0's 300000", pushed)
				}
			},
		},
		{
			name: "curves and the tick count are kept",
			change: func(p *config.Policy, s []config.Site) []config.Site {
				p.UploadFraction, p.SlurpieK, p.HighRateBps = 0.5, 2, 1_000_000
				return s
			},
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if b, a := before.Swarms[0].CurveSamples, after.Swarms[0].CurveSamples; a != b+1 {
					t.Errorf("curve samples %d, then %d; want one more", b, a)
				}
				if after.Tick != before.Tick+1 {
					t.Errorf("engine tick %d, then %d", before.Tick, after.Tick)
				}
				if p := after.Swarms[0].SlurpieProbability; p != 0.4 {
					t.Errorf("Slurpie probability %g, want 2/5", p)
				}
			},
		},
		{
			name: "invalid: nothing changes",
			change: func(p *config.Policy, s []config.Site) []config.Site {
				p.EBUCap, p.StopHold = 0, config.Duration(time.Second)
				return s
			},
			wantErr: "policy.ebu_cap",
			check: func(t *testing.T, l *driver, f *fakeCoord, before, after *policy.Decision) {
				if after.Cap != 0.4 {
					t.Errorf("cap %g after a refused reload, want 0.4", after.Cap)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCoord()
			f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 5, Incomplete: 5}}
			for i := range 5 {
				s := viewer("s"+string(rune('0'+i)), 64601)
				s.Caps.BitrateBps = int64(i) * 2_000_000 // s1 declares 2 Mbit/s, ...
				if i == 1 {
					s.Caps.BitrateBps = 4_000_000
				}
				f.add(s)
			}
			var opts Options
			l := newTestLoop(t, f, func(o *Options) {
				o.Policy.MaxDeclaredBitrateBps = 0 // declared floors off unless a case says so
				if tt.before != nil {
					tt.before(o)
				}
				opts = *o
			})
			l.tick(0)
			var before *policy.Decision
			for n := 1; n <= 3; n++ {
				reloadTraffic(l, f, time.Duration(n)*5*time.Second-2500*time.Millisecond)
				before = copyDecision(l.tick(time.Duration(n) * 5 * time.Second))
			}
			f.takePushes()
			p := opts.Policy
			sites := tt.change(&p, slices.Clone(opts.Sites))
			err := l.Reload(p, sites)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Reload: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Reload = %v, want an error naming %s", err, tt.wantErr)
			}
			reloadTraffic(l, f, 17500*time.Millisecond)
			after := l.tick(20 * time.Second)
			tt.check(t, l, f, before, after)
		})
	}
}

// limits returns the limiter's current decision.
func (l *limiter) limits() limits {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim
}

// TestReloadJoiners: sessions that appear after a reload, before the next
// tick, get the new floor and tick at once.
func TestReloadJoiners(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 1, Incomplete: 1}}
	l := newTestLoop(t, f, nil)
	opts := Options{Policy: testPolicy(), Sites: []config.Site{config.NewSite("demo", "http://origin.invalid")}}
	opts.Sites[0].PeerAssist.BitrateBps = 3_000_000
	opts.Policy.Tick = config.Duration(2 * time.Second)
	if err := l.Reload(opts.Policy, opts.Sites); err != nil {
		t.Fatal(err)
	}
	f.add(viewer("late", 1))
	got := f.limiter("late").(*limiter).limits()
	if got.floorBytesPerSec != 3_000_000/8 || got.retryAfter != 2*time.Second || got.burst != time.Second {
		t.Errorf("a joiner after the reload: floor %g B/s, retry %s, burst %s; want 375000, 2s, 1s",
			got.floorBytesPerSec, got.retryAfter, got.burst)
	}
}

// TestReloadRestartsTicker: a running loop with a 1h tick ticks at the new
// period after a reload, while requests and reloads race (run with -race).
func TestReloadRestartsTicker(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 1, Incomplete: 1}}
	f.add(viewer("v", 1))
	ticks := make(chan uint64, 64)
	long := testPolicy()
	long.Tick, long.StopHold = config.Duration(time.Hour), config.Duration(time.Hour)
	sites := []config.Site{config.NewSite("demo", "http://origin.invalid")}
	l, err := New(Options{Policy: long, Sites: sites, Coordinator: f, Logger: quiet,
		OnTick: func(d *policy.Decision) {
			select {
			case ticks <- d.Tick:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Start()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				f.request("v", false, 1000, "/v/seg.ts")
				f.add(viewer("w", 1)) // replaced: its limiter is made again
				f.request("w", true, 1000, "/v/seg.ts")
			}
		}
	}()
	select {
	case <-ticks:
		t.Fatal("a 1h loop ticked (the baseline returns no decision)")
	case <-time.After(50 * time.Millisecond):
	}
	fast := long
	fast.Tick, fast.StopHold = config.Duration(20*time.Millisecond), config.Duration(time.Second)
	for range 3 {
		if err := l.Reload(fast, sites); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case <-ticks:
		case <-time.After(10 * time.Second):
			t.Fatal("no tick after the reload to a 20ms period")
		}
	}
	close(stop)
	wg.Wait()
}
