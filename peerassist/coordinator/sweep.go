package coordinator

import (
	"time"
)

// closingGrace is how long a socket we sent a close frame may take to close
// its side before we cut it.
const closingGrace = 2 * time.Second

// sweep runs once per sweep interval.
func (co *Coordinator) sweep(now time.Time) {
	clock := co.clock()
	st := co.set.Load()
	timeout := int64(st.peerTimeout)
	pingAfter := timeout / 3
	var pings, dead, cut []*conn
	co.mu.Lock()
	for c := range co.conns {
		quiet := clock - c.lastRecv.Load()
		switch {
		case quiet > timeout:
			dead = append(dead, c)
		case quiet > pingAfter && !c.pinged.Load():
			pings = append(pings, c)
		}
		c.wmu.Lock()
		if c.state == stateClosing && clock-c.closingAt > int64(closingGrace) {
			cut = append(cut, c)
		}
		c.wmu.Unlock()
	}
	// Offers that can no longer be answered.
	nowSec := co.nowSec()
	maxAge := uint32(st.offerMaxAge / time.Second)
	for _, sw := range co.swarms {
		for _, p := range sw.peers {
			if len(p.pending) == 0 {
				p.pending = nil
				continue
			}
			kept := p.pending[:0]
			for _, po := range p.pending {
				if nowSec-po.atSec <= maxAge {
					kept = append(kept, po)
				}
			}
			if len(kept) == 0 {
				p.pending = nil
			} else {
				p.pending = kept
			}
		}
		window := st.cfg.BadChunkWindow.D()
		for id, list := range sw.accused {
			if len(list) == 0 || now.Sub(list[len(list)-1].at) > window {
				delete(sw.accused, id)
			}
		}
		if len(sw.peers) == 0 && len(sw.accused) == 0 {
			delete(co.swarms, sw.key)
		}
	}
	for k, until := range co.bans {
		if now.After(until) {
			delete(co.bans, k)
		}
	}
	co.mu.Unlock()

	// Sessions whose socket has been gone for peer_timeout.
	co.mu.Lock()
	co.sessions.Range(func(id, v any) bool {
		if s := v.(*session); s.c == nil && now.Sub(s.detachedAt) > st.peerTimeout {
			co.sessions.Delete(id)
			co.sessionCount.Add(-1)
		}
		return true
	})
	co.mu.Unlock()

	ping := appendFrame(nil, opPing, nil)
	for _, c := range pings {
		c.pinged.Store(true)
		c.write(ping)
	}
	for _, c := range dead {
		c.kill(closeGoingAway, "no message for peer_timeout", false)
	}
	for _, c := range cut {
		c.kill(closeGoingAway, "", false)
	}
}
