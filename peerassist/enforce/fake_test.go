package enforce

import (
	"slices"
	"sync"

	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// fakeCoord is a coordinator whose sessions and swarms a test crafts. It
// behaves as the real one at the seam: unknown sessions are errors,
// pushes to detached sessions fail with ErrNotConnected, the limiter
// factory makes a session's limiter on its first request. Safe for
// concurrent use.
type fakeCoord struct {
	mu       sync.Mutex
	order    []string
	sessions map[string]*coordinator.SessionInfo
	swarms   []coordinator.SwarmInfo
	limiters map[string]coordinator.Limiter
	factory  coordinator.NewLimiterFunc
	atBudget map[string]bool
	pushes   []pushed
	// vanish lists sessions forgotten right after the next snapshot (they
	// vanish between the loop's snapshot and its actions).
	vanish []string
}

type pushed struct {
	id string
	p  signal.Policy
}

func newFakeCoord() *fakeCoord {
	return &fakeCoord{sessions: map[string]*coordinator.SessionInfo{}, limiters: map[string]coordinator.Limiter{},
		atBudget: map[string]bool{}}
}

// add adds (or replaces) a session.
func (f *fakeCoord) add(s coordinator.SessionInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[s.ID]; !ok {
		f.order = append(f.order, s.ID)
	}
	f.sessions[s.ID] = &s
}

// update changes a session in place.
func (f *fakeCoord) update(id string, fn func(*coordinator.SessionInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.sessions[id])
}

func (f *fakeCoord) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(id)
}

func (f *fakeCoord) removeLocked(id string) {
	delete(f.sessions, id)
	delete(f.limiters, id)
	f.order = slices.DeleteFunc(f.order, func(s string) bool { return s == id })
}

// limiter returns the session's limiter as the coordinator finds it for a
// request: the installed one, or one from the factory.
func (f *fakeCoord) limiter(id string) coordinator.Limiter {
	f.mu.Lock()
	s := f.sessions[id]
	l := f.limiters[id]
	fac := f.factory
	f.mu.Unlock()
	if s == nil {
		return nil
	}
	if l == nil && fac != nil {
		if l = fac(*s); l != nil {
			f.mu.Lock()
			if cur := f.limiters[id]; cur != nil {
				l = cur
			} else {
				f.limiters[id] = l
			}
			f.mu.Unlock()
		}
	}
	return l
}

// request is the edge serving one request of a session: Admit, then
// Served with bytes when admitted. Unknown sessions are admitted.
func (f *fakeCoord) request(id string, urgent bool, bytes int64, url string) bool {
	l := f.limiter(id)
	if l == nil {
		return true
	}
	ok, _, _ := l.Admit(urgent)
	if !ok {
		return false
	}
	f.mu.Lock()
	if s := f.sessions[id]; s != nil {
		s.EdgeServedBytes += bytes
	}
	f.mu.Unlock()
	l.Served(url, bytes, urgent)
	return true
}

func (f *fakeCoord) takePushes() []pushed {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pushes
	f.pushes = nil
	return p
}

func (f *fakeCoord) Sessions() []coordinator.SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]coordinator.SessionInfo, 0, len(f.order))
	for _, id := range f.order {
		s := *f.sessions[id]
		if p, ok := f.atBudget[id]; ok {
			s.AtUploadBudget = p
		}
		out = append(out, s)
	}
	for _, id := range f.vanish {
		f.removeLocked(id)
	}
	f.vanish = nil
	return out
}

func (f *fakeCoord) Swarms() []coordinator.SwarmInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.swarms)
}

func (f *fakeCoord) SetLimiter(id string, l coordinator.Limiter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions[id] == nil {
		return coordinator.ErrUnknownSession
	}
	if l == nil {
		delete(f.limiters, id)
	} else {
		f.limiters[id] = l
	}
	return nil
}

func (f *fakeCoord) SetLimiterFactory(fn coordinator.NewLimiterFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.factory = fn
}

func (f *fakeCoord) SetUploadBudgetReached(id string, at bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions[id] == nil {
		return coordinator.ErrUnknownSession
	}
	f.atBudget[id] = at
	return nil
}

func (f *fakeCoord) PushPolicy(id string, p signal.Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	if s == nil {
		return coordinator.ErrUnknownSession
	}
	if !s.Connected {
		return coordinator.ErrNotConnected
	}
	f.pushes = append(f.pushes, pushed{id, p})
	return nil
}
