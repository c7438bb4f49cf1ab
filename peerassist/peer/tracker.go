package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// maxSignalMessageBytes bounds one message from the coordinator (an offer
// with its SDP is a few KiB).
const maxSignalMessageBytes = 256 << 10

// tracker is the peer's WebSocket connection to the coordinator: it dials,
// redials with backoff after a failure, hands every message to the peer and
// sends announces. Safe for concurrent use; no usable zero value.
type tracker struct {
	url    string
	dialer websocket.Dialer
	log    *slog.Logger
	// handle is called from the read goroutine with each decoded message;
	// the Response and its SDP are reused after it returns.
	handle func(*signal.Response)
	// connected is called after every successful dial, so the peer can
	// announce its swarms again.
	connected func()

	mu     sync.Mutex // guards conn and serializes writes
	conn   *websocket.Conn
	buf    []byte
	done   chan struct{}
	wg     sync.WaitGroup
	closed bool
}

func newTracker(url string, local net.IP, log *slog.Logger, handle func(*signal.Response), connected func()) *tracker {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	t := &tracker{
		url: url, log: log, handle: handle, connected: connected,
		dialer: websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	t.wg.Add(1)
	go t.run()
	return t
}

// errNotConnected is returned by send while the socket is down; the
// announce is repeated after the reconnect.
var errNotConnected = errors.New("not connected to the coordinator")

func (t *tracker) send(r *signal.Request) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return errNotConnected
	}
	t.buf = r.AppendJSON(t.buf[:0])
	_ = t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := t.conn.WriteMessage(websocket.TextMessage, t.buf); err != nil {
		// The read loop sees the broken socket too and redials.
		_ = t.conn.Close()
		return fmt.Errorf("sending %v to the coordinator: %w", r.Action, err)
	}
	return nil
}

func (t *tracker) close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.done)
		if t.conn != nil {
			_ = t.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
			_ = t.conn.Close()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func (t *tracker) run() {
	defer t.wg.Done()
	backoff := 250 * time.Millisecond
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-t.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, resp, err := t.dialer.DialContext(ctx, t.url, http.Header{})
		cancel()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err == nil {
			t.mu.Lock()
			if t.closed {
				t.mu.Unlock()
				_ = conn.Close()
				return
			}
			conn.SetReadLimit(maxSignalMessageBytes)
			t.conn = conn
			t.mu.Unlock()
			backoff = 250 * time.Millisecond
			t.log.Debug("connected to coordinator", "url", t.url)
			t.connected()
			err = t.readLoop(conn)
			t.mu.Lock()
			t.conn = nil
			t.mu.Unlock()
			_ = conn.Close()
		}
		select {
		case <-t.done:
			return
		default:
		}
		t.log.Warn("coordinator connection lost, reconnecting", "url", t.url, "err", err, "in", backoff)
		select {
		case <-t.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (t *tracker) readLoop(conn *websocket.Conn) error {
	var resp signal.Response
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		if typ != websocket.TextMessage {
			t.log.Warn("coordinator sent a binary message; ignored", "bytes", len(data))
			continue
		}
		if err := signal.ParseResponse(data, &resp); err != nil {
			// A malformed message is logged and dropped; the socket stays.
			t.log.Warn("malformed message from the coordinator; ignored", "err", err)
			continue
		}
		t.handle(&resp)
	}
}
