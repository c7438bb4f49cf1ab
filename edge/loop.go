package edge

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// Parsing helpers and settings of the event loops (loop_linux.go).

// Lingering close, as nginx's lingering_close: after a connection's last
// response the edge shuts down its writing side and reads (and drops) what
// the client still sends until the client closes, for lingerTimeout and
// lingerMaxBytes at most. Closing a socket with unread input makes the
// kernel send a reset, which can destroy the response before the client
// read it: a 431 to an oversized header, or the answers to requests a
// client pipelined before it saw Connection: close.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 1 << 20
)

// headerEnd returns the length of the header block at the start of b (up
// to and including the empty line, CRLF or a bare LF), or -1 if it is not
// complete. Whether the block parses is fasthttp's parser's call: it
// refuses some bare-LF endings, which the loop then answers 400 at once
// (fasthttp's own connections wait for more bytes and may answer 408, or
// parse the block together with the next request's).
func headerEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// bodyless reports whether a response with status has no body (RFC 9110
// 6.4.1).
func bodyless(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// hasUpgradeField reports whether a header block has an Upgrade field: a
// protocol switch (the coordinator's WebSocket), left to fasthttp. One
// pass over the block, cheaper than a Peek.
func hasUpgradeField(block []byte) bool {
	for i := bytes.IndexByte(block, '\n'); i >= 0; {
		line := block[i+1:]
		if len(line) >= 8 && line[0]|0x20 == 'u' && equalFoldASCII(line[:8], "upgrade:") {
			return true
		}
		j := bytes.IndexByte(line, '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}
