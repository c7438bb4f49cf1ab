package demo

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// bodySource produces the bytes of a body at any offset.
type bodySource interface {
	// Fill writes the bytes at [off, off+len(dst)) into dst and returns how
	// many it wrote (fewer only at the end).
	Fill(off int64, dst []byte) int
}

// bytesSource is a body held in memory (the embedded video files).
type bytesSource []byte

func (b bytesSource) Fill(off int64, dst []byte) int {
	if off < 0 || off >= int64(len(b)) {
		return 0
	}
	return copy(dst, b[off:])
}

// streamChunkBytes is the unit bodies are generated and written in: large
// enough that a write bypasses the connection's buffer, small enough to
// stay in cache.
const streamChunkBytes = 64 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunkBytes); return &b }}

// errShutdown stops a paced body when the server shuts down.
var errShutdown = errors.New("demo origin: server shutting down")

// bodyStream streams remaining bytes of src from off, paced to rateBps
// (0 = unlimited). It is used by one response at a time (not safe for
// concurrent use); its zero value is an empty body.
type bodyStream struct {
	src       bodySource
	off       int64
	remaining int64
	rateBps   int64
	done      <-chan struct{}

	sent  int64
	start time.Time
}

// next returns how many bytes to produce into a buffer of limit bytes,
// after waiting for the rate limit.
func (s *bodyStream) next(limit int) (int, error) {
	if s.remaining <= 0 {
		return 0, io.EOF
	}
	n := int64(limit)
	if s.rateBps > 0 {
		// About 20 writes a second: smooth enough for a player's bandwidth
		// estimate, few enough to cost nothing.
		n = min(n, max(s.rateBps/20, 1))
		if s.start.IsZero() {
			s.start = time.Now()
		}
		due := s.start.Add(time.Duration(float64(s.sent) / float64(s.rateBps) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return 0, errShutdown
			}
		}
	}
	return int(min(n, s.remaining)), nil
}

func (s *bodyStream) advance(n int) {
	s.off += int64(n)
	s.remaining -= int64(n)
	s.sent += int64(n)
}

// Read implements io.Reader.
func (s *bodyStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := s.next(len(p))
	if err != nil {
		return 0, err
	}
	n = s.src.Fill(s.off, p[:n])
	s.advance(n)
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	return n, nil
}

// fastStream is an unpaced bodyStream that fasthttp writes through WriteTo:
// large chunks from one pooled buffer. A paced stream has only Read, so that
// fasthttp copies it straight to the socket (bufio.Writer.ReadFrom) and each
// paced chunk leaves when it is produced instead of waiting in a buffer.
type fastStream struct{ bodyStream }

// WriteTo implements io.WriterTo.
func (s *fastStream) WriteTo(w io.Writer) (int64, error) {
	return s.bodyStream.writeTo(w)
}

func (s *bodyStream) writeTo(w io.Writer) (int64, error) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := s.next(len(buf))
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n = s.src.Fill(s.off, buf[:n])
		if n == 0 {
			return total, io.ErrUnexpectedEOF
		}
		s.advance(n)
		m, err := w.Write(buf[:n])
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
}

// hijackBreak sends the headers (announcing length bytes) and only the
// first k.breakAfter body bytes, then closes the connection: what a
// crashing origin or a cut link looks like to a cache filling the object.
// It writes to the raw connection so that exactly that many bytes leave.
func (o *Origin) hijackBreak(ctx *fasthttp.RequestCtx, k knobs, src bodySource, start, length int64) {
	ctx.Response.Header.SetContentLength(int(length))
	head := append([]byte(nil), ctx.Response.Header.Header()...)
	body := &bodyStream{src: src, off: start, remaining: k.breakAfter, rateBps: k.RateBps, done: ctx.Done()}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if _, err := c.Write(head); err != nil {
			return
		}
		_, _ = body.writeTo(c)
		// Returning closes the connection mid-body.
	})
}
