package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
)

// closedWithin reports whether the edge closes c (a read returns EOF or a
// reset) within d, reading and discarding whatever it sends until then.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func TestConnectionTimeouts(t *testing.T) {
	const (
		readTimeout  = 300 * time.Millisecond
		idleTimeout  = 400 * time.Millisecond
		writeTimeout = 500 * time.Millisecond
	)
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Limits.ReadTimeout = config.Duration(readTimeout)
		c.Limits.IdleTimeout = config.Duration(idleTimeout)
		c.Limits.WriteTimeout = config.Duration(writeTimeout)
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn, br *bufio.Reader, path string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("silent new connection", func(t *testing.T) {
		c := dial()
		start := time.Now()
		if !closedWithin(c, 3*time.Second) {
			t.Fatalf("a connection that never sent a request is still open after 3s (read_timeout %v)", readTimeout)
		}
		if d := time.Since(start); d < readTimeout {
			t.Errorf("closed after %v, before read_timeout %v", d, readTimeout)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial()
		br := bufio.NewReader(c)
		// Requests closer together than idle_timeout keep it open, over
		// more than idle_timeout in all.
		for range 4 {
			if resp := get(c, br, "/bytes/10"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			time.Sleep(idleTimeout / 4)
		}
		start := time.Now()
		if !closedWithin(c, 3*time.Second) {
			t.Fatalf("an idle keep-alive connection is still open after 3s (idle_timeout %v)", idleTimeout)
		}
		if d := time.Since(start); d < idleTimeout-idleTimeout/4 {
			t.Errorf("closed %v after the last response, before idle_timeout %v", d, idleTimeout)
		}
	})

	t.Run("slow origin is not a slow request", func(t *testing.T) {
		if err := e.origin.Origin.SetFaults(demo.Faults{Delay: 2 * readTimeout}); err != nil {
			t.Fatal(err)
		}
		defer e.origin.Origin.SetFaults(demo.Faults{})
		c := dial()
		if resp := get(c, bufio.NewReader(c), "/bytes/20?slow"); resp.StatusCode != 200 {
			t.Errorf("a miss that waited %v for the origin: status %d, want 200", 2*readTimeout, resp.StatusCode)
		}
	})

	t.Run("client that stops reading", func(t *testing.T) {
		c := dial()
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		if _, err := io.WriteString(c, "GET /bytes/16777216 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(writeTimeout + 500*time.Millisecond) // read nothing meanwhile
		waitFor(t, "the stalled connection to close", func() bool { return e.srv.conns.count() == 0 })
	})
}
