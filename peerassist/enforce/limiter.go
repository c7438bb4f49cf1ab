package enforce

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerassist/edgebox/peerassist/coordinator"
)

// limits are what a tick decided for one session: the rates its limiter
// enforces until the next tick.
type limits struct {
	// floorBytesPerSec is the session's floor: urgent requests within it
	// are always served.
	floorBytesPerSec float64
	// allowBytesPerSec is its non-urgent allowance; ignored when unlimited.
	allowBytesPerSec float64
	unlimited        bool
	// burst is how much of its allowance the session may save up
	// (Options.Burst).
	burst time.Duration
	// retryAfter is the Retry-After of a refusal while the allowance is 0
	// (the next tick may change it).
	retryAfter time.Duration
	// reason is the refusal's reason (X-PA-Reason and the 429's body).
	reason string
}

// Bucket sizes, in seconds of the bucket's rate. The allowance bucket saves
// up at most Options.Burst; the floor bucket more, because whole segments
// (2-10 s of video) are asked for at once.
const (
	// floorBurst is what an idle viewer's floor bucket saves up.
	floorBurst = 4 * time.Second
	// floorDebt is how far one urgent response may overdraw the floor
	// bucket and still count as within the floor: a response is admitted
	// on any positive balance and its size is only known once served.
	floorDebt = 8 * time.Second
	// floorMaxDebt bounds the floor bucket's debt. Urgent bytes beyond
	// the floor (several urgent requests admitted at once on one positive
	// balance, each charged when served) are debited from it too: a
	// stopped session's urgent rate then averages its floor, instead of
	// the bucket recovering in seconds while the excess went unnoticed
	// into the allowance's bounded debt (QA: 4 parallel 256 KiB urgent
	// requests a few seconds apart kept the EBU over the cap).
	floorMaxDebt = 30 * time.Second
	// allowDebtBursts bounds the allowance bucket's debt (in bursts): a
	// huge response admitted on a small balance must not lock a session
	// out for hours; the policy sees the bytes and corrects at the next
	// tick.
	allowDebtBursts = 15
)

// limiter enforces one session's decision on its HTTP requests to the edge
// with two token buckets over body bytes: the floor bucket, refilled at the
// session's floor, admits urgent requests; the allowance bucket, refilled
// at its non-urgent allowance, admits the rest (and urgent ones beyond the
// floor). A request is admitted while the bucket's balance is positive and
// its bytes are charged once served (their count is not known before), so a
// balance may go negative: the debt delays the next request.
//
// It also counts what it served, split as the policy wants it: urgent
// bytes within the floor, and the rest.
//
// A limiter is safe for concurrent use: each session has its own mutex, so
// requests of different sessions never wait for each other. Create it with
// newLimiter; the zero value is not usable.
type limiter struct {
	id    string
	born  uint64               // the loop's tick count when it was made
	clock func() time.Duration // monotonic; tests drive their own

	mu           sync.Mutex
	lim          limits
	floorBytes   float64 // floor bucket balance, bytes
	allowBytes   float64 // allowance bucket balance, bytes
	lastRefillAt time.Duration

	// Counters read by the loop, cumulative since the limiter was made.
	urgentBytes   atomic.Int64 // urgent and within the floor
	extraBytes    atomic.Int64 // everything else
	refusals      atomic.Int64
	urgentRefused atomic.Int64 // urgent requests refused (beyond the floor)
	// marksUrgent: the client has marked a request urgent, so it keeps
	// its floor on the urgent path (policy.SessionObs.MarksUrgent).
	marksUrgent atomic.Bool
	// media: it fetched video or audio (playlists, segments).
	media atomic.Bool
}

var _ coordinator.Limiter = (*limiter)(nil)

// epoch is the origin of the limiters' monotonic clock.
var epoch = time.Now()

func monotonic() time.Duration { return time.Since(epoch) }

func newLimiter(id string, lim limits, clock func() time.Duration) *limiter {
	l := &limiter{id: id, lim: lim, clock: clock, lastRefillAt: clock()}
	l.floorBytes = lim.floorBytesPerSec * floorBurst.Seconds()
	if !lim.unlimited {
		l.allowBytes = lim.allowBytesPerSec * lim.burst.Seconds()
	}
	return l
}

// Admit implements coordinator.Limiter.
func (l *limiter) Admit(urgent bool) (bool, time.Duration, string) {
	return l.admitAt(l.clock(), urgent)
}

// Served implements coordinator.Limiter. Charging needs no clock (the
// next Admit refills): reading it costs more than the rest of the call on
// some virtual machines.
func (l *limiter) Served(url string, bytes int64, urgent bool) {
	l.servedAt(-1, url, bytes, urgent)
}

func (l *limiter) admitAt(now time.Duration, urgent bool) (bool, time.Duration, string) {
	if urgent {
		l.marksUrgent.Store(true)
	}
	l.mu.Lock()
	l.refill(now)
	lim := &l.lim
	if (urgent && l.floorBytes > 0) || lim.unlimited || l.allowBytes > 0 {
		l.mu.Unlock()
		return true, 0, ""
	}
	retry := lim.retryAfter
	if lim.allowBytesPerSec > 0 {
		retry = secondsToDuration(-l.allowBytes / lim.allowBytesPerSec)
	}
	if urgent && lim.floorBytesPerSec > 0 {
		retry = min(retry, secondsToDuration(-l.floorBytes/lim.floorBytesPerSec))
	}
	reason := lim.reason
	l.mu.Unlock()
	l.refusals.Add(1)
	if urgent {
		l.urgentRefused.Add(1)
	}
	return false, max(retry, time.Millisecond), reason
}

// servedAt charges a served response; now < 0 skips the refill.
func (l *limiter) servedAt(now time.Duration, url string, bytes int64, urgent bool) {
	if bytes <= 0 {
		return
	}
	if !l.media.Load() && isMedia(url) {
		l.media.Store(true)
	}
	b := float64(bytes)
	within := 0.0
	l.mu.Lock()
	if now >= 0 {
		l.refill(now)
	}
	lim := &l.lim
	if urgent && l.floorBytes > 0 {
		// Admitted on the floor: as much as the floor bucket can take,
		// debt included, is urgent within the floor.
		within = math.Min(b, l.floorBytes+lim.floorBytesPerSec*floorDebt.Seconds())
		l.floorBytes -= within
	}
	if urgent && b > within && lim.floorBytesPerSec > 0 {
		// Urgent beyond the floor: the bucket carries it as debt, so the
		// next urgent request waits until the floor has paid for it.
		l.floorBytes = math.Max(l.floorBytes-(b-within), -lim.floorBytesPerSec*floorMaxDebt.Seconds())
	}
	if extra := b - within; extra > 0 && !lim.unlimited {
		l.allowBytes = math.Max(l.allowBytes-extra, -lim.allowBytesPerSec*lim.burst.Seconds()*allowDebtBursts)
	}
	l.mu.Unlock()
	w := int64(within)
	l.urgentBytes.Add(w)
	l.extraBytes.Add(bytes - w)
}

// refill adds what the rates earned since the last refill. Called with
// l.mu held.
func (l *limiter) refill(now time.Duration) {
	dt := (now - l.lastRefillAt).Seconds()
	if dt <= 0 {
		return
	}
	l.lastRefillAt = now
	l.floorBytes = math.Min(l.floorBytes+l.lim.floorBytesPerSec*dt, l.lim.floorBytesPerSec*floorBurst.Seconds())
	if !l.lim.unlimited {
		l.allowBytes = math.Min(l.allowBytes+l.lim.allowBytesPerSec*dt, l.lim.allowBytesPerSec*l.lim.burst.Seconds())
	}
}

// set installs a new decision. The buckets keep their balances (debt
// included), within the new sizes: a session whose allowance dropped to 0
// has nothing saved up, one that leaves the unlimited state starts with a
// full burst.
func (l *limiter) set(now time.Duration, lim limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	wasUnlimited := l.lim.unlimited
	l.lim = lim
	l.floorBytes = math.Min(l.floorBytes, lim.floorBytesPerSec*floorBurst.Seconds())
	l.floorBytes = math.Max(l.floorBytes, -lim.floorBytesPerSec*floorMaxDebt.Seconds())
	switch {
	case lim.unlimited:
		l.allowBytes = 0
	case wasUnlimited:
		l.allowBytes = lim.allowBytesPerSec * lim.burst.Seconds()
	default:
		capBytes := lim.allowBytesPerSec * lim.burst.Seconds()
		l.allowBytes = math.Max(math.Min(l.allowBytes, capBytes), -capBytes*allowDebtBursts)
	}
}

// counters is what the loop reads of a limiter at each tick.
type counters struct {
	urgentBytes, extraBytes, refusals, urgentRefused int64
}

func (l *limiter) counters() counters {
	return counters{l.urgentBytes.Load(), l.extraBytes.Load(), l.refusals.Load(), l.urgentRefused.Load()}
}

func secondsToDuration(s float64) time.Duration {
	switch {
	case !(s > 0):
		return 0
	case s > 24*3600:
		return 24 * time.Hour
	default:
		return time.Duration(s * float64(time.Second))
	}
}

// mediaExtensions are the file types of streams (HLS, DASH, progressive):
// a swarm whose sessions fetch them is a video swarm (CloudTracker's
// high-demand class needs it).
var mediaExtensions = []string{".m3u8", ".mpd", ".ts", ".m4s", ".mp4", ".m4v", ".m4a", ".cmfv", ".cmfa", ".aac", ".webm", ".mkv"}

// isMedia reports whether a request's path and query names a stream file.
func isMedia(url string) bool {
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		url = url[:i]
	}
	dot := strings.LastIndexByte(url, '.')
	if dot < 0 || strings.IndexByte(url[dot:], '/') >= 0 {
		return false
	}
	ext := url[dot:]
	for _, m := range mediaExtensions {
		if strings.EqualFold(ext, m) {
			return true
		}
	}
	return false
}
