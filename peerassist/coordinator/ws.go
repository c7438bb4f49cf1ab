package coordinator

// A minimal RFC 6455 server side: the handshake accept key, frame headers
// and in-place unmasking. Only what a signaling server needs: no
// extensions (permessage-deflate is not negotiated), no subprotocols.

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes (RFC 6455 section 7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocolError = 1002
	closeInvalidData   = 1007
	closePolicy        = 1008
	closeTooBig        = 1009
	closeInternal      = 1011
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// validKey reports whether key is the base64 of 16 bytes.
func validKey(key []byte) bool {
	if len(key) != 24 {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], key)
	return err == nil && n == 16
}

// maxFrameHeader is the longest server frame header (no mask).
const maxFrameHeader = 10

// frameHeader writes the header of an unmasked, final frame carrying n
// payload bytes into the end of dst (which must be maxFrameHeader long)
// and returns the offset where it starts, so a frame can be built by
// reserving maxFrameHeader bytes before the payload.
func frameHeader(dst []byte, op byte, n int) int {
	switch {
	case n < 126:
		dst[8] = 0x80 | op
		dst[9] = byte(n)
		return 8
	case n <= 0xFFFF:
		dst[6] = 0x80 | op
		dst[7] = 126
		binary.BigEndian.PutUint16(dst[8:], uint16(n))
		return 6
	default:
		dst[0] = 0x80 | op
		dst[1] = 127
		binary.BigEndian.PutUint64(dst[2:], uint64(n))
		return 0
	}
}

// appendFrame appends a complete unmasked frame.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	var hdr [maxFrameHeader]byte
	start := frameHeader(hdr[:], op, len(payload))
	b = append(b, hdr[start:]...)
	return append(b, payload...)
}

// closePayload is the body of a close frame: code and a short reason.
func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// unmask XORs p with the 4-byte mask key, starting at mask offset 0.
func unmask(p []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := binary.LittleEndian.Uint64(p[i:])
		binary.LittleEndian.PutUint64(p[i:], v^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// frame is one parsed client frame header.
type frame struct {
	fin     bool
	op      byte
	hdrLen  int
	payload int
	mask    [4]byte
}

// errFrame explains why a frame is refused and with which close code.
type errFrame struct {
	code   int
	reason string
}

// parseFrame parses the header at the start of b. It returns ok=false when
// b does not yet hold the whole header. Client frames must be masked, carry
// no RSV bits (no extension is negotiated) and no payload larger than
// maxPayload; control frames must be final and at most 125 bytes.
func parseFrame(b []byte, maxPayload int) (f frame, ok bool, e *errFrame) {
	if len(b) < 2 {
		return f, false, nil
	}
	b0, b1 := b[0], b[1]
	f.fin = b0&0x80 != 0
	f.op = b0 & 0x0F
	if b0&0x70 != 0 {
		return f, false, &errFrame{closeProtocolError, "reserved bits set"}
	}
	if b1&0x80 == 0 {
		return f, false, &errFrame{closeProtocolError, "client frames must be masked"}
	}
	n := uint64(b1 & 0x7F)
	h := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, false, nil
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return f, false, nil
		}
		n = binary.BigEndian.Uint64(b[2:])
		h = 10
	}
	switch f.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !f.fin || n > 125 {
			return f, false, &errFrame{closeProtocolError, "bad control frame"}
		}
	default:
		return f, false, &errFrame{closeProtocolError, "unknown opcode"}
	}
	if n > uint64(maxPayload) {
		return f, false, &errFrame{closeTooBig, "message too big"}
	}
	if len(b) < h+4 {
		return f, false, nil
	}
	copy(f.mask[:], b[h:h+4])
	f.hdrLen = h + 4
	f.payload = int(n)
	return f, true, nil
}
