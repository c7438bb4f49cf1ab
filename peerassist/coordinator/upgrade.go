package coordinator

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/edge/rawsock"
	"github.com/peerassist/edgebox/region"
)

// Handler is the /pa/v1/announce route: it checks the WebSocket upgrade
// request (method, headers, Origin allowlist, connection caps), answers 101
// and takes the socket from fasthttp. Refusals are plain HTTP errors with a
// message.
func (co *Coordinator) Handler(ctx *fasthttp.RequestCtx) {
	st := co.set.Load()
	if !st.cfg.Enabled {
		ctx.Error("peer assistance is disabled on this edge", fasthttp.StatusNotFound)
		return
	}
	h := &ctx.Request.Header
	switch {
	case !ctx.IsGet():
		co.tel.reject(reasonHandshake)
		ctx.Response.Header.Set("Allow", "GET")
		ctx.Error("the signaling endpoint takes a WebSocket upgrade (GET)", fasthttp.StatusMethodNotAllowed)
		return
	case !headerHasToken(h.Peek("Connection"), "upgrade") || !headerHasToken(h.Peek("Upgrade"), "websocket"):
		co.tel.reject(reasonHandshake)
		ctx.Response.Header.Set("Upgrade", "websocket")
		ctx.Error("this is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket", fasthttp.StatusUpgradeRequired)
		return
	case string(h.Peek("Sec-WebSocket-Version")) != "13":
		co.tel.reject(reasonHandshake)
		ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		ctx.Error("unsupported Sec-WebSocket-Version (want 13)", fasthttp.StatusUpgradeRequired)
		return
	case !validKey(h.Peek("Sec-WebSocket-Key")):
		co.tel.reject(reasonHandshake)
		ctx.Error("missing or malformed Sec-WebSocket-Key", fasthttp.StatusBadRequest)
		return
	}
	origin := string(h.Peek("Origin"))
	if origin != "" && len(st.origins) > 0 && !st.origins[origin] {
		co.tel.reject(reasonOrigin)
		ctx.Error("origin "+strconv.Quote(origin)+" is not allowed to use this edge's peer assistance", fasthttp.StatusForbidden)
		return
	}
	ip := co.clientAddr(ctx)
	if ok, status, msg := co.admitConn(ip); !ok {
		co.tel.reject(reasonTooManyConns)
		ctx.Response.Header.Set("Retry-After", "30")
		ctx.Error(msg, status)
		return
	}
	host := string(h.Host())
	loc := co.locator.Locate(ip)

	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	ctx.Response.Header.Set("Sec-WebSocket-Accept", acceptKey(h.Peek("Sec-WebSocket-Key")))
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.Response.SkipBody = true
	ctx.Hijack(func(nc net.Conn) {
		co.attach(nc, ip, loc, origin, host)
	})
}

func (co *Coordinator) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if co.addrOf != nil {
		if a := co.addrOf(ctx); a.IsValid() {
			return a.Unmap()
		}
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

// admitConn checks the connection caps before the upgrade.
func (co *Coordinator) admitConn(ip netip.Addr) (bool, int, string) {
	co.mu.Lock()
	defer co.mu.Unlock()
	cfg := &co.set.Load().cfg
	switch {
	case co.closed || co.draining:
		return false, fasthttp.StatusServiceUnavailable, "the coordinator is shutting down"
	case len(co.conns) >= cfg.MaxConnections:
		return false, fasthttp.StatusServiceUnavailable, "too many signaling connections on this edge"
	case co.perIP[ip] >= cfg.MaxConnectionsPerIP:
		return false, fasthttp.StatusTooManyRequests, "too many signaling connections from " + ip.String()
	}
	return true, 0, ""
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitive).
func headerHasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(part), []byte(token)) {
			return true
		}
	}
	return false
}

// attach runs on fasthttp's hijack goroutine after the 101 was written.
func (co *Coordinator) attach(nc net.Conn, ip netip.Addr, loc region.Locality, origin, host string) {
	c := &conn{co: co, ip: ip, loc: loc, origin: origin, host: host, opened: time.Now(), fd: -1}
	c.tokAt = co.clock()
	c.lastRecv.Store(c.tokAt)

	// A client may have sent frames right behind its upgrade request:
	// fasthttp then holds them in its read buffer.
	early := drainBuffered(nc)

	// Choose the mode before the connection is published (registering it
	// under co.mu makes these fields visible to other goroutines).
	if !co.noEpoll && len(co.pollers) > 0 {
		if fd, err := rawsock.Dup(nc); err == nil {
			// The socket now lives on as fd; fasthttp's connection (or our
			// reference to it) goes away.
			nc.Close()
			nc = nil
			c.fd = fd
			c.p = co.pollers[int(co.pollNext.Add(1))%len(co.pollers)]
		}
	}
	if c.p == nil {
		// fasthttp's hijacked connection ignores Close unless the server
		// keeps hijacked connections; close the socket under it.
		c.nc, c.raw = nc, nc
		if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
			c.raw = u.UnsafeConn()
		}
		c.wake = make(chan struct{}, 1)
	}

	// Register, re-checking the caps: concurrent upgrades may have passed
	// admitConn together. The site, eligibility and tokens come from the
	// settings in force under the lock, which Reload also takes to resolve
	// registered connections again.
	co.mu.Lock()
	st := co.set.Load()
	c.site = st.sites.forRequest(origin, host)
	c.eligible = st.eligible(c)
	c.tokens = float64(st.cfg.MessageBurst)
	refused, code := "", closePolicy
	switch {
	case co.closed || co.draining:
		refused, code = "server shutting down", closeGoingAway
	case len(co.conns) >= st.cfg.MaxConnections:
		refused = "too many signaling connections on this edge"
	case co.perIP[ip] >= st.cfg.MaxConnectionsPerIP:
		refused = "too many signaling connections from your address"
	}
	if refused == "" {
		co.connSeq++
		c.id = co.connSeq
		co.conns[c] = struct{}{}
		co.perIP[ip]++
		if c.p == nil {
			// Counted here, under the lock that Close takes to mark the
			// coordinator closed, so Close waits for this connection's
			// reader and writer.
			co.wg.Add(2)
		}
	}
	co.mu.Unlock()
	if refused != "" {
		co.tel.reject(reasonTooManyConns)
		frame := appendFrame(nil, opClose, closePayload(code, refused))
		if c.p != nil {
			_, _ = rawsock.Send(c.fd, frame)
			closeFD(c.fd)
		} else {
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write(frame)
			nc.Close()
		}
		return
	}

	if len(early) > 0 {
		// Nobody reads c yet: handle the early bytes here.
		if !c.onBytes(co.newHandlerCtx(c.id), early) {
			c.release()
			if c.p == nil {
				co.wg.Add(-2)
			}
			return
		}
	}
	if c.p != nil {
		if err := c.p.add(c); err != nil {
			co.log.Error("peerassist: cannot watch a signaling socket", "error", err)
			c.release()
		}
		return
	}
	co.serveGoroutine(c)
}

// drainBuffered returns the bytes fasthttp read past the upgrade request,
// without reading the socket itself: with the read deadline in the past,
// only its buffer can answer.
func drainBuffered(nc net.Conn) []byte {
	if err := nc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return nil
	}
	var out []byte
	var buf [512]byte
	for {
		n, err := nc.Read(buf[:])
		out = append(out, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	return out
}

// serveGoroutine reads c on this goroutine until it closes (goroutine mode),
// with a writer goroutine draining its queue.
func (co *Coordinator) serveGoroutine(c *conn) {
	nc := c.nc
	writerDone := make(chan struct{})
	go func() {
		defer co.wg.Done()
		defer close(writerDone)
		c.writer()
	}()
	defer co.wg.Done()
	// fasthttp recycles its hijacked connection when this handler returns:
	// the writer must be done with it by then.
	defer func() { <-writerDone }()
	h := co.newHandlerCtx(c.id)
	buf := make([]byte, 16<<10)
	for {
		n, err := nc.Read(buf)
		if n > 0 && !c.onBytes(h, buf[:n]) {
			break
		}
		if err != nil {
			break
		}
	}
	c.release()
}

// writer drains the send queue of a goroutine-mode connection.
func (c *conn) writer() {
	for range c.wake {
		c.wmu.Lock()
		out := c.out
		c.out = nil
		st := c.state
		c.wmu.Unlock()
		if len(out) > 0 && (st == stateOpen || st == stateClosing) {
			_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.nc.Write(out); err != nil {
				c.wmu.Lock()
				c.shutdownLocked()
				c.wmu.Unlock()
			}
		}
		c.wmu.Lock()
		st = c.state
		pending := len(c.out)
		c.wmu.Unlock()
		switch {
		case st == stateClosing && pending == 0:
			// The close frame is out. Graceful: give the client a moment to
			// answer; its EOF, or the sweeper, ends the reader.
			c.wmu.Lock()
			hard := c.closeHard
			c.wmu.Unlock()
			if tc, ok := c.raw.(interface{ CloseWrite() error }); ok && !hard {
				_ = tc.CloseWrite()
			} else {
				c.raw.Close()
			}
		case st == stateDead || st == stateReleased:
			c.raw.Close()
			return
		}
	}
}
