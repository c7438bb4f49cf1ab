package coordinator

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// urgencyGate is edge.UrgencyGate's method set (edge/hooks.go).
type urgencyGate interface {
	sessionGate
	ServedUrgent(sessionID, site, url string, bytes int64, urgent bool)
}

var _ urgencyGate = (*Coordinator)(nil)

// recLimiter records what it is told and refuses non-urgent requests once
// it was served more than limit bytes.
type recLimiter struct {
	mu     sync.Mutex
	limit  int64
	served []servedCall
	total  int64
}

type servedCall struct {
	url    string
	bytes  int64
	urgent bool
}

func (l *recLimiter) Admit(urgent bool) (bool, time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if urgent || l.total <= l.limit {
		return true, 0, ""
	}
	return false, 3 * time.Second, "test-limit"
}

func (l *recLimiter) Served(url string, bytes int64, urgent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.served = append(l.served, servedCall{url, bytes, urgent})
	l.total += bytes
}

func TestLimiters(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	sw := ih("limiters")
	a := e.mustDial("127.1.0.1")
	ra := a.join(sw)
	b := e.mustDial("127.1.0.2")
	rb := b.join(sw)

	// Without limiters the SetAdmission hook decides.
	e.co.SetAdmission(func(SessionInfo, bool) (bool, time.Duration, string) { return false, time.Second, "hook" })
	if ok, _, reason := e.co.Admit(ra.Session, false); ok || reason != "hook" {
		t.Errorf("Admit with the hook = %v %q, want refused by the hook", ok, reason)
	}

	// An installed Limiter takes precedence and sees served bytes with
	// their urgency.
	la := &recLimiter{limit: 1000}
	if err := e.co.SetLimiter(ra.Session, la); err != nil {
		t.Fatal(err)
	}
	if err := e.co.SetLimiter("nope", la); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("SetLimiter(unknown) = %v, want ErrUnknownSession", err)
	}
	if ok, _, _ := e.co.Admit(ra.Session, false); !ok {
		t.Error("Admit with a fresh limiter refused")
	}
	e.co.ServedUrgent(ra.Session, "video", "/seg1.ts", 800, true)
	e.co.Served(ra.Session, "video", "/seg2.ts", 700)
	e.co.ServedUrgent(ra.Session, "video", "/zero.ts", 0, true) // nothing served: not counted
	want := []servedCall{{"/seg1.ts", 800, true}, {"/seg2.ts", 700, false}}
	la.mu.Lock()
	got := append([]servedCall(nil), la.served...)
	la.mu.Unlock()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("limiter saw %+v, want %+v", got, want)
	}
	if ok, retry, reason := e.co.Admit(ra.Session, false); ok || retry != 3*time.Second || reason != "test-limit" {
		t.Errorf("Admit over the limit = %v %v %q, want refused by the limiter", ok, retry, reason)
	}
	if ok, _, _ := e.co.Admit(ra.Session, true); !ok {
		t.Error("urgent Admit refused")
	}
	if info, _ := e.co.Session(ra.Session); info.EdgeServedBytes != 1500 {
		t.Errorf("EdgeServedBytes = %d, want 1500", info.EdgeServedBytes)
	}

	// The factory gives sessions without a limiter one, once.
	var made []string
	var mu sync.Mutex
	lb := &recLimiter{limit: -1}
	e.co.SetLimiterFactory(func(s SessionInfo) Limiter {
		mu.Lock()
		defer mu.Unlock()
		made = append(made, s.ID)
		return lb
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { e.co.Admit(rb.Session, true) })
	}
	wg.Wait()
	if ok, _, reason := e.co.Admit(rb.Session, false); ok || reason != "test-limit" {
		t.Errorf("Admit(b) = %v %q, want refused by the factory's limiter", ok, reason)
	}
	mu.Lock()
	if len(made) == 0 || made[0] != rb.Session {
		t.Errorf("factory calls %v, want at least one for %s", made, rb.Session)
	}
	mu.Unlock()
	e.co.Served(rb.Session, "video", "/x", 10)
	lb.mu.Lock()
	if len(lb.served) != 1 {
		t.Errorf("factory limiter saw %d Served calls, want 1", len(lb.served))
	}
	lb.mu.Unlock()
	// A's own limiter is untouched by the factory.
	if ok, _, reason := e.co.Admit(ra.Session, false); ok || reason != "test-limit" {
		t.Errorf("Admit(a) after the factory = %v %q", ok, reason)
	}

	// Removing a limiter: the factory makes a new one on the next request.
	if err := e.co.SetLimiter(ra.Session, nil); err != nil {
		t.Fatal(err)
	}
	e.co.Admit(ra.Session, false)
	mu.Lock()
	if made[len(made)-1] != ra.Session {
		t.Errorf("after removal the factory was not asked for a's limiter: %v", made)
	}
	mu.Unlock()

	// Unknown sessions are admitted whatever is installed.
	if ok, _, _ := e.co.Admit("unknown", false); !ok {
		t.Error("Admit(unknown) refused")
	}
	e.co.SetLimiterFactory(nil)
	e.co.SetAdmission(nil)
}

// TestSeedState follows a peer through announces: "left" decides whether
// it is a seed (0) or a leech (more than 0) at every announce, an absent
// "left" keeps what it was, and "completed" without "left" makes a seed. A
// peer that once said left 0 and then wants bytes again is a leech (was: a
// seed for ever, which the policy loop refused every non-urgent fetch).
func TestSeedState(t *testing.T) {
	left := func(n int64) func(*signal.Request) { return func(r *signal.Request) { r.Left = n } }
	type step struct {
		ev   signal.Event
		mod  func(*signal.Request)
		seed bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"leech then completed", []step{{signal.EventStarted, nil, false}, {signal.EventCompleted, left(0), true}}},
		{"seed then wants bytes", []step{{signal.EventStarted, left(0), true}, {signal.EventUpdate, left(5_000_000), false}}},
		{"completed then wants bytes", []step{{signal.EventStarted, left(100), false}, {signal.EventCompleted, left(0), true},
			{signal.EventUpdate, left(1), false}, {signal.EventUpdate, left(0), true}}},
		{"absent left keeps the state", []step{{signal.EventStarted, left(0), true}, {signal.EventUpdate, nil, true},
			{signal.EventUpdate, left(7), false}, {signal.EventUpdate, nil, false}}},
		{"completed without left", []step{{signal.EventStarted, nil, false}, {signal.EventCompleted, nil, true}}},
		{"left wins over completed", []step{{signal.EventStarted, nil, false}, {signal.EventCompleted, left(10), false}}},
	}
	e := startEdge(t, testConfig(), nil)
	for i, tt := range tests {
		sw := ih(fmt.Sprintf("seed-state-%d", i))
		a := e.mustDial(fmt.Sprintf("127.1.0.%d", i+1))
		scraper := e.mustDial(fmt.Sprintf("127.1.1.%d", i+1))
		for j, st := range tt.steps {
			a.announce(sw, st.ev, 0, 0, st.mod)
			r := a.mustRecv(signal.KindAnnounce)
			wantC, wantI := int64(0), int64(1)
			if st.seed {
				wantC, wantI = 1, 0
			}
			if r.Complete != wantC || r.Incomplete != wantI {
				t.Errorf("%s, step %d: announce reply complete %d incomplete %d, want %d and %d", tt.name, j, r.Complete, r.Incomplete, wantC, wantI)
			}
			if info, _ := e.co.Session(r.Session); info.Seed != st.seed {
				t.Errorf("%s, step %d: SessionInfo.Seed = %v, want %v", tt.name, j, info.Seed, st.seed)
			}
			scraper.send(&signal.Request{Action: signal.ActionScrape, InfoHashes: []signal.ID{sw}})
			if f := scraper.mustRecv(signal.KindScrape).Files; len(f) != 1 || f[0].Complete != wantC || f[0].Incomplete != wantI {
				t.Errorf("%s, step %d: scrape %+v, want complete %d incomplete %d", tt.name, j, f, wantC, wantI)
			}
		}
	}
}

// TestSeedInEverySwarm: a session is a seed only when it needs nothing in
// any of its swarms, whichever it announced to last.
func TestSeedInEverySwarm(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	a := e.mustDial("127.1.0.1")
	seeding, fetching := ih("seeding"), ih("fetching")
	a.announce(seeding, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Left = 0 })
	sid := a.mustRecv(signal.KindAnnounce).Session
	if info, _ := e.co.Session(sid); !info.Seed {
		t.Error("a seed of its only swarm is not a seed")
	}
	a.announce(fetching, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Left = 1 << 20 })
	a.mustRecv(signal.KindAnnounce)
	a.announce(seeding, signal.EventUpdate, 0, 0, func(r *signal.Request) { r.Left = 0 })
	a.mustRecv(signal.KindAnnounce)
	if info, _ := e.co.Session(sid); info.Seed || info.Swarm.InfoHash != seeding {
		t.Errorf("seeding one swarm, fetching another, last announce to the first: Seed %v (swarm %q), want a leech", info.Seed, info.Swarm.InfoHash)
	}
	a.announce(fetching, signal.EventCompleted, 0, 0, func(r *signal.Request) { r.Left = 0 })
	a.mustRecv(signal.KindAnnounce)
	if info, _ := e.co.Session(sid); !info.Seed {
		t.Error("complete in both swarms: not a seed")
	}
}

// BenchmarkAdmit compares the admission paths on the HTTP hot path, with
// every goroutine asking about its own session: a Limiter (lock-free
// lookup, per-session state) and the SetAdmission hook (a snapshot under
// the coordinator's lock). In the "busy" variants another goroutine takes
// the coordinator's lock as the policy tick's snapshot (Sessions) does,
// over and over with 100µs pauses, as announces and the tick do in
// production.
func BenchmarkAdmit(b *testing.B) {
	co, err := New(Options{Config: testConfig(), Locator: LocatorFunc(fakeLocate), NoEpoll: true})
	if err != nil {
		b.Fatal(err)
	}
	defer co.Close()
	const n = 1024
	ids := make([]string, n)
	for i := range ids {
		s := &session{id: newSessionID(), started: time.Now()}
		co.sessions.Store(s.id, s)
		co.sessionCount.Add(1)
		ids[i] = s.id
	}
	run := func(b *testing.B, busy bool) {
		if busy {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					co.Sessions()
					time.Sleep(100 * time.Microsecond)
				}
			})
			defer func() { close(stop); wg.Wait() }()
		}
		b.ReportAllocs()
		var next sync.Mutex
		k := 0
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			next.Lock()
			id := ids[k%n]
			k++
			next.Unlock()
			for pb.Next() {
				co.Admit(id, false)
			}
		})
	}
	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "", true: "/busy"}[busy]
		b.Run("hook"+name, func(b *testing.B) {
			co.SetAdmission(func(SessionInfo, bool) (bool, time.Duration, string) { return true, 0, "" })
			defer co.SetAdmission(nil)
			run(b, busy)
		})
		b.Run("limiter"+name, func(b *testing.B) {
			for _, id := range ids {
				co.SetLimiter(id, admitAll{})
			}
			defer func() {
				for _, id := range ids {
					co.SetLimiter(id, nil)
				}
			}()
			run(b, busy)
		})
	}
}

type admitAll struct{}

func (admitAll) Admit(bool) (bool, time.Duration, string) { return true, 0, "" }
func (admitAll) Served(string, int64, bool)               {}
