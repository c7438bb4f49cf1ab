package signal

import (
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// IDLen is the length in bytes of info_hash, peer_id and offer_id.
const IDLen = 20

// ID is a 20-byte binary identifier: an info_hash, peer_id or offer_id.
// On the wire it is a JSON string of 20 code points in 0-255.
type ID [IDLen]byte

// String returns the ID in lowercase hex (40 digits), as bittorrent-tracker
// logs it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseHexID parses 40 hex digits.
func ParseHexID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDLen {
		return id, fmt.Errorf("signal: hex id %q: want %d hex digits", s, 2*IDLen)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("signal: hex id %q: %w", s, err)
	}
	return id, nil
}

// IDFromString returns the ID whose binary-string form is s (20 characters in
// U+0000..U+00FF), the way JavaScript clients build peer IDs from text such as
// "-WW0102-abcdefghijkl".
func IDFromString(s string) (ID, error) {
	var id ID
	n := 0
	for _, r := range s {
		if r > 0xFF || n == IDLen {
			return ID{}, fmt.Errorf("signal: %q is not a %d-character binary string", s, IDLen)
		}
		id[n] = byte(r)
		n++
	}
	if n != IDLen {
		return ID{}, fmt.Errorf("signal: %q is not a %d-character binary string", s, IDLen)
	}
	return id, nil
}

// AppendJSON appends the ID as a JSON string exactly as JavaScript's
// JSON.stringify writes String.fromCharCode(...bytes): control characters
// escaped, bytes 0x80-0xFF as the UTF-8 encoding of U+0080-U+00FF.
func (id ID) AppendJSON(b []byte) []byte {
	b = append(b, '"')
	for _, c := range id {
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c >= 0x20 && c < 0x80:
			b = append(b, c)
		case c >= 0x80:
			b = utf8.AppendRune(b, rune(c))
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// MarshalJSON implements json.Marshaler with the binary-string encoding.
func (id ID) MarshalJSON() ([]byte, error) { return id.AppendJSON(nil), nil }

// UnmarshalJSON implements json.Unmarshaler with the binary-string encoding.
func (id *ID) UnmarshalJSON(data []byte) error {
	l := lexer{data: data}
	l.ws()
	v, err := l.readID("id")
	if err != nil {
		return err
	}
	l.ws()
	if l.pos != len(data) {
		return errorf("id", "trailing data")
	}
	*id = v
	return nil
}
