package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// DataChannelLabel is the label of the one DataChannel an offerer opens
// per PeerConnection (the browser client's too). An answerer takes the
// first channel whatever its label: a peer speaking another protocol (a
// WebTorrent peer) fails the HELLO check and is disconnected.
const DataChannelLabel = "peerassist"

// sctpReceiveWindowBytes is each association's SCTP receive window, and
// maxInflightBytes what a peer lets one neighbor owe it (requested, not yet
// received). Two pion behaviours set them:
//   - pion drops a DATA chunk that arrives when the receive window is full
//     (a zero-window probe), and announces the reopened window only with
//     the next SACK, so the sender waits for its retransmission timeout:
//     at least one second. A requester that never asks for more than the
//     window can hold never lets it fill, however late its reader runs.
//   - pion queues received packets between ICE, DTLS and SCTP in buffers
//     of 1,000,000 bytes and drops what does not fit, so what is in flight
//     (with DTLS and SCTP headers) must stay below that.
//
// 1 MiB is pion's default window; 768 KiB in flight is three 256 KiB
// chunks, about 810 KB on the wire.
const (
	sctpReceiveWindowBytes = 1 << 20
	maxInflightBytes       = 768 << 10
)

// udpBufferBytes is the socket buffer asked for the peer's WebRTC socket.
const udpBufferBytes = 8 << 20

// rtcEngine makes the PeerConnections of one peer. All of them share one
// UDP socket (an ICE UDP mux) bound to the peer's address, one DTLS
// certificate, and the SettingEngine that keeps ICE where it belongs.
// Safe for concurrent use; no usable zero value.
type rtcEngine struct {
	api  *webrtc.API
	mux  *ice.UDPMuxDefault // nil when not bound to one address
	udp  *net.UDPConn
	conf webrtc.Configuration
	// gatherTimeout bounds ICE gathering of one offer or answer.
	gatherTimeout time.Duration
}

// newRTCEngine prepares PeerConnections for a peer at addr. A valid addr
// binds every connection's ICE to that address (one UDP socket for all); a
// loopback addr also restricts ICE to the loopback interface, IPv4 UDP and
// no mDNS, so tests and the swarm command never send traffic elsewhere. An
// invalid addr uses every interface, as a real device would.
func newRTCEngine(addr netip.Addr, logger *slog.Logger) (*rtcEngine, error) {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.LoggerFactory = slogFactory{logger}
	// Remote mDNS (.local) host candidates from browsers are discarded
	// (pion logs and drops them): such a browser still connects because
	// its connectivity checks reach our host candidates and pion learns
	// it as a peer-reflexive candidate. We never publish .local names.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A neighbor that vanishes (killed, unplugged) is noticed in seconds,
	// not pion's default half minute; deadlines cover the gap meanwhile.
	se.SetICETimeouts(3*time.Second, 6*time.Second, time.Second)
	// pion queues received packets between ICE, DTLS and SCTP in buffers
	// of 1,000,000 bytes and drops what does not fit. SCTP's default
	// receive window (1 MiB) lets a sender put more than that in flight
	// (with DTLS and SCTP headers), so a receiver that falls behind for a
	// moment loses packets and the sender waits a one-second RTO. A
	// smaller window keeps every burst inside those buffers.
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveWindowBytes)
	e := &rtcEngine{gatherTimeout: 10 * time.Second}
	if addr.IsValid() {
		addr = addr.Unmap()
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return nil, fmt.Errorf("binding WebRTC socket on %v: %w", addr, err)
		}
		e.udp = udp
		// Every connection of the peer shares this socket: a burst from
		// several neighbors overflows the default buffer (about 200 KiB),
		// and SCTP recovers from such drops only after seconds. The kernel
		// caps the size at net.core.rmem_max / wmem_max.
		if err := udp.SetReadBuffer(udpBufferBytes); err != nil {
			logger.Debug("setting the WebRTC socket's receive buffer", "err", err)
		}
		if err := udp.SetWriteBuffer(udpBufferBytes); err != nil {
			logger.Debug("setting the WebRTC socket's send buffer", "err", err)
		}
		e.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: udp, Logger: se.LoggerFactory.NewLogger("udpmux")})
		se.SetICEUDPMux(e.mux)
		se.SetIPFilter(func(ip net.IP) bool { a, _ := netip.AddrFromSlice(ip); return a.Unmap() == addr })
		if addr.IsLoopback() {
			se.SetIncludeLoopbackCandidate(true)
			se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("generating DTLS key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("generating DTLS certificate: %w", err)
	}
	e.conf = webrtc.Configuration{Certificates: []webrtc.Certificate{*cert}}
	e.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	return e, nil
}

func (e *rtcEngine) close() {
	if e.mux != nil {
		_ = e.mux.Close()
	}
	if e.udp != nil {
		_ = e.udp.Close()
	}
}

// offer returns a new PeerConnection with our DataChannel and its complete
// SDP offer (non-trickle: every candidate is in the SDP, as the WebTorrent
// tracker protocol relays one offer and one answer).
func (e *rtcEngine) offer(ctx context.Context) (*webrtc.PeerConnection, *webrtc.DataChannel, webrtc.SessionDescription, error) {
	pc, err := e.api.NewPeerConnection(e.conf)
	if err != nil {
		return nil, nil, webrtc.SessionDescription{}, fmt.Errorf("new peer connection: %w", err)
	}
	ordered := true
	dc, err := pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err == nil {
		var sd webrtc.SessionDescription
		sd, err = pc.CreateOffer(nil)
		if err == nil {
			sd, err = e.setLocal(ctx, pc, sd)
		}
		if err == nil {
			return pc, dc, sd, nil
		}
	}
	_ = pc.Close()
	return nil, nil, webrtc.SessionDescription{}, fmt.Errorf("creating offer: %w", err)
}

// answer returns a new PeerConnection that accepted offer, and its complete
// SDP answer. The remote's DataChannel arrives through OnDataChannel, which
// the caller sets with onChannel before the connection can open.
func (e *rtcEngine) answer(ctx context.Context, offer webrtc.SessionDescription, onChannel func(*webrtc.DataChannel)) (*webrtc.PeerConnection, webrtc.SessionDescription, error) {
	if offer.Type != webrtc.SDPTypeOffer {
		return nil, webrtc.SessionDescription{}, fmt.Errorf("answering an SDP of type %v", offer.Type)
	}
	pc, err := e.api.NewPeerConnection(e.conf)
	if err != nil {
		return nil, webrtc.SessionDescription{}, fmt.Errorf("new peer connection: %w", err)
	}
	pc.OnDataChannel(onChannel)
	var sd webrtc.SessionDescription
	if err = pc.SetRemoteDescription(offer); err == nil {
		if sd, err = pc.CreateAnswer(nil); err == nil {
			sd, err = e.setLocal(ctx, pc, sd)
		}
	}
	if err != nil {
		_ = pc.Close()
		return nil, webrtc.SessionDescription{}, fmt.Errorf("answering offer: %w", err)
	}
	return pc, sd, nil
}

func (e *rtcEngine) setLocal(ctx context.Context, pc *webrtc.PeerConnection, sd webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		return sd, err
	}
	t := time.NewTimer(e.gatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return sd, errors.New("ICE gathering timed out")
	case <-ctx.Done():
		return sd, ctx.Err()
	}
	return *pc.LocalDescription(), nil
}

// rtcChannel adapts a detached pion DataChannel to the link's channel.
// Closing it closes the whole PeerConnection: one channel per connection.
type rtcChannel struct {
	datachannel.ReadWriteCloser
	dc *webrtc.DataChannel
	pc *webrtc.PeerConnection
}

// detach turns an open DataChannel into an rtcChannel.
func detach(pc *webrtc.PeerConnection, dc *webrtc.DataChannel) (*rtcChannel, error) {
	rw, err := dc.Detach()
	if err != nil {
		return nil, fmt.Errorf("detaching data channel: %w", err)
	}
	return &rtcChannel{ReadWriteCloser: rw, dc: dc, pc: pc}, nil
}

// PacketPayloadBytes is how many bytes of a message one SCTP packet of
// this connection carries: pion cuts every message into DATA (or I-DATA,
// when both ends support message interleaving) chunks of the MTU less the
// SCTP common header and the chunk header, rounded down to 4 bytes (pion
// sctp's maxPayloadSizeForMTU). 0 before the association is up.
// TestPacketPayloadBytes checks it against what pion sends.
func (c *rtcChannel) PacketPayloadBytes() int {
	t := c.dc.Transport()
	if t == nil {
		return 0
	}
	md, ok := t.Metadata()
	if !ok {
		return 0
	}
	return sctpPacketPayloadBytes(int(t.Stats().MTU), md.MessageInterleavingEnabled)
}

// sctpPacketPayloadBytes is the message bytes one SCTP packet of mtu bytes
// carries in a single DATA or I-DATA chunk (RFC 9260 3.1 and 3.3.1,
// RFC 8260 2.1); 0 when mtu leaves no room.
func sctpPacketPayloadBytes(mtu int, interleaving bool) int {
	const commonHeaderBytes, dataHeaderBytes, iDataHeaderBytes = 12, 16, 20
	n := mtu - commonHeaderBytes - dataHeaderBytes
	if interleaving {
		n = mtu - commonHeaderBytes - iDataHeaderBytes
	}
	if n <= 0 {
		return 0
	}
	return n - n%4
}

func (c *rtcChannel) BufferedAmount() uint64                  { return c.dc.BufferedAmount() }
func (c *rtcChannel) SetBufferedAmountLowThreshold(th uint64) { c.dc.SetBufferedAmountLowThreshold(th) }
func (c *rtcChannel) OnBufferedAmountLow(f func())            { c.dc.OnBufferedAmountLow(f) }

func (c *rtcChannel) Close() error {
	err := c.ReadWriteCloser.Close()
	if perr := c.pc.Close(); perr != nil && err == nil {
		err = perr
	}
	return err
}

// slogFactory sends pion's logs to slog: errors at info, warnings at
// debug, and pion's own debug and info messages (per packet, per SACK) at
// LevelPionDetail, below debug, where only a handler asking for them shows
// them. pion reports ordinary network churn (a peer gone, a candidate pair
// that failed, a connection closed while connecting) as warnings and
// errors, which are not ours to alarm on; what matters to the peer is
// logged by the peer.
type slogFactory struct{ l *slog.Logger }

// LevelPionDetail is the slog level of pion's debug and info logs.
const LevelPionDetail = slog.LevelDebug - 4

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLeveled{f.l.With("component", "pion/"+scope)}
}

type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) log(level slog.Level, format string, args []any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (s slogLeveled) Trace(msg string)                  {}
func (s slogLeveled) Tracef(format string, args ...any) {}
func (s slogLeveled) Debug(msg string)                  { s.l.Log(context.Background(), LevelPionDetail, msg) }
func (s slogLeveled) Debugf(format string, args ...any) { s.log(LevelPionDetail, format, args) }
func (s slogLeveled) Info(msg string)                   { s.l.Log(context.Background(), LevelPionDetail, msg) }
func (s slogLeveled) Infof(format string, args ...any)  { s.log(LevelPionDetail, format, args) }
func (s slogLeveled) Warn(msg string)                   { s.l.Debug(msg) }
func (s slogLeveled) Warnf(format string, args ...any)  { s.log(slog.LevelDebug, format, args) }
func (s slogLeveled) Error(msg string)                  { s.l.Info(msg) }
func (s slogLeveled) Errorf(format string, args ...any) { s.log(slog.LevelInfo, format, args) }
