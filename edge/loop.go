package edge

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Parsing helpers of the event loops (loop_linux.go).

// headerEnd returns the length of the header block at the start of b (up
// to and including the empty line; fasthttp accepts bare LF line ends), or
// -1 if it is not complete.
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
