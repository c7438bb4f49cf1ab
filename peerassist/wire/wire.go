// Package wire is the peer data protocol: the binary frames two peers exchange
// over a WebRTC DataChannel to announce, request and send chunks of objects.
// peerassist/PROTOCOL.md ("Peer data protocol") is the specification;
// testdata/vectors.json holds golden frames that every implementation (this
// one and the browser client's) must encode and decode identically.
//
// Every frame is one DataChannel message of at most MaxFrameBytes:
//
//	byte 0    version (1)
//	byte 1    type
//	bytes 2.. body, integers big-endian
//
// The codec is pure: no I/O, no allocation when decoding (slices of a
// decoded Frame alias the input).
package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
)

// Version is the protocol version this package speaks; it is byte 0 of every
// frame.
const Version = 1

// MaxFrameBytes is the largest frame: the DataChannel message size every
// browser accepts.
const MaxFrameBytes = 16 << 10

// Header sizes, in bytes, of the frame types (version and type included).
const (
	helloBytes    = 2 + 4
	chunkRefBytes = 2 + 8 + 4 // HAVE, REQUEST, CANCEL
	bitfieldBytes = 2 + 8 + 4 + 4
	dataBytes     = 2 + 8 + 4 + 4
	absentBytes   = chunkRefBytes + 1
)

// DataHeaderBytes is the size of a DATA frame without its payload.
const DataHeaderBytes = dataBytes

// MaxPayloadBytes is the most chunk bytes one DATA frame carries.
const MaxPayloadBytes = MaxFrameBytes - dataBytes

// MaxBitfieldCount is the most chunks one BITFIELD frame describes; larger
// objects are announced with several BITFIELD frames.
const MaxBitfieldCount = (MaxFrameBytes - bitfieldBytes) * 8

// Type is a frame type (byte 1).
type Type uint8

// Frame types.
const (
	// TypeHello opens a channel: the highest version the sender speaks,
	// capability flags and how many requests it queues.
	TypeHello Type = 1
	// TypeHave announces one verified chunk.
	TypeHave Type = 2
	// TypeBitfield announces the verified chunks of a range of an object.
	TypeBitfield Type = 3
	// TypeRequest asks for one whole chunk.
	TypeRequest Type = 4
	// TypeData carries part of a requested chunk at an offset.
	TypeData Type = 5
	// TypeAbsent refuses a request (or acknowledges a cancel), with a reason.
	TypeAbsent Type = 6
	// TypeCancel withdraws a request.
	TypeCancel Type = 7
)

var typeNames = [...]string{"", "hello", "have", "bitfield", "request", "data", "absent", "cancel"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType is the inverse of Type.String for the known types.
func ParseType(s string) (Type, bool) {
	for i, n := range typeNames {
		if i > 0 && n == s {
			return Type(i), true
		}
	}
	return 0, false
}

// Reason says why an ABSENT frame refuses a request.
type Reason uint8

// Absent reasons.
const (
	// ReasonNotHeld: the sender has no verified copy of the chunk (or does
	// not know the object).
	ReasonNotHeld Reason = 1
	// ReasonOverBudget: the sender has spent its upload budget.
	ReasonOverBudget Reason = 2
	// ReasonBusy: the sender already queues as many requests as it serves.
	ReasonBusy Reason = 3
	// ReasonCancelled: acknowledges a CANCEL; no more DATA follows for it.
	ReasonCancelled Reason = 4
)

var reasonNames = [...]string{"", "not_held", "over_budget", "busy", "cancelled"}

func (r Reason) String() string {
	if r.valid() {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

func (r Reason) valid() bool { return r >= ReasonNotHeld && r <= ReasonCancelled }

// ParseReason is the inverse of Reason.String for the known reasons.
func ParseReason(s string) (Reason, bool) {
	for i, n := range reasonNames {
		if i > 0 && n == s {
			return Reason(i), true
		}
	}
	return 0, false
}

// Hello flags.
const (
	// FlagServes: the sender answers requests (uploads). A peer with upload
	// off (data saver) clears it and answers every request ABSENT.
	FlagServes uint8 = 1 << 0
)

// ObjectID names an object: the edge's object ID (the manifest's object_id,
// 16 hex digits).
type ObjectID uint64

func (id ObjectID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// ParseObjectID parses the manifest's 16-hex-digit object_id.
func ParseObjectID(s string) (ObjectID, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("object id %q: want 16 hex digits", s)
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return 0, fmt.Errorf("object id %q: %w", s, err)
	}
	return ObjectID(binary.BigEndian.Uint64(b[:])), nil
}

// Frame is one decoded frame. Which fields are meaningful depends on Type:
//
//	HELLO     MaxVersion, Flags, MaxRequests
//	HAVE      Object, Chunk
//	BITFIELD  Object, Chunk (the first chunk described), Count, Bits
//	REQUEST   Object, Chunk
//	DATA      Object, Chunk, Offset, Payload
//	ABSENT    Object, Chunk, Reason
//	CANCEL    Object, Chunk
//
// The other fields are zero. Payload and Bits alias the decoded buffer.
type Frame struct {
	Type        Type
	MaxVersion  uint8
	Flags       uint8
	MaxRequests uint16
	Object      ObjectID
	Chunk       uint32
	Offset      uint32
	Count       uint32
	Bits        []byte
	Payload     []byte
	Reason      Reason
}

// Has reports whether a BITFIELD frame marks chunk as held.
func (f *Frame) Has(chunk uint32) bool {
	if chunk < f.Chunk || chunk-f.Chunk >= f.Count {
		return false
	}
	i := chunk - f.Chunk
	return f.Bits[i/8]&(0x80>>(i%8)) != 0
}

// Hello returns a HELLO frame.
func Hello(flags uint8, maxRequests uint16) Frame {
	return Frame{Type: TypeHello, MaxVersion: Version, Flags: flags, MaxRequests: maxRequests}
}

// Have returns a HAVE frame.
func Have(obj ObjectID, chunk uint32) Frame { return Frame{Type: TypeHave, Object: obj, Chunk: chunk} }

// Request returns a REQUEST frame.
func Request(obj ObjectID, chunk uint32) Frame {
	return Frame{Type: TypeRequest, Object: obj, Chunk: chunk}
}

// Cancel returns a CANCEL frame.
func Cancel(obj ObjectID, chunk uint32) Frame {
	return Frame{Type: TypeCancel, Object: obj, Chunk: chunk}
}

// Absent returns an ABSENT frame.
func Absent(obj ObjectID, chunk uint32, r Reason) Frame {
	return Frame{Type: TypeAbsent, Object: obj, Chunk: chunk, Reason: r}
}

// Data returns a DATA frame carrying payload at offset of chunk.
func Data(obj ObjectID, chunk, offset uint32, payload []byte) Frame {
	return Frame{Type: TypeData, Object: obj, Chunk: chunk, Offset: offset, Payload: payload}
}

// Bitfield returns a BITFIELD frame for count chunks from first; bit i of
// bits (most significant bit of byte 0 first) stands for chunk first+i.
func Bitfield(obj ObjectID, first, count uint32, bits []byte) Frame {
	return Frame{Type: TypeBitfield, Object: obj, Chunk: first, Count: count, Bits: bits}
}

// Size is the encoded length of f in bytes (valid frames only).
func (f Frame) Size() int {
	switch f.Type {
	case TypeHello:
		return helloBytes
	case TypeHave, TypeRequest, TypeCancel:
		return chunkRefBytes
	case TypeAbsent:
		return absentBytes
	case TypeData:
		return dataBytes + len(f.Payload)
	case TypeBitfield:
		return bitfieldBytes + len(f.Bits)
	}
	return 0
}

// Validate checks f against the rules Decode enforces, so that only frames
// a peer would accept are ever sent.
func (f Frame) Validate() error {
	switch f.Type {
	case TypeHello:
		if f.MaxVersion < 1 {
			return errorf(CodeHelloVersion, "hello: max_version 0")
		}
	case TypeHave, TypeRequest, TypeCancel:
	case TypeAbsent:
		if !f.Reason.valid() {
			return errorf(CodeReason, "absent: unknown reason %d", f.Reason)
		}
	case TypeData:
		switch {
		case len(f.Payload) == 0:
			return errorf(CodeDataEmpty, "data: empty payload")
		case len(f.Payload) > MaxPayloadBytes:
			return errorf(CodeTooLarge, "data: %d payload bytes, at most %d", len(f.Payload), MaxPayloadBytes)
		case uint64(f.Offset)+uint64(len(f.Payload)) > 1<<32:
			return errorf(CodeDataRange, "data: offset %d + %d bytes passes 2^32", f.Offset, len(f.Payload))
		}
	case TypeBitfield:
		return checkBitfield(f.Chunk, f.Count, f.Bits)
	default:
		return errorf(CodeType, "unknown frame type %d", f.Type)
	}
	return nil
}

func checkBitfield(first, count uint32, bits []byte) error {
	switch {
	case count == 0:
		return errorf(CodeBitfieldCount, "bitfield: count 0")
	case uint64(first)+uint64(count) > 1<<32:
		return errorf(CodeBitfieldCount, "bitfield: first %d + count %d passes 2^32", first, count)
	}
	want := (uint64(count) + 7) / 8
	if uint64(len(bits)) != want {
		return errorf(CodeLength, "bitfield: %d bytes of bits for count %d, want %d", len(bits), count, want)
	}
	if spare := count % 8; spare != 0 && bits[want-1]&(0xff>>spare) != 0 {
		return errorf(CodeBitfieldPadding, "bitfield: spare bits after chunk %d are set", uint64(first)+uint64(count)-1)
	}
	if count > MaxBitfieldCount { // only reachable when encoding
		return errorf(CodeTooLarge, "bitfield: count %d, at most %d per frame", count, MaxBitfieldCount)
	}
	return nil
}

// Append validates f and appends its encoding to dst.
func (f Frame) Append(dst []byte) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return dst, err
	}
	dst = append(dst, Version, byte(f.Type))
	switch f.Type {
	case TypeHello:
		dst = append(dst, f.MaxVersion, f.Flags)
		dst = binary.BigEndian.AppendUint16(dst, f.MaxRequests)
	case TypeHave, TypeRequest, TypeCancel:
		dst = appendRef(dst, &f)
	case TypeAbsent:
		dst = append(appendRef(dst, &f), byte(f.Reason))
	case TypeData:
		dst = binary.BigEndian.AppendUint32(appendRef(dst, &f), f.Offset)
		dst = append(dst, f.Payload...)
	case TypeBitfield:
		dst = binary.BigEndian.AppendUint32(appendRef(dst, &f), f.Count)
		dst = append(dst, f.Bits...)
	}
	return dst, nil
}

// Encode returns the encoding of f in a new buffer.
func (f Frame) Encode() ([]byte, error) { return f.Append(make([]byte, 0, f.Size())) }

func appendRef(dst []byte, f *Frame) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Object))
	return binary.BigEndian.AppendUint32(dst, f.Chunk)
}

// Decode parses one frame. It never panics; every malformed frame yields an
// *Error whose Code is one of the Code constants. Slices of the result alias
// b.
func Decode(b []byte) (Frame, error) {
	var f Frame
	if len(b) > MaxFrameBytes {
		return f, errorf(CodeTooLarge, "frame of %d bytes, at most %d", len(b), MaxFrameBytes)
	}
	if len(b) < 2 {
		return f, errorf(CodeTruncated, "frame of %d bytes, want at least 2", len(b))
	}
	if b[0] != Version {
		return f, errorf(CodeVersion, "version %d, this peer speaks %d", b[0], Version)
	}
	f.Type = Type(b[1])
	var fixed int
	switch f.Type {
	case TypeHello:
		fixed = helloBytes
	case TypeHave, TypeRequest, TypeCancel:
		fixed = chunkRefBytes
	case TypeAbsent:
		fixed = absentBytes
	case TypeData:
		fixed = dataBytes
	case TypeBitfield:
		fixed = bitfieldBytes
	default:
		return Frame{}, errorf(CodeType, "unknown frame type %d", b[1])
	}
	if len(b) < fixed {
		return Frame{}, errorf(CodeTruncated, "%s: %d bytes, want %d", f.Type, len(b), fixed)
	}
	variable := f.Type == TypeData || f.Type == TypeBitfield
	if !variable && len(b) != fixed {
		return Frame{}, errorf(CodeLength, "%s: %d bytes, want %d", f.Type, len(b), fixed)
	}
	if f.Type == TypeHello {
		f.MaxVersion, f.Flags = b[2], b[3]
		f.MaxRequests = binary.BigEndian.Uint16(b[4:])
	} else {
		f.Object = ObjectID(binary.BigEndian.Uint64(b[2:]))
		f.Chunk = binary.BigEndian.Uint32(b[10:])
	}
	switch f.Type {
	case TypeAbsent:
		f.Reason = Reason(b[14])
	case TypeData:
		f.Offset = binary.BigEndian.Uint32(b[14:])
		f.Payload = b[dataBytes:len(b):len(b)]
	case TypeBitfield:
		f.Count = binary.BigEndian.Uint32(b[14:])
		f.Bits = b[bitfieldBytes:len(b):len(b)]
	}
	if err := f.Validate(); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// Error codes: stable names for the ways a frame can be malformed, shared
// with the browser client through the golden vectors.
const (
	CodeTooLarge        = "too_large"        // frame over MaxFrameBytes, payload or bitfield too long
	CodeTruncated       = "truncated"        // shorter than its type's header
	CodeVersion         = "version"          // byte 0 is not Version
	CodeType            = "type"             // unknown type byte
	CodeLength          = "length"           // wrong length for a fixed-size frame, or bits for count
	CodeHelloVersion    = "hello_version"    // HELLO max_version 0
	CodeReason          = "reason"           // ABSENT reason not 1..4
	CodeDataEmpty       = "data_empty"       // DATA without payload
	CodeDataRange       = "data_range"       // DATA offset+length passes 2^32
	CodeBitfieldCount   = "bitfield_count"   // BITFIELD count 0 or first+count passes 2^32
	CodeBitfieldPadding = "bitfield_padding" // BITFIELD spare bits of the last byte set
)

// Error is a malformed frame. Code is one of the Code constants.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return "wire: " + e.Msg + " (" + e.Code + ")" }

// Is makes errors.Is(err, &Error{Code: c}) match any error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func errorf(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
