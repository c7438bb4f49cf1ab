package coordinator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func TestRateLimitThenClose(t *testing.T) {
	cfg := testConfig()
	cfg.MessagesPerSecond = 5
	cfg.MessageBurst = 10
	e := startEdge(t, cfg, nil)
	c := e.mustDial("127.1.0.1")
	scrape := `{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}`
	for range 10 {
		c.sendRaw(scrape)
	}
	for range 10 {
		c.mustRecv(signal.KindScrape)
	}
	c.sendRaw(scrape)
	if r := c.mustRecv(signal.KindFailure); !strings.Contains(r.Failure, "rate limit") {
		t.Errorf("over the limit: %q", r.Failure)
	}
	// Keep flooding: closed with 1008 once the debt reaches the burst.
	for range 30 {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(scrape)); err != nil {
			break
		}
	}
	if code := closeCode(c.closed(5 * time.Second)); code != closePolicy {
		t.Errorf("flooder closed with %d, want %d", code, closePolicy)
	}
}

func TestMalformedFloodCloses(t *testing.T) {
	cfg := testConfig()
	cfg.MessagesPerSecond = 1
	cfg.MessageBurst = 20
	e := startEdge(t, cfg, nil)
	c := e.mustDial("127.1.0.1")
	for range 40 {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte("garbage")); err != nil {
			break
		}
	}
	// 20 tokens, 5 per malformed message: 4 failures, then refusals, then
	// closed well before 40 messages.
	if code := closeCode(c.closed(5 * time.Second)); code != closePolicy {
		t.Errorf("closed with %d, want %d", code, closePolicy)
	}
}

func TestMessageTooBig(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 2048
	e := startEdge(t, cfg, nil)
	c := e.mustDial("127.1.0.1")
	c.sendRaw(`{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa","pad":"` + strings.Repeat("x", 3000) + `"}`)
	if code := closeCode(c.closed(5 * time.Second)); code != closeTooBig {
		t.Errorf("closed with %d, want %d", code, closeTooBig)
	}
	// Fragmented, each fragment small but the message too big.
	c2 := e.mustDial("127.1.0.2")
	w, err := c2.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		// fasthttp/websocket sends a frame per buffer flush; write more than
		// its buffer to force fragments.
		w.Write([]byte(strings.Repeat("y", 1000)))
	}
	w.Close()
	if code := closeCode(c2.closed(5 * time.Second)); code != closeTooBig {
		t.Errorf("fragmented: closed with %d, want %d", code, closeTooBig)
	}
}

func TestPerIPCapAndOrigins(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnectionsPerIP = 2
	cfg.AllowedOrigins = []string{"https://video.example"}
	e := startEdge(t, cfg, nil)
	e.mustDial("127.1.0.1")
	e.mustDial("127.1.0.1")
	// The handshake completes before the socket is registered: wait for
	// both, as a later client would find them. (Upgrades racing each other
	// are refused after the handshake instead, with a 1008 close.)
	waitFor(t, func() bool { e.co.mu.Lock(); defer e.co.mu.Unlock(); return len(e.co.conns) == 2 })
	_, resp, err := e.dial("127.1.0.1", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("third connection from one address: err %v, resp %v; want 429", err, resp)
	}
	e.mustDial("127.1.0.2") // another address is fine

	_, resp, err = e.dial("127.1.0.3", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: err %v, resp %v; want 403", err, resp)
	}
	if _, _, err := e.dial("127.1.0.3", http.Header{"Origin": {"https://video.example"}}); err != nil {
		t.Errorf("allowed origin: %v", err)
	}
}

// TestHandshakeErrors sends raw HTTP requests that are not upgrades.
func TestHandshakeErrors(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
	tests := []struct {
		name, req string
		status    int
	}{
		{"plain GET", "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\n\r\n", 426},
		{"POST", "POST /pa/v1/announce HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"bad version", "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426},
		{"bad key", "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n", 400},
	}
	for _, tt := range tests {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(nc, tt.req)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		resp.Body.Close()
		nc.Close()
	}
}

func TestUnmaskedFrameIsProtocolError(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprint(nc, "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	nc.Write(appendFrame(nil, opText, []byte(`{"action":"scrape"}`))) // not masked
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 4)
	if _, err := br.Read(hdr); err != nil || hdr[0] != 0x80|opClose || int(hdr[2])<<8|int(hdr[3]) != closeProtocolError {
		t.Errorf("reply to an unmasked frame: % x (%v), want a 1002 close", hdr, err)
	}
}

func TestSilentPeerTimesOut(t *testing.T) {
	cfg := testConfig()
	cfg.AnnounceInterval.UnmarshalText([]byte("1s"))
	cfg.PeerTimeout.UnmarshalText([]byte("1500ms"))
	e := startEdge(t, cfg, nil)
	sw := ih("timeout")
	// A client that answers pings stays (fasthttp/websocket answers pings
	// while reading, which the harness always does).
	alive := e.mustDial("127.1.0.1")
	alive.join(sw)
	// A raw client that never answers pings goes away.
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
	nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.1.0.2")}}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprint(nc, "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	req := signal.Request{Action: signal.ActionAnnounce, InfoHash: sw, PeerID: ih("silent"), NumWant: -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1}
	nc.Write(maskedFrame(opText, req.AppendJSON(nil)))
	waitFor(t, func() bool { s := e.co.Swarms(); return len(s) == 1 && s[0].Peers == 2 })
	waitFor(t, func() bool { s := e.co.Swarms(); return len(s) == 1 && s[0].Peers == 1 })
	time.Sleep(time.Second)
	if s := e.co.Swarms(); len(s) != 1 || s[0].Peers != 1 {
		t.Errorf("swarms = %+v, want the live peer only", s)
	}
}

// maskedFrame builds a client frame.
func maskedFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	unmask(b[start:], key)
	return b
}

func TestShutdownClosesSockets(t *testing.T) {
	for _, mode := range []string{"epoll", "goroutine"} {
		t.Run(mode, func(t *testing.T) { testShutdown(t, mode == "goroutine") })
	}
}

func testShutdown(t *testing.T, noEpoll bool) {
	e := startEdge(t, testConfig(), func(o *Options) { o.NoEpoll = noEpoll })
	a, b := e.mustDial("127.1.0.1"), e.mustDial("127.1.0.2")
	a.join(ih("bye"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The clients close when they get the close frame (fasthttp/websocket
	// answers it), so Shutdown completes before its deadline.
	if err := e.co.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	for _, c := range []*client{a, b} {
		if code := closeCode(c.closed(5 * time.Second)); code != closeGoingAway {
			t.Errorf("%s closed with %d, want %d", c.ip, code, closeGoingAway)
		}
	}
	if _, resp, err := e.dial("127.1.0.3", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Shutdown: %v %v, want 503", err, resp)
	}
}

func TestSwarmsPerConnectionCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSwarmsPerConnection = 2
	e := startEdge(t, cfg, nil)
	c := e.mustDial("127.1.0.1")
	c.join(ih("s1"))
	c.join(ih("s2"))
	c.announce(ih("s3"), signal.EventStarted, 0, 0, nil)
	if f := c.mustRecv(signal.KindFailure); !strings.Contains(f.Failure, "too many swarms") {
		t.Errorf("third swarm: %q", f.Failure)
	}
	if n := len(e.co.Swarms()); n != 2 {
		t.Errorf("%d swarms, want 2 (the refused one is not kept)", n)
	}
	// Leaving one makes room.
	c.announce(ih("s1"), signal.EventStopped, 0, 0, nil)
	c.mustRecv(signal.KindAnnounce)
	c.join(ih("s3"))
}

// proxyLocator trusts 127.1.0.100 as a proxy that writes X-Forwarded-For.
type proxyLocator struct{}

func (proxyLocator) Locate(a netip.Addr) region.Locality { return fakeLocate(a) }

func (proxyLocator) ClientAddr(remote netip.Addr, values func(string) [][]byte) netip.Addr {
	if remote != netip.MustParseAddr("127.1.0.100") {
		return remote
	}
	v := values("X-Forwarded-For")
	if len(v) == 0 {
		return remote
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(v[len(v)-1])))
	if err != nil {
		return remote
	}
	return a
}

// TestClientBehindTrustedProxy: the locality (and the per-IP cap) apply to
// the client the Locator finds behind a trusted proxy, not to the proxy.
func TestClientBehindTrustedProxy(t *testing.T) {
	e := startEdge(t, testConfig(), func(o *Options) { o.Locator = proxyLocator{} })
	sw := ih("proxied")
	lyon, _, err := e.dial("127.1.0.100", http.Header{"X-Forwarded-For": {"127.3.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	lyon.join(sw)
	paris := e.mustDial("127.1.0.2")
	if r := paris.join(sw); r.Incomplete != 1 {
		t.Errorf("paris sees %d peers, want only itself (the proxied client is in lyon)", r.Incomplete)
	}
	e.co.mu.Lock()
	n := e.co.perIP[netip.MustParseAddr("127.3.0.7")]
	e.co.mu.Unlock()
	if n != 1 {
		t.Errorf("connections counted for the proxied client: %d, want 1", n)
	}
}

// The region package's Locator plugs in as is, proxies included.
var (
	_ Locator    = (*region.Locator)(nil)
	_ proxyAware = (*region.Locator)(nil)
)

// TestSlowReaderIsClosed: a peer that stops reading gets its frames queued
// (EPOLLOUT path) up to max_send_queue_bytes, then is closed.
func TestSlowReaderIsClosed(t *testing.T) {
	cfg := testConfig()
	cfg.MessagesPerSecond = 1e6
	cfg.MessageBurst = 1e6
	cfg.MaxSendQueueBytes = cfg.MaxMessageBytes
	e := startEdge(t, cfg, nil)
	sw := ih("slow")
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.1.0.2")}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprint(nc, "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	join := signal.Request{Action: signal.ActionAnnounce, InfoHash: sw, PeerID: ih("slow-peer"), NumWant: -1, Left: -1, Uploaded: -1, Downloaded: -1, Have: -1}
	nc.Write(maskedFrame(opText, join.AppendJSON(nil)))
	waitFor(t, func() bool { s := e.co.Swarms(); return len(s) == 1 && s[0].Peers == 1 })

	fast := e.mustDial("127.1.0.1")
	big := []byte(`{"type":"offer","sdp":"` + strings.Repeat("x", 40000) + `"}`)
	for i := 0; i < 400; i++ {
		fast.announce(sw, signal.EventUpdate, 1, i, func(r *signal.Request) { r.Offers[0].SDP = big })
		if e.co.tel.rejected[reasonSlowReader].Load() > 0 {
			break
		}
	}
	waitFor(t, func() bool { return e.co.tel.rejected[reasonSlowReader].Load() > 0 })
	waitFor(t, func() bool { s := e.co.Swarms(); return len(s) == 1 && s[0].Peers == 1 })
}

// TestCloseDoesNotWaitForClients: Close returns promptly even when clients
// neither read nor close, in both modes.
func TestCloseDoesNotWaitForClients(t *testing.T) {
	for _, noEpoll := range []bool{false, true} {
		e := startEdge(t, testConfig(), func(o *Options) { o.NoEpoll = noEpoll })
		addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprint(nc, "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		waitFor(t, func() bool { e.co.mu.Lock(); defer e.co.mu.Unlock(); return len(e.co.conns) == 1 })
		done := make(chan struct{})
		go func() { e.co.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close (noEpoll=%v) still waiting after 5s", noEpoll)
		}
	}
}

// A burst far over the limit, written at once (as a script sending 500
// scrapes in a loop does), gets what the limit promises: replies for the
// burst, "rate limit exceeded" refusals, then a 1008 close frame, all of
// them delivered before the socket closes (was: closed with unread input,
// which resets the connection and loses every reply: 1006).
func TestBurstGetsRepliesThenPolicyClose(t *testing.T) {
	for _, mode := range []string{"epoll", "goroutine"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig()
			e := startEdge(t, cfg, func(o *Options) { o.NoEpoll = mode == "goroutine" })
			for _, n := range []int{150, 500, 2000} {
				c := e.mustDial("127.1.0.1")
				frame := maskedFrame(opText, []byte(`{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}`))
				burst := make([]byte, 0, n*len(frame))
				for range n {
					burst = append(burst, frame...)
				}
				if _, err := c.ws.UnderlyingConn().Write(burst); err != nil {
					t.Fatalf("burst of %d: write: %v", n, err)
				}
				var scrapes, refusals int
				for done := false; !done; {
					r, err := c.recv(10 * time.Second)
					switch {
					case err != nil:
						if code := closeCode(err); code != closePolicy {
							t.Errorf("burst of %d: connection ended with %v (code %d), want close %d", n, err, code, closePolicy)
						}
						done = true
					case r.Kind == signal.KindScrape:
						scrapes++
					case r.Kind == signal.KindFailure && strings.Contains(r.Failure, "rate limit"):
						refusals++
					default:
						t.Errorf("burst of %d: unexpected %v %q", n, r.Kind, r.Failure)
					}
				}
				// The burst (60) is answered, then about a burst's worth of
				// refusals before the debt closes the socket.
				if scrapes < cfg.MessageBurst || refusals < cfg.MessageBurst-5 {
					t.Errorf("burst of %d: %d scrape replies and %d refusals, want at least %d and %d",
						n, scrapes, refusals, cfg.MessageBurst, cfg.MessageBurst-5)
				}
			}
		})
	}
}

// TestInvalidUTF8Text: a text message that is not UTF-8, whole or in
// fragments, is closed with 1007 (RFC 6455 8.1); QA saw a failure reason
// and the socket left open.
func TestInvalidUTF8Text(t *testing.T) {
	for _, fragmented := range []bool{false, true} {
		e := startEdge(t, testConfig(), nil)
		addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/pa/v1/announce")
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(nc, "GET /pa/v1/announce HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		br := bufio.NewReader(nc)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		bad := []byte("{\"action\":\"scrape\",\"x\":\"\xc3\x28\"}")
		if fragmented {
			first := maskedFrame(opText, bad[:10])
			first[0] &^= 0x80 // not final
			last := maskedFrame(opContinuation, bad[10:])
			nc.Write(append(first, last...))
		} else {
			nc.Write(maskedFrame(opText, bad))
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 0x80|opClose || int(hdr[2])<<8|int(hdr[3]) != closeInvalidData {
			t.Errorf("fragmented %v: reply to invalid UTF-8: % x (%v), want a 1007 close", fragmented, hdr, err)
		}
		nc.Close()
	}
}
