package coordinator

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/signal"
)

// FuzzConnBytes feeds arbitrary bytes, split at an arbitrary point, to a
// connection's frame parser and message handling: nothing may panic, and
// whatever is queued for the client must be whole frames.
func FuzzConnBytes(f *testing.F) {
	req := signal.Request{Action: signal.ActionAnnounce, InfoHash: ih("fuzz"), PeerID: ih("peer"), NumWant: 2, Left: -1,
		Uploaded: -1, Downloaded: -1, Have: -1, Offers: []signal.Offer{{ID: ih("o1"), SDP: []byte(`{"type":"offer","sdp":"x"}`)}}}
	announce := maskedFrame(opText, req.AppendJSON(nil))
	f.Add(announce, uint16(3))
	f.Add(append(append([]byte{}, announce...), maskedFrame(opPing, []byte("hi"))...), uint16(40))
	frag := maskedFrame(opText, []byte(`{"action":"scr`))
	frag[0] &^= 0x80
	f.Add(append(frag, maskedFrame(opContinuation, []byte(`ape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}`))...), uint16(10))
	f.Add(maskedFrame(opClose, []byte{0x03, 0xe8}), uint16(1))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0xFF, 0, 0, 0}, uint16(5))

	co, err := New(Options{Config: testConfig(), Locator: LocatorFunc(fakeLocate), NoEpoll: true, Seed: 1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer co.Close()
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		ip := netip.MustParseAddr("127.1.0.1")
		c := &conn{co: co, ip: ip, loc: fakeLocate(ip), eligible: true, fd: -1, tokens: 1e9}
		h := co.newHandlerCtx(1)
		at := min(int(split), len(data))
		if c.onBytes(h, append([]byte(nil), data[:at]...)) {
			c.onBytes(h, append([]byte(nil), data[at:]...))
		}
		// Everything queued must parse as server frames.
		out := c.out
		for len(out) > 0 {
			if len(out) < 2 || out[0]&0x80 == 0 || out[1]&0x80 != 0 {
				t.Fatalf("queued bytes are not a final unmasked frame: % x", out[:min(len(out), 16)])
			}
			n, hl := int(out[1]&0x7F), 2
			switch n {
			case 126:
				n, hl = int(out[2])<<8|int(out[3]), 4
			case 127:
				t.Fatalf("unexpectedly large frame queued")
			}
			if len(out) < hl+n {
				t.Fatalf("truncated frame queued")
			}
			if out[0]&0x0F == opText {
				var r signal.Response
				if err := signal.ParseResponse(out[hl:hl+n], &r); err != nil {
					t.Fatalf("queued message does not parse: %v: %s", err, out[hl:hl+n])
				}
			}
			out = out[hl+n:]
		}
		// Remove what the messages created so runs stay independent.
		co.mu.Lock()
		for len(c.peers) > 0 {
			co.removePeer(c.peers[0], "fuzz")
		}
		co.mu.Unlock()
	})
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x82, 0xFE, 0x01, 0x00})
	f.Add([]byte{0x88, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, ok, e := parseFrame(b, 1<<16)
		if e != nil && ok {
			t.Fatal("both a frame and an error")
		}
		if ok && (fr.payload < 0 || fr.payload > 1<<16 || fr.hdrLen > len(b)) {
			t.Fatalf("bad frame %+v for %d bytes", fr, len(b))
		}
	})
}

// FuzzHandshakeHeaders covers what the upgrade reads from request headers:
// token lists, the WebSocket key and the Origin/Host site lookup.
func FuzzHandshakeHeaders(f *testing.F) {
	f.Add([]byte("keep-alive, Upgrade"), []byte("dGhlIHNhbXBsZSBub25jZQ=="), "https://video.example:443", "open.example")
	f.Add([]byte(",,"), []byte("===="), "null", "[::1]:80")
	f.Add([]byte("upgrade"), []byte(""), "http://[::1", "*.example")
	sites := newSiteTable([]config.Site{{Name: "a", Hosts: []string{"video.example", "*.cdn.example"}}, {Name: "b"}})
	f.Fuzz(func(t *testing.T, conn, key []byte, origin, host string) {
		headerHasToken(conn, "upgrade")
		if validKey(key) {
			if len(acceptKey(key)) != 28 {
				t.Fatalf("accept key for %q is not 28 characters", key)
			}
		}
		if s := sites.forRequest(origin, host); s == nil {
			t.Fatal("no site although a catch-all site exists")
		}
	})
}
