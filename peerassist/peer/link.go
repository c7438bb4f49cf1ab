package peer

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/peerassist/edgebox/peerassist/wire"
)

// channel is what a link needs from a DataChannel: pion's detached
// ReadWriteCloser plus the buffered-amount API of *webrtc.DataChannel
// (rtcChannel adapts the two).
type channel interface {
	ReadDataChannel(p []byte) (n int, isString bool, err error)
	Write(p []byte) (int, error)
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(th uint64)
	OnBufferedAmountLow(f func())
	// PacketPayloadBytes is how many bytes of a message one transport
	// packet carries (the transport cuts longer messages into pieces of
	// this size); 0 when unknown.
	PacketPayloadBytes() int
	// Close ends the channel and must unblock a pending ReadDataChannel
	// (rtcChannel closes the whole PeerConnection).
	Close() error
}

// linkHandler is the owner of a link: the peer's store and scheduler. The
// link calls it from its reader and writer goroutines, never with its own
// lock held.
type linkHandler interface {
	// serve returns the bytes to upload for chunk, or false if it is not
	// held. The link does not modify them.
	serve(obj wire.ObjectID, chunk uint32) ([]byte, bool)
	// onHello reports the remote HELLO; requests may be sent from now on.
	onHello(l *link, f wire.Frame)
	// onHave and onBitfield report what the remote holds. f.Bits aliases
	// the read buffer: copy what you keep.
	onHave(l *link, obj wire.ObjectID, chunk uint32)
	onBitfield(l *link, f wire.Frame)
	// onChunk delivers a complete chunk (unverified) for a request made
	// with link.request. data is owned by the handler.
	onChunk(l *link, obj wire.ObjectID, chunk uint32, data []byte)
	// onAbsent reports that a request was refused (never for a request
	// this side cancelled).
	onAbsent(l *link, obj wire.ObjectID, chunk uint32, r wire.Reason)
	// onUploaded reports payload bytes written to the channel.
	onUploaded(l *link, n int)
	// onClose is called once when the link ends; err says why (nil for a
	// local close).
	onClose(l *link, err error)
}

// linkConfig tunes one link. Zero values take the defaults in brackets.
type linkConfig struct {
	// MaxQueued is how many requests from the remote are queued for
	// serving before further ones are answered ABSENT busy [16].
	MaxQueued int
	// Serves tells the remote whether this side uploads (HELLO flag).
	Serves bool
	// Limiter paces uploaded payload bytes; nil means unpaced. Shared by
	// every link of a peer, so the budget is the peer's, not the link's.
	Limiter *rate.Limiter
	// MaxQueueDelay: a request that would wait longer than this for upload
	// budget (queued bytes over the limiter's rate) is answered ABSENT
	// over_budget, so the requester goes elsewhere in time [2s].
	MaxQueueDelay time.Duration
	// HighWaterBytes and LowWaterBytes are the flow-control thresholds:
	// writing stops while more than HighWaterBytes are buffered and resumes
	// when the buffered amount falls to LowWaterBytes [1 MiB, 512 KiB].
	HighWaterBytes, LowWaterBytes uint64
}

func (c *linkConfig) defaults() {
	if c.MaxQueued <= 0 {
		c.MaxQueued = 16
	}
	if c.MaxQueueDelay <= 0 {
		c.MaxQueueDelay = 2 * time.Second
	}
	if c.HighWaterBytes == 0 {
		c.HighWaterBytes = 1 << 20
	}
	if c.LowWaterBytes == 0 || c.LowWaterBytes >= c.HighWaterBytes {
		c.LowWaterBytes = c.HighWaterBytes / 2
	}
}

// errViolation wraps every protocol violation by the remote peer.
var errViolation = errors.New("peer protocol violation")

// errLinkClosed is returned for operations on a closed link.
var errLinkClosed = errors.New("link closed")

type chunkKey struct {
	obj   wire.ObjectID
	chunk uint32
}

// inbound is a chunk this side requested and is receiving.
type inbound struct {
	data      []byte // len = expected chunk size
	got       int    // bytes received, in order
	cancelled bool   // CANCEL sent: drop what arrives until the end
}

// readyChunk is a complete chunk waiting for the handler.
type readyChunk struct {
	key  chunkKey
	data []byte
}

// outbound is a chunk the remote requested, being served.
type outbound struct {
	key  chunkKey
	data []byte
	off  int
}

// link runs the peer data protocol (package wire) over one DataChannel: it
// sends HELLO, serves the remote's requests with upload pacing and
// buffered-amount flow control, and reassembles the chunks this side
// requested. Policy (what to request, verification) belongs to its handler.
//
// A link is created with newLink and runs until close or a channel error;
// its methods are safe for concurrent use. It has no usable zero value.
type link struct {
	ch  channel
	h   linkHandler
	cfg linkConfig
	// remote is an opaque identity for the handler (the remote peer_id).
	remote string
	// packetBytes is the channel's PacketPayloadBytes (0: unknown), read
	// once: DATA frames are cut to fill whole packets.
	packetBytes int

	writable  chan struct{} // buffered amount fell to the low-water mark
	delivered chan struct{} // chunks were added to ready
	wake      chan struct{} // control frames or requests were queued
	done      chan struct{} // closed by close
	finished  chan struct{} // closed after the handler's onClose returned
	wg        sync.WaitGroup
	once      sync.Once

	mu         sync.Mutex
	ctrl       [][]byte // encoded control frames, sent before data
	queue      []*outbound
	queuedB    int // payload bytes in queue not yet sent
	in         map[chunkKey]*inbound
	complete   []readyChunk // complete chunks for deliverLoop
	helloDone  bool
	remoteMax  int // remote's max_requests
	remoteServ bool
	closeErr   error

	uploaded   atomic.Int64
	downloaded atomic.Int64
}

func newLink(ch channel, h linkHandler, remote string, cfg linkConfig) *link {
	cfg.defaults()
	l := &link{
		ch: ch, h: h, cfg: cfg, remote: remote,
		packetBytes: ch.PacketPayloadBytes(),
		writable:    make(chan struct{}, 1),
		delivered:   make(chan struct{}, 1),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		finished:    make(chan struct{}),
		in:          make(map[chunkKey]*inbound),
	}
	ch.SetBufferedAmountLowThreshold(cfg.LowWaterBytes)
	ch.OnBufferedAmountLow(func() { notify(l.writable) })
	var flags uint8
	if cfg.Serves {
		flags |= wire.FlagServes
	}
	l.sendCtrl(wire.Hello(flags, uint16(min(cfg.MaxQueued, 0xffff))))
	l.wg.Add(3)
	go l.readLoop()
	go l.writeLoop()
	go l.deliverLoop()
	return l
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// sendCtrl queues a control frame (anything but DATA).
func (l *link) sendCtrl(f wire.Frame) {
	b, err := f.Encode()
	if err != nil {
		// Only this package builds frames: an invalid one is a bug, which
		// ends the link rather than the process.
		l.closeWith(fmt.Errorf("internal error: encoding %v: %w", f.Type, err))
		return
	}
	l.mu.Lock()
	l.ctrl = append(l.ctrl, b)
	l.mu.Unlock()
	notify(l.wake)
}

// have announces a verified chunk.
func (l *link) have(obj wire.ObjectID, chunk uint32) { l.sendCtrl(wire.Have(obj, chunk)) }

// bitfield announces held chunks of an object; held has one entry per
// chunk of the object.
func (l *link) bitfield(obj wire.ObjectID, held []bool) {
	for first := 0; first < len(held); first += wire.MaxBitfieldCount {
		n := min(len(held)-first, wire.MaxBitfieldCount)
		bits := make([]byte, (n+7)/8)
		any := false
		for i := range n {
			if held[first+i] {
				bits[i/8] |= 0x80 >> (i % 8)
				any = true
			}
		}
		if any {
			l.sendCtrl(wire.Bitfield(obj, uint32(first), uint32(n), bits))
		}
	}
}

// ready reports whether the remote's HELLO arrived, whether it serves, and
// how many requests may be outstanding.
func (l *link) ready() (ok, serves bool, maxRequests int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.helloDone, l.remoteServ, l.remoteMax
}

// outstanding is the number of this side's requests not yet finished,
// cancelled ones included (they still hold a slot at the remote).
func (l *link) outstanding() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.in)
}

// received reports how many bytes of a requested chunk arrived so far.
func (l *link) received(obj wire.ObjectID, chunk uint32) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in := l.in[chunkKey{obj, chunk}]
	if in == nil || in.cancelled {
		return 0, false
	}
	return in.got, true
}

// outstandingBytes is the size of this side's unfinished requests
// (cancelled ones included).
func (l *link) outstandingBytes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, in := range l.in {
		n += len(in.data)
	}
	return n
}

// request asks the remote for chunk, whose length is size bytes.
func (l *link) request(obj wire.ObjectID, chunk uint32, size int) error {
	k := chunkKey{obj, chunk}
	l.mu.Lock()
	switch {
	case l.closeErr != nil || isClosed(l.done):
		l.mu.Unlock()
		return errLinkClosed
	case !l.helloDone:
		l.mu.Unlock()
		return errors.New("request before the remote's hello")
	case l.in[k] != nil:
		l.mu.Unlock()
		return fmt.Errorf("chunk %d of %v already requested", chunk, obj)
	case len(l.in) >= l.remoteMax:
		l.mu.Unlock()
		return fmt.Errorf("%d requests outstanding, remote queues %d", len(l.in), l.remoteMax)
	}
	l.in[k] = &inbound{data: make([]byte, size)}
	l.mu.Unlock()
	l.sendCtrl(wire.Request(obj, chunk))
	return nil
}

// cancel withdraws a request and returns the bytes received so far (a
// prefix of the chunk), which the caller may complete from elsewhere.
func (l *link) cancel(obj wire.ObjectID, chunk uint32) []byte {
	k := chunkKey{obj, chunk}
	l.mu.Lock()
	in := l.in[k]
	if in == nil || in.cancelled {
		l.mu.Unlock()
		return nil
	}
	in.cancelled = true
	prefix := append([]byte(nil), in.data[:in.got]...)
	l.mu.Unlock()
	l.sendCtrl(wire.Cancel(obj, chunk))
	return prefix
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// close ends the link and waits for its goroutines. Safe to call twice and
// from the handler's callbacks except onClose.
func (l *link) close() { l.closeWith(nil) }

func (l *link) closeWith(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.closeErr = err
		l.mu.Unlock()
		close(l.done)
		_ = l.ch.Close()
		go func() {
			l.wg.Wait()
			l.h.onClose(l, err)
			close(l.finished)
		}()
	})
}

// wait blocks until the link ended: its goroutines exited and the
// handler's onClose returned. Never call it from onClose.
func (l *link) wait() { <-l.finished }

func (l *link) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, wire.MaxFrameBytes)
	first := true
	for {
		n, isString, err := l.ch.ReadDataChannel(buf)
		switch {
		case errors.Is(err, io.ErrShortBuffer):
			l.closeWith(fmt.Errorf("%w: message larger than %d bytes", errViolation, wire.MaxFrameBytes))
			return
		case err != nil:
			if !isClosed(l.done) {
				l.closeWith(fmt.Errorf("reading data channel: %w", err))
			}
			return
		case isString:
			l.closeWith(fmt.Errorf("%w: text message", errViolation))
			return
		}
		f, err := wire.Decode(buf[:n])
		if err == nil && first && f.Type != wire.TypeHello {
			err = fmt.Errorf("%w: first frame is %v, want hello", errViolation, f.Type)
		}
		if err == nil {
			err = l.handle(f)
		}
		var we *wire.Error
		if errors.As(err, &we) {
			err = fmt.Errorf("%w: %w", errViolation, err)
		}
		if err != nil {
			l.closeWith(err)
			return
		}
		first = false
	}
}

func (l *link) handle(f wire.Frame) error {
	switch f.Type {
	case wire.TypeHello:
		l.mu.Lock()
		if l.helloDone {
			l.mu.Unlock()
			return fmt.Errorf("%w: second hello", errViolation)
		}
		l.helloDone = true
		l.remoteMax = int(f.MaxRequests)
		l.remoteServ = f.Flags&wire.FlagServes != 0
		l.mu.Unlock()
		l.h.onHello(l, f)
	case wire.TypeHave:
		l.h.onHave(l, f.Object, f.Chunk)
	case wire.TypeBitfield:
		l.h.onBitfield(l, f)
	case wire.TypeRequest:
		l.onRequest(chunkKey{f.Object, f.Chunk})
	case wire.TypeCancel:
		l.onCancel(chunkKey{f.Object, f.Chunk})
	case wire.TypeData:
		return l.onData(f)
	case wire.TypeAbsent:
		k := chunkKey{f.Object, f.Chunk}
		l.mu.Lock()
		in := l.in[k]
		if in == nil {
			l.mu.Unlock()
			return nil // late answer to nothing we track: harmless
		}
		delete(l.in, k)
		l.mu.Unlock()
		if !in.cancelled {
			l.h.onAbsent(l, f.Object, f.Chunk, f.Reason)
		}
	}
	return nil
}

func (l *link) onData(f wire.Frame) error {
	k := chunkKey{f.Object, f.Chunk}
	l.mu.Lock()
	in := l.in[k]
	if in == nil {
		l.mu.Unlock()
		return fmt.Errorf("%w: data for chunk %d of %v, which was not requested", errViolation, f.Chunk, f.Object)
	}
	if int(f.Offset) != in.got || in.got+len(f.Payload) > len(in.data) {
		got, size := in.got, len(in.data)
		l.mu.Unlock()
		return fmt.Errorf("%w: data for chunk %d of %v at [%d, %d), want offset %d of %d bytes",
			errViolation, f.Chunk, f.Object, f.Offset, int(f.Offset)+len(f.Payload), got, size)
	}
	copy(in.data[in.got:], f.Payload)
	in.got += len(f.Payload)
	complete := in.got == len(in.data)
	if complete {
		delete(l.in, k)
	}
	l.mu.Unlock()
	l.downloaded.Add(int64(len(f.Payload)))
	if complete && !in.cancelled {
		// Hand the chunk over and get back to reading at once: the
		// handler verifies it (SHA-256) meanwhile. A reader that dawdles
		// lets pion's SCTP receive buffer fill, and what it then drops
		// costs the sender a one-second retransmission timeout.
		l.mu.Lock()
		l.complete = append(l.complete, readyChunk{k, in.data})
		l.mu.Unlock()
		notify(l.delivered)
	}
	return nil
}

func (l *link) onRequest(k chunkKey) {
	if !l.cfg.Serves {
		l.sendCtrl(wire.Absent(k.obj, k.chunk, wire.ReasonOverBudget))
		return
	}
	data, ok := l.h.serve(k.obj, k.chunk)
	if !ok {
		l.sendCtrl(wire.Absent(k.obj, k.chunk, wire.ReasonNotHeld))
		return
	}
	l.mu.Lock()
	reason := wire.Reason(0)
	switch {
	case len(l.queue) >= l.cfg.MaxQueued:
		reason = wire.ReasonBusy
	case l.overBudget(len(data)):
		reason = wire.ReasonOverBudget
	}
	for _, o := range l.queue {
		if o.key == k {
			l.mu.Unlock()
			return // a duplicate request: the first is being served
		}
	}
	if reason == 0 {
		l.queue = append(l.queue, &outbound{key: k, data: data})
		l.queuedB += len(data)
	}
	l.mu.Unlock()
	if reason != 0 {
		l.sendCtrl(wire.Absent(k.obj, k.chunk, reason))
		return
	}
	notify(l.wake)
}

// overBudget reports whether n more queued bytes would wait longer than
// MaxQueueDelay at the upload budget. Called with l.mu held.
func (l *link) overBudget(n int) bool {
	lim := l.cfg.Limiter
	if lim == nil || lim.Limit() == rate.Inf {
		return false
	}
	if lim.Limit() <= 0 {
		return true
	}
	wait := time.Duration(float64(l.queuedB+n) / float64(lim.Limit()) * float64(time.Second))
	return wait > l.cfg.MaxQueueDelay && l.queuedB > 0
}

func (l *link) onCancel(k chunkKey) {
	l.mu.Lock()
	found := false
	for i, o := range l.queue {
		if o.key == k {
			l.queuedB -= len(o.data) - o.off
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			found = true
			break
		}
	}
	l.mu.Unlock()
	if found {
		l.sendCtrl(wire.Absent(k.obj, k.chunk, wire.ReasonCancelled))
	}
}

// deliverLoop hands complete chunks to the handler, in arrival order, off
// the reader goroutine. When the link ends it delivers what was complete.
func (l *link) deliverLoop() {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		batch := l.complete
		l.complete = nil
		l.mu.Unlock()
		for _, c := range batch {
			l.h.onChunk(l, c.key.obj, c.key.chunk, c.data)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-l.delivered:
		case <-l.done:
			l.mu.Lock()
			left := len(l.complete)
			l.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// writeLoop is the only writer of the channel: control frames first, then
// the pieces of queued chunks, each after the upload budget allows it and
// the buffered amount is below the high-water mark.
func (l *link) writeLoop() {
	defer l.wg.Done()
	buf := make([]byte, 0, wire.MaxFrameBytes)
	var readyAt time.Time // when the reserved upload tokens are available
	reserved := false
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		l.mu.Lock()
		ctrl := l.ctrl
		l.ctrl = nil
		var cur *outbound
		if len(l.queue) > 0 {
			cur = l.queue[0]
		}
		l.mu.Unlock()
		for _, b := range ctrl {
			if _, err := l.ch.Write(b); err != nil {
				l.closeWith(fmt.Errorf("writing data channel: %w", err))
				return
			}
		}
		if cur == nil {
			select {
			case <-l.wake:
				continue
			case <-l.done:
				return
			}
		}
		n := min(len(cur.data)-cur.off, l.pieceBytes())
		// Pace: reserve tokens for this piece once, then wait for them
		// while still answering control frames. A budget that cannot pay
		// for it within a couple of seconds (cut to zero by the edge's
		// policy) is asked again every second, so a raised budget applies
		// at once.
		if !reserved && l.cfg.Limiter != nil {
			d, ok := reservePiece(l.cfg.Limiter, n)
			if !ok {
				if !l.sleep(&timer, time.Second) {
					return
				}
				continue
			}
			readyAt, reserved = time.Now().Add(d), true
		}
		if d := time.Until(readyAt); reserved && d > 0 {
			if !l.sleep(&timer, d) {
				return
			}
			continue
		}
		if l.ch.BufferedAmount() > l.cfg.HighWaterBytes {
			select {
			case <-l.writable:
			case <-l.wake:
			case <-l.done:
				return
			}
			continue
		}
		// The piece may have been cancelled while we waited.
		l.mu.Lock()
		if len(l.queue) == 0 || l.queue[0] != cur {
			l.mu.Unlock()
			continue // tokens stay reserved for the next piece
		}
		off := cur.off
		cur.off += n
		l.queuedB -= n
		if cur.off == len(cur.data) {
			l.queue = l.queue[1:]
		}
		l.mu.Unlock()
		reserved = false
		f := wire.Data(cur.key.obj, cur.key.chunk, uint32(off), cur.data[off:off+n])
		b, err := f.Append(buf[:0])
		if err == nil {
			_, err = l.ch.Write(b)
		}
		if err != nil {
			l.closeWith(fmt.Errorf("writing data channel: %w", err))
			return
		}
		l.uploaded.Add(int64(n))
		l.h.onUploaded(l, n)
	}
}

// sleep waits d, or less when control frames or requests arrive; false when
// the link closed.
func (l *link) sleep(timer **time.Timer, d time.Duration) bool {
	if *timer == nil {
		*timer = time.NewTimer(d)
	} else {
		(*timer).Reset(d)
	}
	select {
	case <-(*timer).C:
		return true
	case <-l.wake:
		(*timer).Stop()
		return true
	case <-l.done:
		return false
	}
}

// pieceBytes is the payload of one DATA frame: the largest, unless the
// upload budget is so low that one would take over half a second (then
// smaller pieces keep the pacing smooth and the stall detection of the
// requester quiet). Either way the frame fills whole transport packets.
func (l *link) pieceBytes() int {
	lim := l.cfg.Limiter
	if lim == nil || lim.Limit() == rate.Inf {
		return fitPackets(wire.MaxPayloadBytes, l.packetBytes)
	}
	n := int(float64(lim.Limit()) / 2)
	return fitPackets(max(1024, min(n, wire.MaxPayloadBytes, max(lim.Burst(), 1))), l.packetBytes)
}

// fitPackets shortens a DATA payload of n bytes so that its frame fills
// whole transport packets of packetBytes each, when it needs more than
// one; packetBytes 0 (unknown) leaves n as it is.
//
// Over pion's SCTP a packet carries 1,156 bytes of a message: a 16 KiB
// frame travels as 14 full packets and a 200-byte runt, while a 16,184-byte
// frame fills exactly 14. Each packet costs a DTLS record, a system call
// and its share of a SACK at both ends, so the whole-packet frame moves a
// chunk in about 5% fewer packets (measured: BENCHMARK.md).
func fitPackets(n, packetBytes int) int {
	if packetBytes < minPacketBytes || packetBytes > wire.MaxFrameBytes {
		return n
	}
	frame := n + wire.DataHeaderBytes
	if frame <= packetBytes {
		return n
	}
	return frame/packetBytes*packetBytes - wire.DataHeaderBytes
}

// minPacketBytes is the smallest packet payload fitPackets believes: below
// it a report is wrong rather than a real transport (IPv6's minimum MTU
// leaves SCTP over DTLS about 1,200 bytes).
const minPacketBytes = 256

// reservePiece takes n tokens from lim and returns how long until they are
// there; false (nothing taken) when the budget cannot pay within 2 s.
func reservePiece(lim *rate.Limiter, n int) (time.Duration, bool) {
	if lim.Limit() == rate.Inf {
		return 0, true
	}
	now := time.Now()
	r := lim.ReserveN(now, min(n, max(lim.Burst(), 1)))
	if !r.OK() {
		return 0, false
	}
	d := r.DelayFrom(now)
	if d > 2*time.Second {
		r.CancelAt(now)
		return 0, false
	}
	return d, true
}
