package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
)

// Connections on the event loops (loop_linux.go) and, for comparison, on
// fasthttp's goroutines (event_loops: -1): the same answers either way.

func loopModes(t *testing.T, run func(t *testing.T, e *testEnv)) {
	for _, m := range []struct {
		name     string
		loops    int
		yielding bool
	}{{"event loops", 0, false}, {"event loops yielding", 0, true}, {"goroutines", -1, false}} {
		t.Run(m.name, func(t *testing.T) {
			if m.yielding && !loopsSupported {
				t.Skip("no event loops on this platform")
			}
			e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.EventLoops = m.loops })
			if got := e.srv.loops != nil; got != (m.loops >= 0 && loopsSupported) {
				t.Fatalf("event loops running: %v with event_loops %d", got, m.loops)
			}
			if m.yielding {
				// As on saturated CPUs, and after every batch: each
				// loop yields before it sleeps.
				asked := alwaysYield(e.srv.loops)
				defer func() {
					if asked() == 0 {
						t.Error("no loop ran out of events: the yield was not tried")
					}
				}()
			}
			run(t, e)
		})
	}
}

func dialEdge(t *testing.T, e *testEnv) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// dialSmallWindow connects with an 8 KiB receive buffer, set before the
// handshake (shrinking it after makes TCP stall in zero-window probes).
func dialSmallWindow(t *testing.T, e *testEnv) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return resp, body
}

// Pipelined requests, hits answered at once and misses that wait for the
// origin among them, come back in order, each with its own bytes.
func TestLoopPipelinedInOrder(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		e.get("/bytes/70000") // cached: a hit on the loop
		type req struct {
			method, path, extra string
			status              int
			body                []byte
		}
		reqs := []req{
			{"GET", "/bytes/70000", "", 200, demoBytes(70000, 0, 70000)},
			{"GET", "/bytes/300000", "", 200, demoBytes(300000, 0, 300000)}, // a miss
			{"HEAD", "/bytes/70000", "", 200, nil},
			{"GET", "/bytes/70000", "Range: bytes=100-199\r\n", 206, demoBytes(70000, 100, 100)},
			{"GET", "/bytes/1234", "", 200, demoBytes(1234, 0, 1234)}, // another miss
			{"GET", "/bytes/70000", "If-None-Match: *\r\n", 304, nil},
			{"GET", "/bytes/300000", "Range: bytes=-10\r\n", 206, demoBytes(300000, 299990, 10)},
			{"GET", "http://elsewhere/x", "", 400, nil},
		}
		var all bytes.Buffer
		for _, r := range reqs {
			fmt.Fprintf(&all, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", r.method, r.path, r.extra)
		}
		c, br := dialEdge(t, e)
		if _, err := c.Write(all.Bytes()); err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			resp, body := readResponse(t, br, r.method)
			if resp.StatusCode != r.status {
				t.Fatalf("response %d (%s %s): status %d, want %d", i, r.method, r.path, resp.StatusCode, r.status)
			}
			if r.body != nil && !bytes.Equal(body, r.body) {
				t.Fatalf("response %d (%s %s): %d bytes, not the origin's %d", i, r.method, r.path, len(body), len(r.body))
			}
			if r.method == "HEAD" && (len(body) != 0 || resp.ContentLength != 70000) {
				t.Fatalf("HEAD: %d body bytes, Content-Length %d", len(body), resp.ContentLength)
			}
			if resp.Header.Get("Cache-Status") == "" {
				t.Errorf("response %d: no Cache-Status", i)
			}
		}
	})
}

// A request sent a few bytes at a time is served once it is complete.
func TestLoopRequestInPieces(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		e.get("/bytes/5000")
		c, br := dialEdge(t, e)
		req := "GET /bytes/5000 HTTP/1.1\r\nHost: x\r\nUser-Agent: slow but within read_timeout\r\n\r\n"
		for i := 0; i < len(req); i += 7 {
			if _, err := io.WriteString(c, req[i:min(i+7, len(req))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(5000, 0, 5000)) {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
		}
		if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Errorf("Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
		}
	})
}

// Requests the loops do not read themselves (a body, HTTP/1.0) are served
// by fasthttp on the same connection, the rest of it included.
func TestLoopHandsOffToFasthttp(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		e.get("/bytes/100")
		c, br := dialEdge(t, e)
		io.WriteString(c, "GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n"+
			"POST /bytes/100 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
			"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n")
		for i, want := range []int{200, 405, 200} {
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != want {
				t.Fatalf("response %d: status %d, want %d", i, resp.StatusCode, want)
			}
			if want == 200 && !bytes.Equal(body, demoBytes(100, 0, 100)) {
				t.Fatalf("response %d: wrong bytes", i)
			}
		}

		// HTTP/1.0 without keep-alive: one answer, then the edge closes.
		c2, br2 := dialEdge(t, e)
		io.WriteString(c2, "GET /bytes/100 HTTP/1.0\r\nHost: x\r\n\r\n")
		resp, body := readResponse(t, br2, "GET")
		if resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(100, 0, 100)) {
			t.Fatalf("HTTP/1.0: status %d, %d bytes", resp.StatusCode, len(body))
		}
		if !closedWithin(c2, 3*time.Second) {
			t.Error("HTTP/1.0 connection without keep-alive left open")
		}
	})
}

// "Connection: close" is answered with it, and the edge closes after the
// response; a large hit to a client reading slowly arrives whole.
func TestLoopCloseAndSlowReader(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		const size = 3 << 20 // in the memory tier: sent from the loop
		e.get(fmt.Sprintf("/bytes/%d", size))

		c, br := dialEdge(t, e)
		io.WriteString(c, "GET /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("status %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
		}
		if !closedWithin(c, 3*time.Second) {
			t.Error("connection left open after Connection: close")
		}

		slow := dialSmallWindow(t, e)
		slow.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(slow, "GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n", size)
		time.Sleep(200 * time.Millisecond) // the socket buffers fill; the edge waits for room
		sbr := bufio.NewReaderSize(slow, 4<<10)
		resp, body := readResponse(t, sbr, "GET")
		if resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(size, 0, size)) {
			t.Fatalf("slow reader: status %d, %d bytes, not the origin's", resp.StatusCode, len(body))
		}
		resp, body = readResponse(t, sbr, "GET")
		if resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(1000, 0, 1000)) {
			t.Fatalf("request after the large one: status %d, %d bytes", resp.StatusCode, len(body))
		}
	})
}

// A hit on the loop to a client that stops reading ends after
// write_timeout, like one written by fasthttp.
func TestLoopStalledHitTimesOut(t *testing.T) {
	if !loopsSupported {
		t.Skip("no event loops on this platform")
	}
	const writeTimeout = 400 * time.Millisecond
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Limits.WriteTimeout = config.Duration(writeTimeout)
	})
	const size = 8 << 20
	e.getSettled(fmt.Sprintf("/bytes/%d", size))
	e.client.CloseIdleConnections() // only the stalled connection remains
	c := dialSmallWindow(t, e)
	fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
	time.Sleep(writeTimeout + 500*time.Millisecond) // read nothing meanwhile
	waitFor(t, "the stalled connection to close", func() bool { return e.srv.conns.count() == 0 })
}

func TestHeaderEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", 27},
		{"GET / HTTP/1.1\nHost: x\n\n", 24},
		{"GET / HTTP/1.1\r\nHost: x\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r", -1},
		{"", -1},
		{"\n", -1},
		{"\n\n", 2},
	} {
		if got := headerEnd([]byte(c.in)); got != c.want {
			t.Errorf("headerEnd(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestHasUpgradeField(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nupgrade: h2c\r\n\r\n", true},
		{"GET / HTTP/1.1\nUPGRADE:websocket\n\n", true},
		{"GET /upgrade: HTTP/1.1\r\nX-Upgrade: 1\r\nUpgraded: no\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nUpgrad", false},
	} {
		if got := hasUpgradeField([]byte(c.in)); got != c.want {
			t.Errorf("hasUpgradeField(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// FuzzLoopConnection sends arbitrary bytes as a client would, then closes
// its side: the edge answers with HTTP/1.1 responses or closes, and still
// serves the next client.
func FuzzLoopConnection(f *testing.F) {
	for _, seed := range []string{
		"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /bytes/10 HTTP/1.1\r\nHost: x\r\nRange: bytes=2-\r\n\r\n",
		"GET /bytes/10 HTTP/1.1\nHost: x\n\nGET /bytes/5 HTTP/1.1\nHost: x\n\n",
		"POST /bytes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET /bytes/10 HTTP/1.0\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT x:443 HTTP/1.1\r\n\r\n",
		"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"\x00\x01\x02\r\n\r\n",
		"GET /bytes/10 HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\nConnection: close\r\n\r\nGET /bytes/10 HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, nil, func(c *config.Config, _ *Options) {
		c.Limits.MaxHeaderBytes = 4 << 10
		c.Limits.ReadTimeout = config.Duration(time.Second)
	})
	e.get("/bytes/10")
	e.get("/bytes/5")
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading the answers to %q: %v (after %d bytes)", in, err, len(out))
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("answer to %q does not start with a status line: %q", in, trunc(string(out)))
		}
		resp, err := e.client.Get(e.url("/bytes/10"))
		if err != nil {
			t.Fatalf("after %q: %v", in, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(10, 0, 10)) {
			t.Fatalf("after %q the edge answers %d (%v)", in, resp.StatusCode, err)
		}
	})
}

// Empty lines before a request line are ignored (RFC 9112 2.2), between
// pipelined requests too; a Host fasthttp's URI parser refuses gets 400
// and the connection closes, on either path.
func TestLoopEmptyLinesAndBadHost(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		e.get("/bytes/100")
		c, br := dialEdge(t, e)
		req := "GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n"
		io.WriteString(c, "\r\n\r\n"+req+"\r\n\r\n\n"+req)
		for i := range 2 {
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(100, 0, 100)) {
				t.Fatalf("response %d: status %d, want 200 with the object", i, resp.StatusCode)
			}
		}
		for _, host := range []string{"x:abc", "vid eo", "[::1", "x:80:80"} {
			c, br := dialEdge(t, e)
			io.WriteString(c, "GET /bytes/100 HTTP/1.1\r\nHost: "+host+"\r\n\r\n"+req)
			resp, _ := readResponse(t, br, "GET")
			if resp.StatusCode != 400 {
				t.Errorf("Host %q: status %d, want 400", host, resp.StatusCode)
			}
			if !closedWithin(c, 3*time.Second) {
				t.Errorf("Host %q: connection left open after the 400", host)
			}
		}
	})
}

// A client sending an endless header while the server shuts down gets
// 431 once past max_header_bytes (the edge does not buffer it all), and
// shutdown does not wait for it.
func TestLoopShutdownWithEndlessHeader(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		c, br := dialEdge(t, e)
		io.WriteString(c, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\nX-Long: ")
		time.Sleep(50 * time.Millisecond)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- e.srv.Shutdown(ctx)
		}()
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		var sent int
		for sent < 64<<20 {
			n, err := c.Write(chunk)
			sent += n
			if err != nil {
				break // the edge closed
			}
		}
		// Socket buffers on both sides take a few MiB before the edge
		// reads anything; it must not take the rest.
		if sent >= 64<<20 {
			t.Fatalf("the edge took %d bytes of one header during shutdown", sent)
		}
		if resp, err := http.ReadResponse(br, nil); err == nil && resp.StatusCode != 431 {
			t.Errorf("status %d, want 431 (or a reset)", resp.StatusCode)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown still waiting after 10 s")
		}
	})
}

// A client that shuts down its writing side in the middle of a request
// gets 400, on either path.
func TestLoopHalfRequestThenEOF(t *testing.T) {
	loopModes(t, func(t *testing.T, e *testEnv) {
		c, br := dialEdge(t, e)
		io.WriteString(c, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\nX-Half: ")
		c.(*net.TCPConn).CloseWrite()
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
}

// After its last response a loop's connection closes without a reset, so
// the client reads everything it was sent: the answers to requests it
// pipelined before seeing Connection: close, a 431 to a header too large
// while it is still sending it.
func TestLoopLingeringClose(t *testing.T) {
	if !loopsSupported {
		t.Skip("no event loops on this platform")
	}
	e := newEnv(t, nil)
	const big = 1 << 20
	e.getSettled(fmt.Sprintf("/bytes/%d", big))
	for i := range 5 {
		c, br := dialEdge(t, e)
		fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", big)
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n") // after the close: dropped
		for _, n := range []int{big, 1000} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("try %d: reading the answer for %d bytes: %v", i, n, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(body, demoBytes(int64(n), 0, int64(n))) {
				t.Fatalf("try %d: %d of %d bytes (%v)", i, len(body), n, err)
			}
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
			t.Fatalf("try %d: after the last response: %q, %v; want EOF", i, rest, err)
		}
	}
	for i := range 10 {
		c, br := dialEdge(t, e)
		go func() {
			io.WriteString(c, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 40<<10)+"\r\n\r\n")
		}()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("try %d: the answer to a 40 KB header: %v", i, err)
		}
		if resp.StatusCode != 431 {
			t.Fatalf("try %d: status %d, want 431", i, resp.StatusCode)
		}
	}
}
