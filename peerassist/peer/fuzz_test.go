package peer

import (
	"encoding/binary"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/peerassist/wire"
)

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-5/6", "bytes */100", "bytes 9-1/10", "bytes 0-99/99", "bytes -1-5/9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, size, err := parseContentRange(s)
		if err != nil {
			return
		}
		if start < 0 || end <= start || size < end {
			t.Fatalf("parseContentRange(%q) = [%d, %d) of %d", s, start, end, size)
		}
		if want := "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end-1, 10) + "/" + strconv.FormatInt(size, 10); want != s {
			// Leading zeros and plus signs parse too; the numbers must
			// still be the ones written.
			if s2, e2, n2, _ := parseContentRange(want); s2 != start || e2 != end || n2 != size {
				t.Fatalf("round trip of %q differs", s)
			}
		}
	})
}

// memChannel is an in-memory channel: the fuzzer's messages are read in
// order, then the channel ends; writes are discarded.
type memChannel struct {
	mu     sync.Mutex
	msgs   [][]byte
	read   int
	gate   chan struct{} // closed: deliver the messages after the first
	closed chan struct{}
	once   sync.Once
}

func (c *memChannel) ReadDataChannel(p []byte) (int, bool, error) {
	c.mu.Lock()
	c.read++
	if c.read == 2 {
		c.mu.Unlock()
		select {
		case <-c.gate:
		case <-c.closed:
			return 0, false, io.EOF
		}
		c.mu.Lock()
	}
	if len(c.msgs) == 0 {
		c.mu.Unlock()
		<-c.closed
		return 0, false, io.EOF
	}
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	c.mu.Unlock()
	if len(m) > len(p) {
		return len(p), false, io.ErrShortBuffer
	}
	return copy(p, m), false, nil
}

func (c *memChannel) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, io.ErrClosedPipe
	default:
		return len(p), nil
	}
}
func (c *memChannel) BufferedAmount() uint64               { return 0 }
func (c *memChannel) PacketPayloadBytes() int              { return 0 }
func (c *memChannel) SetBufferedAmountLowThreshold(uint64) {}
func (c *memChannel) OnBufferedAmountLow(func())           {}
func (c *memChannel) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// FuzzLinkFrames feeds a link any sequence of messages from a remote (after
// a request of its own, so DATA paths run): it must never panic, and must
// deliver only whole, correctly sized chunks.
func FuzzLinkFrames(f *testing.F) {
	enc := func(fr wire.Frame) []byte { b, _ := fr.Encode(); return b }
	seq := func(msgs ...[]byte) []byte {
		var out []byte
		for _, m := range msgs {
			out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
			out = append(out, m...)
		}
		return out
	}
	hello := enc(wire.Hello(wire.FlagServes, 4))
	f.Add(seq(hello, enc(wire.Data(1, 0, 0, make([]byte, 100)))))
	f.Add(seq(hello, enc(wire.Data(1, 0, 0, make([]byte, 60))), enc(wire.Data(1, 0, 60, make([]byte, 40)))))
	f.Add(seq(hello, enc(wire.Absent(1, 0, wire.ReasonBusy)), enc(wire.Request(1, 0)), enc(wire.Cancel(1, 0))))
	f.Add(seq(hello, enc(wire.Bitfield(1, 0, 9, []byte{0xff, 0x80})), enc(wire.Have(1, 9))))
	f.Add(seq(enc(wire.Data(1, 0, 0, []byte{1}))))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch := &memChannel{closed: make(chan struct{}), gate: make(chan struct{})}
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			n = min(n, len(b))
			ch.msgs = append(ch.msgs, b[:n])
			b = b[n:]
		}
		if len(ch.msgs) == 0 {
			ch.msgs = append(ch.msgs, nil) // an empty message: truncated
		}
		s := newMemStore()
		s.chunks[chunkKey{1, 0}] = make([]byte, 100)
		l := newLink(ch, s, "fuzz", linkConfig{Serves: true})
		// Once the remote said hello, request chunk 0 of object 1 (100
		// bytes), as the peer would, then let the other messages in.
		select {
		case <-s.hello:
			_ = l.request(1, 0, 100)
		case <-s.closed:
			l.wait()
			return
		}
		close(ch.gate)
		for {
			ch.mu.Lock()
			left := len(ch.msgs)
			ch.mu.Unlock()
			if left == 0 || isClosed(l.done) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		// The messages run out: the channel ends and the link with it.
		_ = ch.Close()
		l.wait()
		<-s.closed
		for len(s.got) > 0 {
			k := <-s.got
			if k != (chunkKey{1, 0}) || len(s.chunks[k]) != 100 {
				t.Fatalf("delivered %v with %d bytes", k, len(s.chunks[k]))
			}
		}
	})
}
