// Package manifest is the integrity contract between the edge and peers: the
// size of an object, its chunk size and the SHA-256 of every chunk, as the
// edge computed them while filling its cache. Peers verify every chunk that
// arrives from another peer against it before using or re-sharing it.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Manifest is the JSON document served at GET /pa/v1/manifest?url=...
type Manifest struct {
	// URL is the object's URL as the client asked for it (path and query,
	// relative to the edge).
	URL string `json:"url"`
	// ObjectID is the edge's object ID (xxhash64 of its cache key) in 16 hex
	// digits; peers name the object by it in the data protocol.
	ObjectID string `json:"object_id"`
	// ETag is the strong validator of this version of the object.
	ETag string `json:"etag,omitempty"`
	// Size is the object's length in bytes.
	Size int64 `json:"size"`
	// ChunkBytes is the chunk size; chunk i covers bytes
	// [i*ChunkBytes, min(Size, (i+1)*ChunkBytes)).
	ChunkBytes int `json:"chunk_size"`
	// SHA256 holds one lowercase hex SHA-256 per chunk, in order.
	SHA256 []string `json:"sha256"`
}

// New builds a manifest from raw chunk digests.
func New(url string, objectID uint64, etag string, size int64, chunkBytes int, sums [][32]byte) *Manifest {
	m := &Manifest{URL: url, ObjectID: fmt.Sprintf("%016x", objectID), ETag: etag, Size: size, ChunkBytes: chunkBytes,
		SHA256: make([]string, len(sums))}
	for i, s := range sums {
		m.SHA256[i] = hex.EncodeToString(s[:])
	}
	return m
}

// NumChunks is the number of chunks of the object.
func (m *Manifest) NumChunks() int { return len(m.SHA256) }

// ChunkRange returns the byte range [start, end) of chunk i.
func (m *Manifest) ChunkRange(i int) (start, end int64) {
	start = int64(i) * int64(m.ChunkBytes)
	end = min(start+int64(m.ChunkBytes), m.Size)
	return start, end
}

// Verify reports whether data is exactly chunk i.
func (m *Manifest) Verify(i int, data []byte) bool {
	if i < 0 || i >= len(m.SHA256) {
		return false
	}
	start, end := m.ChunkRange(i)
	if int64(len(data)) != end-start {
		return false
	}
	sum := sha256.Sum256(data)
	want, err := hex.DecodeString(m.SHA256[i])
	return err == nil && bytes.Equal(sum[:], want)
}

// Validate checks that the manifest is internally consistent: what a peer
// must check before trusting a manifest it parsed.
func (m *Manifest) Validate() error {
	switch {
	case m.Size < 0:
		return fmt.Errorf("manifest: negative size %d", m.Size)
	case m.ChunkBytes <= 0:
		return fmt.Errorf("manifest: chunk_size %d must be positive", m.ChunkBytes)
	}
	want := (m.Size + int64(m.ChunkBytes) - 1) / int64(m.ChunkBytes)
	if int64(len(m.SHA256)) != want {
		return fmt.Errorf("manifest: %d digests for %d bytes in %d-byte chunks, want %d", len(m.SHA256), m.Size, m.ChunkBytes, want)
	}
	for i, h := range m.SHA256 {
		if len(h) != 64 {
			return fmt.Errorf("manifest: sha256[%d] is %d hex digits, want 64", i, len(h))
		}
		if _, err := hex.DecodeString(h); err != nil {
			return fmt.Errorf("manifest: sha256[%d]: %v", i, err)
		}
	}
	return nil
}

// Parse decodes and validates a manifest.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
