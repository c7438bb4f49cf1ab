package enforce

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/policy"
)

const kB = 1000

// step is one request to a limiter at a time (seconds from its creation).
type step struct {
	at        float64
	urgent    bool
	bytes     int64 // served when admitted (0: only ask)
	wantOK    bool
	wantRetry time.Duration // checked when refused (0: any)
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func zeroClock() time.Duration { return 0 }

func TestLimiterBuckets(t *testing.T) {
	// 10 kB/s floor and allowance, 1 s burst: the floor bucket holds 40 kB
	// (floorBurst) and may go 80 kB into debt (floorDebt); the allowance
	// bucket holds 10 kB.
	base := limits{floorBytesPerSec: 10 * kB, allowBytesPerSec: 10 * kB, burst: time.Second, retryAfter: 5 * time.Second, reason: "test"}
	tests := []struct {
		name        string
		lim         limits
		steps       []step
		wantUrgent  int64
		wantExtra   int64
		wantRefused int64
	}{
		{
			name: "non-urgent within the allowance, then in debt",
			lim:  base,
			steps: []step{
				{at: 0, bytes: 30 * kB, wantOK: true},     // 10 kB saved: admitted, 20 kB debt
				{at: 1, wantOK: false, wantRetry: sec(1)}, // 10 kB debt left: 1 s
				{at: 2.5, bytes: 1 * kB, wantOK: true},    // +5 kB
			},
			wantExtra: 31 * kB, wantRefused: 1,
		},
		{
			name: "urgent within the floor, debt included",
			lim:  base,
			steps: []step{
				{at: 0, urgent: true, bytes: 100 * kB, wantOK: true}, // 40 saved + 80 debt: all within
				// Floor at -60 kB: an urgent request goes to the allowance.
				{at: 0.1, urgent: true, bytes: 5 * kB, wantOK: true},
				{at: 0.2, urgent: true, bytes: 0, wantOK: true},               // allowance 10-5+1 = 6 kB
				{at: 0.3, bytes: 8 * kB, wantOK: true},                        // 7 kB - 8 kB
				{at: 0.35, urgent: true, wantOK: false, wantRetry: sec(0.05)}, // allowance -0.5 kB
				{at: 7, urgent: true, bytes: 1 * kB, wantOK: true},            // floor -65 + 70: back over 0
			},
			wantUrgent: 101 * kB, wantExtra: 13 * kB, wantRefused: 1,
		},
		{
			name: "urgent beyond floor and debt counts as non-urgent",
			lim:  base,
			steps: []step{
				{at: 0, urgent: true, bytes: 1000 * kB, wantOK: true},
				{at: 0.5, wantOK: false},
			},
			wantUrgent: 120 * kB, wantExtra: 880 * kB, wantRefused: 1,
		},
		{
			name: "stopped: urgent only, Retry-After is the tick",
			lim:  limits{floorBytesPerSec: 10 * kB, retryAfter: 5 * time.Second, reason: "stopped"},
			steps: []step{
				{at: 0, wantOK: false, wantRetry: 5 * time.Second},
				{at: 0, urgent: true, bytes: 40 * kB, wantOK: true},
				{at: 10, wantOK: false, wantRetry: 5 * time.Second},
			},
			wantUrgent: 40 * kB, wantRefused: 2,
		},
		{
			name: "unlimited",
			lim:  limits{floorBytesPerSec: 10 * kB, unlimited: true},
			steps: []step{
				{at: 0, bytes: 10_000 * kB, wantOK: true},
				{at: 0, bytes: 10_000 * kB, wantOK: true},
				{at: 0, urgent: true, bytes: 10 * kB, wantOK: true},
			},
			wantUrgent: 10 * kB, wantExtra: 20_000 * kB,
		},
		{
			name: "a huge response's debt is bounded",
			lim:  base,
			steps: []step{
				{at: 0, bytes: 1 << 40, wantOK: true},
				{at: 0, wantOK: false, wantRetry: allowDebtBursts * time.Second},
				{at: allowDebtBursts + 0.01, wantOK: true},
			},
			wantExtra: 1 << 40, wantRefused: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter("s", tt.lim, zeroClock)
			for i, s := range tt.steps {
				ok, retry, reason := l.admitAt(sec(s.at), s.urgent)
				if ok != s.wantOK {
					t.Fatalf("step %d (%+v): admitted %v, want %v", i, s, ok, s.wantOK)
				}
				if !ok {
					if reason != tt.lim.reason {
						t.Errorf("step %d: reason %q, want %q", i, reason, tt.lim.reason)
					}
					if s.wantRetry > 0 && (retry < s.wantRetry-time.Millisecond || retry > s.wantRetry+time.Millisecond) {
						t.Errorf("step %d: retry after %v, want %v", i, retry, s.wantRetry)
					}
					if retry <= 0 {
						t.Errorf("step %d: retry after %v, want > 0", i, retry)
					}
					continue
				}
				l.servedAt(sec(s.at), "/x", s.bytes, s.urgent)
			}
			c := l.counters()
			if c.urgentBytes != tt.wantUrgent || c.extraBytes != tt.wantExtra || c.refusals != tt.wantRefused {
				t.Errorf("counters = %+v, want urgent %d extra %d refusals %d", c, tt.wantUrgent, tt.wantExtra, tt.wantRefused)
			}
		})
	}
}

func TestLimiterSet(t *testing.T) {
	l := newLimiter("s", limits{floorBytesPerSec: 10 * kB, unlimited: true}, zeroClock)
	l.servedAt(0, "/a", 1<<30, false)
	// Leaving the unlimited state starts with a full burst.
	l.set(0, limits{floorBytesPerSec: 10 * kB, burst: time.Second, allowBytesPerSec: 20 * kB, retryAfter: time.Second})
	if ok, _, _ := l.admitAt(0, false); !ok {
		t.Fatal("refused right after leaving the unlimited state")
	}
	l.servedAt(0, "/a", 20*kB, false)
	if ok, _, _ := l.admitAt(0, false); ok {
		t.Fatal("admitted after spending the burst")
	}
	// Saved-up allowance is lost when the allowance drops to 0.
	l.set(sec(10), limits{floorBytesPerSec: 10 * kB, burst: time.Second, allowBytesPerSec: 20 * kB})
	l.set(sec(10), limits{floorBytesPerSec: 10 * kB, retryAfter: 3 * time.Second})
	if ok, retry, _ := l.admitAt(sec(10), false); ok || retry != 3*time.Second {
		t.Errorf("after the allowance dropped to 0: admitted %v, retry %v; want refused for 3s", ok, retry)
	}
	// A debt survives a new allowance (an urgent response admitted on
	// the floor and charged beyond it makes one).
	l.set(sec(10), limits{floorBytesPerSec: 10 * kB, burst: time.Second, allowBytesPerSec: 1 * kB})
	l.servedAt(sec(10), "/a", 5*kB, false) // nothing saved: 5 kB debt
	if ok, retry, _ := l.admitAt(sec(10), false); ok || retry != 5*time.Second {
		t.Errorf("in debt: admitted %v retry %v, want refused for 5s", ok, retry)
	}
	l.set(sec(10), limits{floorBytesPerSec: 10 * kB, burst: time.Second, allowBytesPerSec: 100 * kB})
	if ok, retry, _ := l.admitAt(sec(10), false); ok || retry != 50*time.Millisecond {
		t.Errorf("in debt after a raise: admitted %v retry %v, want refused for 50ms", ok, retry)
	}
}

func TestLimiterFlags(t *testing.T) {
	l := newLimiter("s", limits{floorBytesPerSec: 1, unlimited: true}, zeroClock)
	if l.marksUrgent.Load() || l.media.Load() {
		t.Fatal("flags set on a new limiter")
	}
	l.servedAt(0, "/file.bin?x=1.ts", 10, false)
	if l.media.Load() {
		t.Error("a query's extension made the session media")
	}
	l.admitAt(0, true)
	l.servedAt(0, "/live/seg-7.TS?token=1", 10, true)
	if !l.marksUrgent.Load() || !l.media.Load() {
		t.Errorf("marksUrgent %v media %v after an urgent segment, want both", l.marksUrgent.Load(), l.media.Load())
	}
}

func TestIsMedia(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"/v/master.m3u8", true},
		{"/v/720p/seg00042.ts?pa_urgent=1", true},
		{"/dash/manifest.mpd", true},
		{"/dash/chunk-1.m4s", true},
		{"/movie.MP4", true},
		{"/bytes/1048576", false},
		{"/update.bin", false},
		{"/dir.ts/file", false},
		{"/noext", false},
		{"", false},
		{"/a.ts#frag", true},
		{".", false},
	}
	for _, tt := range tests {
		if got := isMedia(tt.url); got != tt.want {
			t.Errorf("isMedia(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

// TestLimiterConcurrent hammers one limiter from many goroutines while the
// loop changes its limits (run with -race): every byte is counted once.
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter("s", limits{floorBytesPerSec: 1e6, allowBytesPerSec: 1e6, burst: time.Second}, monotonic)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	var admitted sync.Map
	for w := range workers {
		wg.Go(func() {
			n := 0
			for i := range each {
				urgent := i%3 == 0
				if ok, _, _ := l.Admit(urgent); ok {
					l.Served("/seg.ts", 1000, urgent)
					n++
				}
			}
			admitted.Store(w, n)
		})
	}
	wg.Go(func() {
		for i := range 100 {
			l.set(monotonic(), limits{floorBytesPerSec: 1e6, allowBytesPerSec: float64(i) * 1e4, retryAfter: time.Second, reason: "r"})
		}
	})
	wg.Wait()
	total := int64(0)
	admitted.Range(func(_, v any) bool { total += int64(v.(int)); return true })
	c := l.counters()
	if got := c.urgentBytes + c.extraBytes; got != total*1000 {
		t.Errorf("counted %d bytes, served %d", got, total*1000)
	}
	if total+c.refusals != workers*each {
		t.Errorf("%d admitted + %d refused != %d requests", total, c.refusals, workers*each)
	}
}

func TestReasonText(t *testing.T) {
	for _, tt := range []struct {
		code policy.ReasonCode
		want string
	}{
		{policy.ReasonStopped, "stopped_ebu: the edge is over its EBU cap"},
		{policy.ReasonStopHeld, "stop_held: the edge is over its EBU cap"},
		{policy.ReasonFloorsOverCap, "floors_over_cap: the edge serves floors only"},
		{policy.ReasonAllocated, "allocated: over the edge allowance"},
	} {
		got := reasonText(tt.code)
		if !strings.HasPrefix(got, tt.want) || strings.ContainsAny(got, "\r\n") {
			t.Errorf("reasonText(%v) = %q, want it to start with %q on one line", tt.code, got, tt.want)
		}
	}
}

// TestLimiterConcurrentUrgent: urgent requests admitted together on one
// positive floor balance are charged as they are served; what goes beyond
// the floor and its debt is floor debt too, so a stopped session's urgent
// rate averages its floor (QA saw 4 parallel 256 KiB requests every few
// seconds keep the EBU over the cap).
func TestLimiterConcurrentUrgent(t *testing.T) {
	lim := limits{floorBytesPerSec: 10 * kB, retryAfter: 5 * time.Second, reason: "stopped"}
	l := newLimiter("s", lim, zeroClock)
	for i := range 4 {
		if ok, _, _ := l.admitAt(0, true); !ok {
			t.Fatalf("urgent request %d at once refused", i)
		}
	}
	for range 4 {
		l.servedAt(0, "/seg.ts", 100*kB, true)
	}
	// The first response is within the floor (40 kB saved, 60 kB debt);
	// the other three are beyond it, and the floor bucket carries them
	// down to its bound (30 s of floor, 300 kB).
	c := l.counters()
	if c.urgentBytes != 100*kB || c.extraBytes != 300*kB {
		t.Errorf("urgent %d, extra %d bytes; want %d, %d", c.urgentBytes, c.extraBytes, 100*kB, 300*kB)
	}
	if ok, _, _ := l.admitAt(sec(29), true); ok {
		t.Error("urgent request admitted 29 s after a 400 kB burst on a 10 kB/s floor")
	}
	if ok, _, _ := l.admitAt(sec(30.5), true); !ok {
		t.Error("urgent request refused once the floor paid the debt")
	}
}

// TestShortOfFloor: a floor violation is a refusal of what the session
// needed while it received less than its floor over the recent ticks, not
// over one tick.
func TestShortOfFloor(t *testing.T) {
	const floorBps = 240_000
	tick := 5 * time.Second
	perTick := int64(floorBps / 8 * 5) // bytes at the floor in one tick
	tests := []struct {
		name          string
		marksUrgent   bool
		got           []int64 // bytes received per tick, oldest first
		refused       int64
		urgentRefused int64
		want          bool
	}{
		{"refused urgent, starved", true, []int64{0, 0, perTick / 2}, 3, 3, true},
		{"refused urgent after a burst", true, []int64{6 * perTick, 0, 0}, 3, 3, false},
		{"refused non-urgent only, marks urgent", true, []int64{0, 0, 0}, 5, 0, false},
		{"refused, does not mark urgent, starved", false, []int64{0, perTick / 2}, 2, 0, true},
		{"not refused", true, []int64{0, 0, 0}, 0, 0, false},
		{"at the floor", true, []int64{perTick, perTick, perTick}, 1, 1, false},
	}
	for _, tt := range tests {
		var ss sessionState
		var got bool
		for i, b := range tt.got {
			ss.refused, ss.urgentRefused = 0, 0
			if i == len(tt.got)-1 {
				ss.refused, ss.urgentRefused = tt.refused, tt.urgentRefused
			}
			o := policy.SessionObs{EdgeUrgentBytes: b, MarksUrgent: tt.marksUrgent}
			got = ss.shortOfFloor(&o, tick, floorBps)
		}
		if got != tt.want {
			t.Errorf("%s: short of floor %v, want %v", tt.name, got, tt.want)
		}
	}
}
