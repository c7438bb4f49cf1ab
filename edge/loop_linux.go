//go:build linux

package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/peerassist/edgebox/edge/cpuload"
	"github.com/peerassist/edgebox/edge/rawsock"
)

// Event loops (event_loops in the configuration).
//
// fasthttp serves each connection on a goroutine of its own: every
// keep-alive request parks the goroutine in the runtime's poller and wakes
// it, reads until EAGAIN, and makes its reads and writes through the
// runtime's system-call bookkeeping, which keeps sysmon waking every 20 µs
// to retake Ps from threads in long writes. For cache hits that is most of
// what the edge spends besides the kernel's own work (edge/bench/README.md).
//
// An event loop serves many connections from one goroutine instead, as
// nginx's workers do: one epoll set (level-triggered), raw non-blocking
// reads and sends (package rawsock), one read per request. Requests are
// parsed with fasthttp's request header parser into a RequestCtx and run
// through the same handler (serveInline): whatever the loop can answer
// without waiting (a hit in the memory tier, a 304, a refusal) it answers
// at once, the response header serialized by fasthttp and the body sent
// from the store's chunk buffers with one sendmsg. A request that would
// wait (a miss, a revalidation, a pass, a body on disk, a route) goes to a
// goroutine of its own (serveAway), which writes its response through the
// runtime's poller as fasthttp would, and then gives the connection back
// to its loop. Requests the loop does not parse itself (with a body, an
// Upgrade, HTTP/1.0) move the connection to fasthttp for good. An Expect
// on a request without a body is ignored (there is nothing to continue).
//
// A loop that runs out of events sleeps in epoll_wait, and the next
// request wakes it. When no CPU is idle (package cpuload), that wakeup
// preempts whichever thread runs on the CPU: under load each sleep costs
// two context switches, and the loop, having slept, wins the CPU from
// threads that were using it. So a busy loop (its last batch had
// yieldMinEvents or more ready connections) on saturated CPUs first
// yields its CPU once and looks again; usually requests have come
// meanwhile and it goes on without sleeping. Otherwise it sleeps at once:
// with an idle CPU the wakeup lands there, and a loop with few active
// connections has clients waiting on it one request at a time, whose
// latency a yield would add to (measured with 2 connections: 35% fewer
// requests/s when loops yielded after every batch, 13-24% fewer at 2-4
// connections when they yielded whenever the CPUs were saturated).
// Figures in edge/bench/README.md.
//
// Timeouts are the sweeper's (timeouts.go): a connection's phase is kept
// in its connEntry as for fasthttp's connections, and an expired one is
// answered or closed by its loop.

// loopsSupported: this platform has event loops.
const loopsSupported = true

// loopSet is the server's event loops.
type loopSet struct {
	s     *Server
	loops []*evLoop
	next  atomic.Uint32
	yield atomic.Pointer[yieldPolicy]
	// running counts the loops' goroutines, away the requests served on
	// goroutines of their own.
	running sync.WaitGroup
	away    sync.WaitGroup
}

// loopOp is work posted to a loop from another goroutine.
type loopOp struct {
	c     *lconn
	kind  int
	phase connPhase // opExpire: the phase that overstayed
}

const (
	opAdd    = iota // a new connection
	opResume        // back from a goroutine: serve what it has buffered, watch it again
	opClose         // back from a goroutine, to be closed
	opLinger        // back from a goroutine after its last response (linger)
	opExpire        // timed out (sweeper)
	opStop          // Shutdown
)

// evLoop is one event loop: its epoll set, its connections and the
// scratch its requests are parsed and answered with. Everything but mu's
// queue belongs to the loop's goroutine.
type evLoop struct {
	ls   *loopSet
	s    *Server
	epfd int
	efd  int // eventfd: posted work is waiting

	mu    sync.Mutex
	queue []loopOp

	conns     map[int32]*lconn
	awayN     int // connections of this loop served on goroutines
	stopping  bool
	rbuf      []byte
	ctx       *fasthttp.RequestCtx
	src       bytes.Reader
	br        *bufio.Reader
	bw        *bufio.Writer // over vw: serializes body streams
	hostCheck fasthttp.URI
	vw        outWriter
	send      rawsock.Scratch
}

// lconn is one client connection of a loop.
type lconn struct {
	loop *evLoop
	fd   int
	// key is the accepted connection, closed once its socket was
	// duplicated into fd: the connTracker's key, and the ctx's Conn for
	// requests answered on the loop (addresses only).
	key net.Conn
	e   *connEntry

	in      []byte   // received, not yet parsed
	out     [][]byte // to send; parts alias the store's chunks or hdr
	sent    int      // out's parts sent whole
	hdr     []byte   // response header (and small bodies) being sent
	watchW  bool     // EPOLLOUT armed: out waits for room
	closing bool     // close once out is sent
	// lastCopied: out's last part is the end of hdr (outWriter).
	lastCopied bool
	// lingering: the last response is sent and the writing side shut
	// down; lingered counts the bytes read and dropped since.
	lingering bool
	lingered  int

	// away: a goroutine serves a request (the loop does not watch fd);
	// nc is its connection to the socket, for the write timeout.
	away atomic.Bool
	nc   atomic.Pointer[net.TCPConn]
}

var slash = []byte("/")

// loopReadBytes is the size of each loop's read buffer.
const loopReadBytes = 64 << 10

// loopRefBytes: a body part at least this long is sent from where it is
// (a chunk of the store); a shorter one is copied after the header.
const loopRefBytes = 16 << 10

func newLoopSet(s *Server, n int) (*loopSet, error) {
	ls := &loopSet{s: s}
	for range n {
		l, err := newEvLoop(ls)
		if err != nil {
			for _, l := range ls.loops {
				unix.Close(l.efd)
				unix.Close(l.epfd)
			}
			return nil, err
		}
		ls.loops = append(ls.loops, l)
	}
	ls.yield.Store(&yieldPolicy{
		cpu:       cpuload.New(cpuload.DefaultInterval, cpuload.DefaultMaxIdle),
		minEvents: yieldMinEvents,
	})
	for _, l := range ls.loops {
		ls.running.Add(1)
		go l.run()
	}
	return ls, nil
}

func newEvLoop(ls *loopSet) (*evLoop, error) {
	epfd, efd, err := rawsock.NewEpoll()
	if err != nil {
		return nil, err
	}
	l := &evLoop{ls: ls, s: ls.s, epfd: epfd, efd: efd, conns: map[int32]*lconn{},
		rbuf: make([]byte, loopReadBytes), ctx: new(fasthttp.RequestCtx)}
	l.br = bufio.NewReaderSize(&l.src, 4096)
	l.bw = bufio.NewWriterSize(&l.vw, 4096)
	return l, nil
}

// add gives c, registered in the tracker as e, to a loop. It returns
// false, c untouched, when c's socket cannot be taken (not TCP).
func (ls *loopSet) add(c net.Conn, e *connEntry) bool {
	fd, err := rawsock.Dup(c)
	if err != nil {
		return false
	}
	// The duplicate keeps the socket open: closing c only takes it out
	// of the runtime's poller.
	c.Close()
	l := ls.loops[int(ls.next.Add(1))%len(ls.loops)]
	lc := &lconn{loop: l, fd: fd, key: c, e: e}
	e.lc.Store(lc)
	l.post(loopOp{c: lc, kind: opAdd})
	return true
}

// stop makes the loops close their idle connections and end once the
// rest have closed; it returns when they have, or when ctx ends.
func (ls *loopSet) stop(ctx context.Context) error {
	for _, l := range ls.loops {
		l.post(loopOp{kind: opStop})
	}
	done := make(chan struct{})
	go func() {
		ls.away.Wait()
		ls.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post queues op for the loop and wakes it.
func (l *evLoop) post(op loopOp) {
	l.mu.Lock()
	l.queue = append(l.queue, op)
	l.mu.Unlock()
	rawsock.Wake(l.efd)
}

func (l *evLoop) run() {
	defer l.ls.running.Done()
	defer func() {
		unix.Close(l.efd)
		unix.Close(l.epfd)
	}()
	events := make([]unix.EpollEvent, 256)
	var ops []loopOp
	last := 0
	for {
		if l.stopping && len(l.conns) == 0 && l.awayN == 0 {
			return
		}
		n, err := l.wait(events, last)
		last = n
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Not expected with valid descriptors; end every connection
			// rather than spin.
			l.s.log.Error("edge: epoll_wait failed; event loop stops", "error", err)
			for _, c := range l.conns {
				l.close(c)
			}
			return
		}
		for i := range n {
			ev := &events[i]
			if int(ev.Fd) == l.efd {
				var b [8]byte
				_, _ = unix.Read(l.efd, b[:])
				l.mu.Lock()
				ops, l.queue = l.queue, ops[:0]
				l.mu.Unlock()
				for _, op := range ops {
					l.do(op)
				}
				clear(ops)
				continue
			}
			if c := l.conns[ev.Fd]; c != nil {
				l.ready(c, ev.Events)
			}
		}
		// Let the runtime's other goroutines (fills, the sweeper,
		// requests on goroutines) run on this P between batches.
		runtime.Gosched()
	}
}

// yieldPolicy: when a loop yields before it sleeps. A test replaces it.
type yieldPolicy struct {
	cpu       interface{ Saturated() bool } // the CPUs are saturated
	minEvents int                           // and the last batch had this many events
}

// yieldMinEvents: a loop yields before sleeping only after a batch of at
// least this many events (and with the CPUs saturated): see "A loop that
// runs out of events" above. A loop serving 2-3 active connections never
// yields; under load batches of 4 and more are common (64 connections over
// two loops: 35-42% of the batches).
const yieldMinEvents = 4

// wait returns the loop's ready events, blocking until there are some;
// last is the number of events of the loop's previous batch.
func (l *evLoop) wait(events []unix.EpollEvent, last int) (int, error) {
	n, err := rawsock.EpollWaitNow(l.epfd, events)
	if n == 0 && err == nil {
		if y := l.ls.yield.Load(); last >= y.minEvents && y.cpu.Saturated() {
			rawsock.Yield()
			n, err = rawsock.EpollWaitNow(l.epfd, events)
		}
	}
	if n == 0 && err == nil {
		n, err = unix.EpollWait(l.epfd, events, -1)
	}
	return n, err
}

// ready serves c's events. A bug must cost one connection, not the
// process and every connection on it.
func (l *evLoop) ready(c *lconn, events uint32) {
	defer func() {
		if r := recover(); r != nil {
			l.s.log.Error("edge: panic on an event loop", "panic", r, "stack", string(debug.Stack()))
			if c.fd >= 0 && l.conns[int32(c.fd)] == c {
				l.close(c)
			}
		}
	}()
	if events&unix.EPOLLOUT != 0 {
		l.flush(c)
		if c.fd < 0 {
			return // closed
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 && !c.watchW {
		l.readable(c)
	}
}

// do carries out work posted to the loop.
func (l *evLoop) do(op loopOp) {
	c := op.c
	defer func() {
		if r := recover(); r != nil {
			l.s.log.Error("edge: panic on an event loop", "panic", r, "stack", string(debug.Stack()))
			if c != nil && c.fd >= 0 && l.conns[int32(c.fd)] == c {
				l.close(c)
			}
		}
	}()
	switch op.kind {
	case opAdd:
		l.watch(c)
	case opResume:
		l.awayN--
		if !l.watch(c) {
			return
		}
		l.s.markPhase(c.e, phaseIdle)
		if len(c.in) > 0 {
			// Requests that came with the one served away.
			l.process(c, c.in)
		}
	case opClose:
		l.awayN--
		l.closeFD(c)
	case opLinger:
		l.awayN--
		if l.watch(c) {
			l.linger(c)
		}
	case opExpire:
		if l.conns[int32(c.fd)] != c || c.away.Load() {
			return // closed, or its request is being served
		}
		if connPhase(c.e.state.Load()>>phaseShift) != phaseExpired {
			return // it moved on in time
		}
		switch op.phase {
		case phaseNew, phaseReading:
			// As fasthttp does when its read deadline passes: 408.
			l.answerUnreadable(c, errReadTimeout)
		default:
			l.close(c)
		}
	case opStop:
		// Idle connections close now; one with a response on its way
		// closes once it is sent; one with part of a request gets its
		// answer with Connection: close (respond), read_timeout permitting.
		l.stopping = true
		for _, c := range l.conns {
			switch {
			case len(c.out) > 0:
				c.closing = true
			case len(c.in) == 0:
				l.close(c)
			}
		}
	}
}

// watch adds c (new, or back from a goroutine) to the loop's epoll set,
// or closes it when the loop stops or epoll_ctl fails; it reports whether
// c is watched.
func (l *evLoop) watch(c *lconn) bool {
	if l.stopping {
		l.closeFD(c)
		return false
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
		l.s.log.Warn("edge: epoll_ctl add", "error", err)
		l.closeFD(c)
		return false
	}
	l.conns[int32(c.fd)] = c
	return true
}

// errReadTimeout is the read timeout of a request on a loop.
var errReadTimeout = os.ErrDeadlineExceeded

// readable reads what c has and serves the requests complete in it.
func (l *evLoop) readable(c *lconn) {
	n, err := rawsock.Read(c.fd, l.rbuf)
	switch {
	case n > 0:
	case n == 0 && err == nil:
		// EOF. Part of a request is answered 400, as fasthttp does: the
		// client may still read (it shut down its writing side only).
		if len(c.in) > 0 && !c.closing {
			l.answerUnreadable(c, io.ErrUnexpectedEOF)
			return
		}
		l.close(c)
		return
	case rawsock.IsTemporary(err), errors.Is(err, unix.EINTR):
		return
	default:
		l.close(c)
		return
	}
	data := l.rbuf[:n]
	if c.lingering {
		// Dropped: the connection's last response is sent.
		if c.lingered += n; c.lingered > lingerMaxBytes {
			l.close(c)
		}
		return
	}
	if c.closing {
		return // a response with Connection: close is on its way: nothing more is read
	}
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	l.process(c, data)
}

// process serves the complete requests at the start of data and keeps the
// rest in c.in. data is l.rbuf or c.in.
func (l *evLoop) process(c *lconn, data []byte) {
	maxHeader := int(c.e.gen.limits.MaxHeaderBytes)
	for len(data) > 0 {
		if c.closing {
			data = nil // Connection: close was answered: nothing after it is
			break
		}
		if c.away.Load() || len(c.out) > 0 {
			break // the rest waits for the connection to be free
		}
		// Empty lines before a request line are ignored (RFC 9112 2.2),
		// as fasthttp does.
		for len(data) > 0 && (data[0] == '\n' || data[0] == '\r' && (len(data) == 1 || data[1] == '\n')) {
			data = data[1:]
		}
		if len(data) == 0 {
			break
		}
		end := headerEnd(data)
		if end < 0 {
			if len(data) > maxHeader {
				l.answerUnreadable(c, &fasthttp.ErrSmallBuffer{})
				return
			}
			if st := c.e.state.Load(); connPhase(st>>phaseShift) != phaseReading {
				l.s.markPhase(c.e, phaseReading) // the request's first bytes
			}
			break
		}
		if end > maxHeader {
			l.answerUnreadable(c, &fasthttp.ErrSmallBuffer{})
			return
		}
		ctx := l.ctx
		ctx.Request.Reset()
		ctx.Response.Reset()
		if l.br.Size() < end {
			l.br = bufio.NewReaderSize(&l.src, end)
		}
		l.src.Reset(data[:end])
		l.br.Reset(&l.src)
		if err := ctx.Request.Header.Read(l.br); err != nil {
			l.answerUnreadable(c, err)
			return
		}
		h := &ctx.Request.Header
		// ContentLength: -2 means neither Content-Length nor
		// Transfer-Encoding (no body), -1 chunked.
		if cl := h.ContentLength(); cl > 0 || cl == -1 || !h.IsHTTP11() || hasUpgradeField(data[:end]) {
			// A body to read, a protocol switch (signaling WebSocket),
			// HTTP/1.0's keep-alive rules: fasthttp's, for the rest of
			// the connection.
			l.handOff(c, data)
			return
		}
		// The Host must be one fasthttp's URI parser takes, as on its
		// connections (400 otherwise); it remembers the last one, so a
		// keep-alive connection's requests cost a comparison.
		if err := l.hostCheck.Parse(h.Host(), slash); err != nil {
			l.answerUnreadable(c, err)
			return
		}
		data = data[end:]
		ctx.Init2(c.key, fastLogger{l.s.log}, false)
		ctx.Response.Header.SetNoDefaultContentType(true)
		if x := l.s.serveInline(ctx); x != nil {
			l.sendAway(c, x, data)
			return
		}
		l.respond(c, ctx)
		if c.fd < 0 {
			return // closed
		}
	}
	if len(data) == 0 {
		c.in = c.in[:0]
		return
	}
	if len(c.in) == 0 || &data[0] != &c.in[0] {
		c.in = append(c.in[:0], data...) // copy (may overlap c.in: append moves forward)
	}
}

// respond sends the response the handler left in ctx (on the loop).
func (l *evLoop) respond(c *lconn, ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	if ctx.IsHead() {
		resp.SkipBody = true
	}
	if ctx.Request.Header.ConnectionClose() || resp.Header.ConnectionClose() || l.stopping {
		resp.Header.SetConnectionClose()
		c.closing = true
	}
	c.hdr = c.hdr[:0]
	c.out = c.out[:0]
	if resp.IsBodyStream() {
		// A range of chunks (serveStored's bodyStream): fasthttp writes
		// the header and the stream (which ends the exchange) into vw,
		// which keeps the chunks where they are.
		l.vw.c = c
		c.lastCopied = false
		l.bw.Reset(&l.vw)
		err := resp.Write(l.bw)
		if err == nil {
			err = l.bw.Flush()
		}
		l.vw.c = nil
		if err != nil {
			l.s.log.Warn("edge: writing a response", "error", err)
			resp.Reset()
			l.close(c)
			return
		}
	} else {
		body := resp.Body()
		send := !resp.SkipBody && !bodyless(resp.StatusCode())
		if send || len(body) > 0 {
			resp.Header.SetContentLength(len(body))
		}
		c.hdr = resp.Header.AppendBytes(c.hdr)
		switch {
		case !send || len(body) == 0:
		case len(body) < loopRefBytes:
			c.hdr = append(c.hdr, body...)
		default:
			// A body this long on the loop is a store chunk (serveStored):
			// never reused, so it may be sent from where it is.
			c.out = append(c.out, nil, body)
		}
		if len(c.out) == 0 {
			c.out = append(c.out, nil)
		}
		c.out[0] = c.hdr
	}
	resp.Reset()
	l.flush(c)
}

// outWriter collects what fasthttp writes of a response into the
// connection's output: long parts (chunks of the store) by reference,
// short ones (the header, bufio's flushes) copied to the end of c.hdr.
type outWriter struct{ c *lconn }

func (w *outWriter) Write(p []byte) (int, error) {
	c := w.c
	if len(p) >= loopRefBytes {
		c.out = append(c.out, p)
		c.lastCopied = false
		return len(p), nil
	}
	start := len(c.hdr)
	c.hdr = append(c.hdr, p...)
	if c.lastCopied {
		// Extends the copied part at the end. Earlier parts keep the
		// array they were copied to, should append have moved c.hdr.
		n := len(c.out) - 1
		c.out[n] = c.hdr[len(c.hdr)-len(c.out[n])-len(p):]
	} else {
		c.out = append(c.out, c.hdr[start:])
		c.lastCopied = true
	}
	return len(p), nil
}

// flush sends c's output, as much as the socket takes; the rest waits for
// EPOLLOUT, with reading paused.
func (l *evLoop) flush(c *lconn) {
	for c.sent < len(c.out) {
		n, err := l.send.SendBuffers(c.fd, c.out[c.sent:])
		if err != nil {
			if rawsock.IsTemporary(err) {
				if !c.watchW {
					c.watchW = true
					l.s.markPhase(c.e, phaseWriting)
					_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(c.fd)})
				}
				return
			}
			l.close(c)
			return
		}
		for n > 0 && c.sent < len(c.out) {
			if p := c.out[c.sent]; n < len(p) {
				c.out[c.sent] = p[n:]
				break
			}
			n -= len(c.out[c.sent])
			c.sent++
		}
		for c.sent < len(c.out) && len(c.out[c.sent]) == 0 {
			c.sent++
		}
	}
	clear(c.out) // drop the references to chunks
	c.out, c.sent = c.out[:0], 0
	if c.closing {
		l.linger(c)
		return
	}
	if c.watchW {
		c.watchW = false
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)})
		l.s.markPhase(c.e, phaseIdle)
		if len(c.in) > 0 {
			l.process(c, c.in) // pipelined requests that waited
		}
		return
	}
	l.s.markPhase(c.e, phaseIdle)
}

// linger half-closes c after its last response (see lingerTimeout).
func (l *evLoop) linger(c *lconn) {
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		l.close(c)
		return
	}
	c.lingering = true
	c.in = nil
	if c.watchW {
		c.watchW = false
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)})
	}
	l.s.markPhase(c.e, phaseLinger)
}

// answerUnreadable answers a request that cannot be read (400, 408, 431)
// as handleParseError does for fasthttp, then closes c.
func (l *evLoop) answerUnreadable(c *lconn, err error) {
	ctx := l.ctx
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Init2(c.key, fastLogger{l.s.log}, false)
	ctx.Response.Header.SetNoDefaultContentType(true)
	l.s.handleParseError(ctx, err)
	c.in = c.in[:0]
	c.closing = true
	l.respond(c, ctx)
}

// sendAway hands the request in l.ctx, its exchange x, to a goroutine;
// rest is what c sent after it.
func (l *evLoop) sendAway(c *lconn, x *exchange, rest []byte) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, int32(c.fd))
	if len(rest) > 0 {
		c.in = append(c.in[:0], rest...)
	} else {
		c.in = c.in[:0]
	}
	c.away.Store(true)
	l.awayN++
	ctx := l.ctx
	l.ctx = ctxPool.Get().(*fasthttp.RequestCtx)
	l.s.markPhase(c.e, phaseHandling)
	l.ls.away.Add(1)
	go l.serveAway(c, ctx, x)
}

var ctxPool = sync.Pool{New: func() any { return new(fasthttp.RequestCtx) }}

// serveAway serves one request of c on its own goroutine, where it may
// wait, and writes its response through the runtime's poller (as fasthttp
// does, body streams and sendfile included); then c goes back to its loop.
func (l *evLoop) serveAway(c *lconn, ctx *fasthttp.RequestCtx, x *exchange) {
	defer l.ls.away.Done()
	next := opClose // after a failure; opLinger after a last response, opResume to go on
	defer func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctxPool.Put(ctx)
		c.away.Store(false)
		l.post(loopOp{c: c, kind: next})
	}()
	nc, err := fileConn(c.fd)
	if err != nil {
		l.s.log.Warn("edge: serving a request off the event loop", "error", err)
		x.cs = cacheStatus{detail: "internal-error", label: labelError}
		x.writeError(fasthttp.StatusInternalServerError, "edge: internal error")
		x.finish(-1)
		return
	}
	defer nc.Close()
	// The ctx's Conn is now the socket itself: fileBody sends to it.
	ctx.Init2(nc, fastLogger{l.s.log}, false)
	c.nc.Store(nc)
	defer c.nc.Store(nil)
	l.s.run(x)
	if ctx.Hijacked() {
		// Routes hijack only upgrades, which the loop hands to fasthttp.
		l.s.log.Error("edge: a request served off the event loop hijacked its connection")
		return
	}
	l.s.markPhase(c.e, phaseWriting)
	resp := &ctx.Response
	if ctx.IsHead() {
		resp.SkipBody = true
	}
	if ctx.Request.Header.ConnectionClose() || resp.Header.ConnectionClose() || l.s.isShutdown() {
		resp.Header.SetConnectionClose()
	}
	bw := awayWriters.Get().(*bufio.Writer)
	bw.Reset(nc)
	err = resp.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	awayWriters.Put(bw)
	if err != nil || c.e.state.Load()>>phaseShift == int64(phaseExpired) {
		return // failed, or the write overstayed write_timeout
	}
	if resp.Header.ConnectionClose() {
		next = opLinger
		return
	}
	next = opResume
}

var awayWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// fileConn returns a connection on a duplicate of fd, through the
// runtime's poller.
func fileConn(fd int) (*net.TCPConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(dup), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, errors.New("edge: client socket is not TCP")
	}
	return tc, nil
}

// handOff moves c, with data (the request that decided it and what
// followed) to be read first, to fasthttp for the rest of its life.
func (l *evLoop) handOff(c *lconn, data []byte) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, int32(c.fd))
	nc, err := fileConn(c.fd)
	unix.Close(c.fd)
	if err != nil {
		l.s.log.Warn("edge: handing a connection to fasthttp", "error", err)
		l.s.conns.release(c.key)
		return
	}
	rc := &replayConn{TCPConn: nc, pending: append([]byte(nil), data...)}
	c.in = nil
	if !l.s.deliver(c.key, rc) {
		rc.Close()
	}
}

// replayConn is a connection whose first bytes were read already.
type replayConn struct {
	*net.TCPConn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.TCPConn.Read(p)
}

// UnsafeConn is the socket under r (rawsock.Dup: the coordinator takes
// upgraded connections into its own loop, once the request is read).
func (r *replayConn) UnsafeConn() net.Conn { return r.TCPConn }

// close ends c: out of the tracker, then the socket closes.
func (l *evLoop) close(c *lconn) {
	if l.conns[int32(c.fd)] == c {
		delete(l.conns, int32(c.fd))
	}
	l.closeFD(c)
}

func (l *evLoop) closeFD(c *lconn) {
	// Released first: the tracker may shut the socket down (closeAll)
	// only while it knows it, so never a number reused since.
	l.s.conns.release(c.key)
	unix.Close(c.fd)
	c.fd = -1
	c.in, c.out, c.hdr = nil, nil, nil
}

// shutdownSocket cuts c's socket (Shutdown out of time); its loop then
// sees the error and closes it.
func (c *lconn) shutdownSocket() { _ = unix.Shutdown(c.fd, unix.SHUT_RDWR) }

// expire acts on a connection the sweeper found past its phase's
// timeout: a write on a goroutine gets a past deadline, anything else is
// the loop's to answer or close.
func (c *lconn) expire(p connPhase) {
	if p == phaseWriting {
		if nc := c.nc.Load(); nc != nil {
			nc.SetWriteDeadline(pastDeadline)
			return
		}
	}
	c.loop.post(loopOp{c: c, kind: opExpire, phase: p})
}
