package coordinator

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/peerassist/edgebox/edge/rawsock"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// Connection write states.
const (
	stateOpen     = iota
	stateClosing  // close frame queued; waiting for the client's close or EOF
	stateDead     // shut down; the reader will release it
	stateReleased // fd closed, removed from the coordinator
)

// conn is one signaling WebSocket. In epoll mode (p != nil) its reads run on
// its poller's goroutine; in goroutine mode (nc != nil) on a goroutine of
// its own. Writes may come from any goroutine. Not usable as a zero value.
type conn struct {
	co       *Coordinator
	id       uint64
	ip       netip.Addr
	loc      region.Locality
	eligible bool      // located in the region this box serves; guarded by Coordinator.mu once registered
	origin   string    // the browser's Origin, "" for native clients
	host     string    // the Host of the upgrade request
	site     *siteInfo // guarded by Coordinator.mu once registered
	opened   time.Time

	// Guarded by Coordinator.mu.
	sess         *session
	peers        []*peer
	lastInfoHash signal.ID

	// Read side: only the reading goroutine touches these.
	rbuf   []byte // a partial frame
	frag   []byte // a fragmented message being assembled
	fragOp byte
	tokens float64
	tokAt  int64 // nanoseconds since the coordinator started

	lastRecv atomic.Int64 // nanoseconds since the coordinator started
	pinged   atomic.Bool

	// Write side.
	wmu       sync.Mutex
	state     int         // guarded by wmu; set with setStateLocked
	notOpen   atomic.Bool // state != stateOpen, for lock-free isOpen
	fd        int         // epoll mode; -1 otherwise or once released
	p         *poller     // epoll mode
	nc        net.Conn    // goroutine mode: reads and writes
	raw       net.Conn    // goroutine mode: the socket under nc, to close it
	out       []byte      // bytes waiting for the socket
	wantOut   bool        // EPOLLOUT armed
	closingAt int64       // when stateClosing began
	closeHard bool        // goroutine mode: close, not half-close, once the close frame is out
	wake      chan struct{}
}

// isOpen reports whether the connection is open (no close begun). It
// takes no lock: routing asks it of every candidate peer.
func (c *conn) isOpen() bool { return !c.notOpen.Load() }

// setStateLocked moves the connection to state s (a later one: states
// only advance). Called with wmu held.
func (c *conn) setStateLocked(s int) {
	c.state = s
	c.notOpen.Store(s != stateOpen)
}

// clock returns nanoseconds since the coordinator started (monotonic).
func (co *Coordinator) clock() int64 { return int64(time.Since(co.start)) }

// write sends one complete frame, or queues it when the socket is full.
// A socket whose queue exceeds max_send_queue_bytes is shut down: its
// reader is too slow to keep up.
func (c *conn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state != stateOpen {
		return
	}
	c.writeLocked(b)
}

func (c *conn) writeLocked(b []byte) {
	if c.p != nil && len(c.out) == 0 {
		n, err := rawsock.Send(c.fd, b)
		if n == len(b) {
			return
		}
		if err != nil && !rawsock.IsTemporary(err) {
			c.shutdownLocked()
			return
		}
		b = b[max(n, 0):]
	}
	c.queueLocked(b)
}

// writeFrames sends several complete frames with one system call (epoll
// mode), queueing what the socket does not take. ss is the caller's.
func (c *conn) writeFrames(frames [][]byte, ss *rawsock.Scratch) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state != stateOpen {
		return
	}
	if c.p == nil || len(c.out) > 0 || len(frames) == 1 {
		for _, f := range frames {
			if c.state != stateOpen {
				return
			}
			c.writeLocked(f)
		}
		return
	}
	n, err := ss.SendBuffers(c.fd, frames)
	if err != nil && !rawsock.IsTemporary(err) {
		c.shutdownLocked()
		return
	}
	n = max(n, 0)
	for _, f := range frames {
		if n >= len(f) {
			n -= len(f)
			continue
		}
		c.queueLocked(f[n:])
		n = 0
		if c.state != stateOpen {
			return
		}
	}
}

// queueLocked keeps b for when the socket can take it. A socket whose
// queue exceeds max_send_queue_bytes is shut down: its reader is too slow
// to keep up.
func (c *conn) queueLocked(b []byte) {
	if len(c.out)+len(b) > int(c.co.set.Load().cfg.MaxSendQueueBytes) {
		c.co.tel.reject(reasonSlowReader)
		c.co.log.Warn("peerassist: closing a signaling socket whose reader is too slow",
			"client.address", c.ip.String(), "queued_bytes", len(c.out)+len(b))
		c.shutdownLocked()
		return
	}
	c.out = append(c.out, b...)
	if c.p != nil {
		if !c.wantOut {
			c.wantOut = true
			c.p.watchWrite(c, true)
		}
	} else {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// flush writes queued bytes (epoll mode, on EPOLLOUT).
func (c *conn) flush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fd < 0 || c.state == stateReleased || c.state == stateDead {
		return
	}
	for len(c.out) > 0 {
		n, err := rawsock.Send(c.fd, c.out)
		if n > 0 {
			c.out = c.out[n:]
			continue
		}
		if err != nil && !rawsock.IsTemporary(err) {
			c.shutdownLocked()
			return
		}
		return // EAGAIN: wait for the next EPOLLOUT
	}
	c.out = nil
	if c.wantOut {
		c.wantOut = false
		c.p.watchWrite(c, false)
	}
	if c.state == stateClosing {
		shutdownWrite(c.fd)
	}
}

// kill closes the connection with a close frame. Graceful waits for the
// client to close its side (Shutdown); otherwise the socket is shut down at
// once and released by its reader.
func (c *conn) kill(code int, reason string, graceful bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.state != stateOpen {
		if !graceful && c.state == stateClosing {
			c.shutdownLocked()
		}
		return
	}
	frame := appendFrame(make([]byte, 0, 4+2+len(reason)), opClose, closePayload(code, reason))
	if c.p != nil {
		if len(c.out) == 0 {
			n, _ := rawsock.Send(c.fd, frame)
			frame = frame[max(n, 0):]
		}
		if !graceful {
			c.shutdownLocked()
			return
		}
		c.out = append(c.out, frame...)
		c.setStateLocked(stateClosing)
		c.closingAt = c.co.clock()
		if len(c.out) == 0 {
			c.out = nil
			shutdownWrite(c.fd)
		} else if !c.wantOut {
			c.wantOut = true
			c.p.watchWrite(c, true)
		}
		return
	}
	// Goroutine mode: the writer sends what is queued, then closes (or,
	// graceful, half-closes and lets the client close).
	c.out = append(c.out, frame...)
	c.setStateLocked(stateClosing)
	c.closeHard = !graceful
	c.closingAt = c.co.clock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shutdownLocked stops the socket in both directions; the reader then sees
// EOF and releases the connection.
func (c *conn) shutdownLocked() {
	if c.state == stateDead || c.state == stateReleased {
		return
	}
	c.setStateLocked(stateDead)
	c.out = nil
	if c.p != nil {
		shutdownBoth(c.fd)
	} else if c.nc != nil {
		c.raw.Close()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// release frees the socket and removes the connection from the
// coordinator. Only the reading goroutine calls it (or Close, once the
// loops have stopped). Idempotent.
func (c *conn) release() {
	c.wmu.Lock()
	if c.state == stateReleased {
		c.wmu.Unlock()
		return
	}
	c.setStateLocked(stateReleased)
	c.out = nil
	if c.p != nil {
		c.p.remove(c)
		closeFD(c.fd)
		c.fd = -1
	}
	if c.nc != nil {
		c.raw.Close()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.wmu.Unlock()
	c.rbuf, c.frag = nil, nil
	c.co.onClosed(c)
}

// invalidText closes a connection that sent a text message that is not
// UTF-8, with 1007 as RFC 6455 (8.1) asks.
func (c *conn) invalidText() {
	c.co.tel.reject(reasonProtocol)
	c.kill(closeInvalidData, "text message is not valid UTF-8", false)
}

// onBytes consumes bytes read from the socket: it parses frames, answers
// control frames and hands complete messages to the coordinator. It
// returns false when the connection must be released now.
func (c *conn) onBytes(h *handlerCtx, data []byte) bool {
	maxMsg := int(c.co.set.Load().cfg.MaxMessageBytes)
	// The frames of one read arrived together: one clock reading.
	now := c.co.clock()
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		data = c.rbuf
	}
	for {
		f, ok, ferr := parseFrame(data, maxMsg)
		if ferr != nil {
			c.co.tel.reject(reasonProtocol)
			if ferr.code == closeTooBig {
				c.co.tel.reject(reasonTooBig)
			}
			c.kill(ferr.code, ferr.reason, false)
			return false
		}
		if !ok || len(data) < f.hdrLen+f.payload {
			break
		}
		payload := data[f.hdrLen : f.hdrLen+f.payload]
		unmask(payload, f.mask)
		data = data[f.hdrLen+f.payload:]
		c.lastRecv.Store(now)
		c.pinged.Store(false)
		switch f.op {
		case opText, opBinary:
			if c.frag != nil {
				c.kill(closeProtocolError, "new message inside a fragmented one", false)
				return false
			}
			if !f.fin {
				c.frag = append(make([]byte, 0, 2*len(payload)), payload...)
				c.fragOp = f.op
				continue
			}
			if f.op == opText && !utf8.Valid(payload) {
				c.invalidText()
				return false
			}
			if !c.message(h, payload, now) {
				return false
			}
		case opContinuation:
			if c.frag == nil {
				c.kill(closeProtocolError, "continuation without a message", false)
				return false
			}
			if len(c.frag)+len(payload) > maxMsg {
				c.co.tel.reject(reasonTooBig)
				c.kill(closeTooBig, "message too big", false)
				return false
			}
			c.frag = append(c.frag, payload...)
			if f.fin {
				msg := c.frag
				c.frag = nil
				if c.fragOp == opText && !utf8.Valid(msg) {
					c.invalidText()
					return false
				}
				if !c.message(h, msg, now) {
					return false
				}
			}
		case opPing:
			c.write(appendFrame(make([]byte, 0, 2+len(payload)), opPong, payload))
		case opPong:
		case opClose:
			code := closeNormal
			if len(payload) >= 2 {
				code = int(payload[0])<<8 | int(payload[1])
				if code < 1000 || code == 1004 || code == 1005 || code == 1006 || (code > 1014 && code < 3000) || code > 4999 {
					code = closeProtocolError
				}
			} else if len(payload) == 1 {
				code = closeProtocolError
			}
			c.kill(code, "", false)
			return false
		}
	}
	if len(data) == 0 {
		c.rbuf = nil
	} else {
		c.rbuf = append(c.rbuf[:0], data...)
	}
	c.wmu.Lock()
	st := c.state
	c.wmu.Unlock()
	return st == stateOpen || st == stateClosing
}

// message applies the rate limit and handles one complete message. It
// returns false when the connection must be released.
func (c *conn) message(h *handlerCtx, msg []byte, now int64) bool {
	if !c.isOpen() {
		return true // closing: drain and ignore
	}
	cfg := &c.co.set.Load().cfg
	burst := float64(cfg.MessageBurst)
	c.tokens = min(burst, c.tokens+float64(now-c.tokAt)*cfg.MessagesPerSecond/1e9)
	c.tokAt = now
	if c.tokens < 1 {
		c.tokens--
		c.co.tel.reject(reasonRateLimited)
		if c.tokens <= -burst {
			c.co.log.Warn("peerassist: closing a signaling socket that keeps flooding", "client.address", c.ip.String())
			c.co.tel.reject(reasonAbusive)
			// The replies and refusals queued so far go out before the
			// close frame, and the socket is closed gracefully: the rest
			// of the flood is read and dropped until the client answers
			// the close (or the sweeper cuts it). Closing a socket with
			// unread input makes the kernel reset the connection, and the
			// client would lose every reply and the close frame (1006).
			h.flush()
			c.kill(closePolicy, "rate limit exceeded", true)
			return true
		}
		h.failure(c, signal.ActionAnnounce, nil, "rate limit exceeded: at most "+formatRate(cfg.MessagesPerSecond)+" messages per second")
		h.endMessage()
		return true
	}
	c.tokens--
	if !c.co.handleMessage(c, h, msg) {
		// Malformed: costs more, so garbage floods close sooner.
		c.tokens -= malformedCost - 1
	}
	h.endMessage()
	return true
}

// malformedCost is how many tokens a malformed message costs.
const malformedCost = 5
