package edge

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
)

// Connection timeouts (limits.read_timeout, write_timeout, idle_timeout).
//
// fasthttp enforces its timeouts with socket deadlines set for every
// request: three per keep-alive request, each a runtime timer update, which
// measured about 9% of the CPU of a 1 KiB hit. The edge gives fasthttp no
// timeouts and enforces them itself: each connection records the phase it
// is in and since when (one atomic store per change, on a clock the sweeper
// keeps), and one sweeper goroutine per server looks at every connection
// each tick and sets the socket deadline of one that overstayed its phase
// in the past, which ends it as fasthttp's own deadline would (a request
// not read in time gets 408 from handleParseError). The timeouts are the
// same as before, only coarser: one fires up to two ticks late, a tick
// being a sixteenth of the shortest timeout (5 ms to 1 s).

// connPhase is where a connection stands; its timeout follows from it.
type connPhase int64

const (
	phaseNew      connPhase = iota // accepted, no request yet: read_timeout
	phaseIdle                      // keep-alive, between requests: idle_timeout
	phaseReading                   // a request's first byte arrived: read_timeout
	phaseHandling                  // the handler runs: no timeout (origin timeouts apply)
	phaseWriting                   // the response is being written: write_timeout
	phaseLinger                    // last response sent, reading until the client closes: lingerTimeout
	phaseExpired                   // timed out: its deadline was set in the past
)

// phaseShift places the phase above the time in connEntry.state.
const phaseShift = 56

// connEntry is one connection on the public listener, for the connection
// limits (connTracker) and the timeouts. Safe for concurrent use: state is
// written by the connection's goroutine and read by the sweeper.
type connEntry struct {
	c     net.Conn // guarded by connTracker.mu (a loop's hand-off changes it)
	ip    netip.Addr
	gen   *generation
	state atomic.Int64 // phase<<phaseShift | since, in the sweeper clock's ms
	// lc is the connection's event loop state while a loop serves it
	// (loop_linux.go), nil while fasthttp does.
	lc atomic.Pointer[lconn]
}

func (e *connEntry) set(p connPhase, nowMs int64) {
	e.state.Store(int64(p)<<phaseShift | nowMs)
}

// timeout is the time a connection may spend in phase p, 0 for none.
func timeout(lim *config.Limits, p connPhase) time.Duration {
	switch p {
	case phaseNew, phaseReading:
		return lim.ReadTimeout.D()
	case phaseIdle:
		return lim.IdleTimeout.D()
	case phaseWriting:
		return lim.WriteTimeout.D()
	case phaseLinger:
		return lingerTimeout
	}
	return 0
}

// sweepTick is the sweeper's period for limits.
func sweepTick(lim *config.Limits) time.Duration {
	shortest := time.Second * 16
	for _, d := range []time.Duration{lim.ReadTimeout.D(), lim.WriteTimeout.D(), lim.IdleTimeout.D()} {
		if d > 0 {
			shortest = min(shortest, d)
		}
	}
	return min(max(shortest/16, 5*time.Millisecond), time.Second)
}

// nowMs is the sweeper's clock: milliseconds since the server was created,
// updated every tick (phase changes read it instead of the system clock).
func (s *Server) nowMs() int64 { return s.clockMs.Load() }

func (s *Server) tickClock() int64 {
	now := time.Since(s.created).Milliseconds()
	s.clockMs.Store(now)
	return now
}

// sweep runs until Shutdown, expiring connections that overstayed their
// phase. Started with the first generation.
func (s *Server) sweep() {
	defer s.sweeperDone.Done()
	tick := sweepTick(&s.tbl.Load().cfg.Limits)
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		select {
		case <-s.sweepStop:
			return
		case <-t.C:
		}
		now := s.tickClock()
		// A phase's start was read from the clock up to a tick before it
		// was stamped: allow a tick more so that none ends early.
		s.conns.expire(now, tick)
		tick = sweepTick(&s.tbl.Load().cfg.Limits)
		t.Reset(tick)
	}
}

// pastDeadline wakes a blocked read or write at once with a timeout error.
var pastDeadline = time.Unix(1, 0)

// expire ends the connections that overstayed their phase.
func (t *connTracker) expire(nowMs int64, tick time.Duration) {
	type candidate struct {
		e  *connEntry
		c  net.Conn
		st int64
	}
	var due []candidate
	t.mu.Lock()
	for _, e := range t.open {
		st := e.state.Load()
		p, since := connPhase(st>>phaseShift), st&(1<<phaseShift-1)
		if d := timeout(&e.gen.limits, p); d > 0 && time.Duration(nowMs-since)*time.Millisecond > d+tick {
			due = append(due, candidate{e, e.c, st})
		}
	}
	t.mu.Unlock()
	for _, d := range due {
		// Only if it is still in the phase that overstayed. The expired
		// state keeps that phase's start: the 408 is timed from it.
		since := d.st & (1<<phaseShift - 1)
		if !d.e.state.CompareAndSwap(d.st, int64(phaseExpired)<<phaseShift|since) {
			continue
		}
		p := connPhase(d.st >> phaseShift)
		switch {
		case d.e.lc.Load() != nil:
			d.e.lc.Load().expire(p)
		case p == phaseWriting:
			d.c.SetWriteDeadline(pastDeadline)
		default:
			d.c.SetReadDeadline(pastDeadline)
		}
	}
}

// entry returns the tracker's entry for a connection of the public
// listener, nil for others (Handler used directly, tests).
func (t *connTracker) entry(c net.Conn) *connEntry {
	if v, ok := t.byConn.Load(c); ok {
		return v.(*connEntry)
	}
	return nil
}

// phaseStart returns when the connection entered its current phase (for
// an expired one, the phase that overstayed), to a sweeper tick; false for
// a connection the tracker does not know.
func (s *Server) phaseStart(e *connEntry) (time.Time, bool) {
	if e == nil {
		return time.Time{}, false
	}
	since := e.state.Load() & (1<<phaseShift - 1)
	return s.created.Add(time.Duration(since) * time.Millisecond), true
}

// markPhase records a phase change of the connection serving ctx.
func (s *Server) markPhase(e *connEntry, p connPhase) {
	if e != nil {
		e.set(p, s.nowMs())
	}
}

// connState follows fasthttp's view of a connection: phases for the
// timeouts, and the connection's slot released once fasthttp is done.
func (s *Server) connState(c net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateActive:
		s.markPhase(s.conns.entry(c), phaseReading)
	case fasthttp.StateIdle:
		s.markPhase(s.conns.entry(c), phaseIdle)
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		s.conns.release(c)
	}
}
