package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The metadata file of one committed version (see doc.go). Binary, little
// endian, self-checking:
//
//	magic     "EBXM"           4 bytes
//	format    uint32 = 1
//	id        uint64           xxhash64(key)
//	version   uint64
//	size      int64            body bytes
//	chunk     uint32           chunk bytes
//	storedAt  int64            Unix nanoseconds
//	keyLen    uint32, key
//	httpLen   uint32, http     the HTTP layer's blob
//	nChunks   uint32, nChunks × 32-byte SHA-256
//	trailer   SHA-256 of every byte above
//
// The trailer makes a torn or bit-rotted file detectable, so a metadata file
// is trusted only when it decodes completely and its sum matches.

const (
	metaMagic     = "EBXM"
	metaFormat    = 1
	metaFixedLen  = 4 + 4 + 8 + 8 + 8 + 4 + 8 // magic through storedAt
	maxKeyBytes   = 64 << 10                  // keys are URLs plus Vary values
	maxHTTPBytes  = 16 << 20                  // response headers are far smaller
	maxChunkBytes = 1 << 30
	minChunkBytes = 1
)

// errMeta marks a metadata file that must not be trusted.
var errMeta = errors.New("invalid metadata")

// meta is the decoded metadata of one committed version.
type meta struct {
	id, version uint64
	size        int64
	chunkBytes  int
	storedAt    time.Time
	key         string
	http        []byte
	sums        [][32]byte
}

func numChunks(size int64, chunkBytes int) int {
	if size <= 0 || chunkBytes <= 0 {
		return 0
	}
	return int((size + int64(chunkBytes) - 1) / int64(chunkBytes))
}

// encodeMeta serializes m with its trailing checksum.
func encodeMeta(m *meta) []byte {
	n := metaFixedLen + 4 + len(m.key) + 4 + len(m.http) + 4 + 32*len(m.sums) + sha256.Size
	b := make([]byte, 0, n)
	b = append(b, metaMagic...)
	b = binary.LittleEndian.AppendUint32(b, metaFormat)
	b = binary.LittleEndian.AppendUint64(b, m.id)
	b = binary.LittleEndian.AppendUint64(b, m.version)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.size))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.chunkBytes))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.storedAt.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.key)))
	b = append(b, m.key...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.http)))
	b = append(b, m.http...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.sums)))
	for i := range m.sums {
		b = append(b, m.sums[i][:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeMeta parses and checks a metadata file. Its input comes from disk,
// which may hold anything after a crash or a bad sector: it never panics and
// rejects every inconsistency.
func decodeMeta(b []byte) (*meta, error) {
	if len(b) < metaFixedLen+12+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes is too short", errMeta, len(b))
	}
	body, trailer := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, fmt.Errorf("%w: checksum mismatch", errMeta)
	}
	if string(body[:4]) != metaMagic {
		return nil, fmt.Errorf("%w: bad magic %q", errMeta, body[:4])
	}
	le := binary.LittleEndian
	if f := le.Uint32(body[4:]); f != metaFormat {
		return nil, fmt.Errorf("%w: unknown format %d", errMeta, f)
	}
	m := &meta{
		id:         le.Uint64(body[8:]),
		version:    le.Uint64(body[16:]),
		size:       int64(le.Uint64(body[24:])),
		chunkBytes: int(le.Uint32(body[32:])),
		storedAt:   time.Unix(0, int64(le.Uint64(body[36:]))),
	}
	rest := body[metaFixedLen:]
	field := func(name string, limit int) ([]byte, error) {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated before %s length", errMeta, name)
		}
		n := le.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(limit) || uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: %s length %d out of range", errMeta, name, n)
		}
		v := rest[:n:n]
		rest = rest[n:]
		return v, nil
	}
	key, err := field("key", maxKeyBytes)
	if err != nil {
		return nil, err
	}
	m.key = string(key)
	if m.http, err = field("http", maxHTTPBytes); err != nil {
		return nil, err
	}
	m.http = bytes.Clone(m.http)
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: truncated before chunk count", errMeta)
	}
	n := le.Uint32(rest)
	rest = rest[4:]
	switch {
	case m.size < 0:
		return nil, fmt.Errorf("%w: negative size %d", errMeta, m.size)
	case m.chunkBytes < minChunkBytes || m.chunkBytes > maxChunkBytes:
		return nil, fmt.Errorf("%w: chunk size %d out of range", errMeta, m.chunkBytes)
	case uint64(n) != uint64(numChunks(m.size, m.chunkBytes)):
		return nil, fmt.Errorf("%w: %d chunk sums for %d bytes in %d-byte chunks", errMeta, n, m.size, m.chunkBytes)
	case uint64(len(rest)) != 32*uint64(n):
		return nil, fmt.Errorf("%w: %d bytes of chunk sums, want %d", errMeta, len(rest), 32*uint64(n))
	case xxhash.Sum64String(m.key) != m.id:
		return nil, fmt.Errorf("%w: id %016x is not the hash of key %q", errMeta, m.id, m.key)
	}
	m.sums = make([][32]byte, n)
	for i := range m.sums {
		copy(m.sums[i][:], rest[32*i:])
	}
	return m, nil
}
