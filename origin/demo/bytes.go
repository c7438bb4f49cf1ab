package demo

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// MaxBytes is the largest object /bytes/{n} serves: 1 TiB, far more than any
// test needs (64 GiB fills) and small enough that offsets never overflow.
const MaxBytes int64 = 1 << 40

// Content is the synthetic body of /bytes/{n} at one version: n bytes that
// are a pure function of (n, version, position). Any byte range is produced
// directly, without generating the prefix and without holding the object in
// memory, so tests and other packages can verify what they received without
// a round trip to the origin.
//
// Bytes are generated 8 at a time: word i (bytes 8i..8i+7, little endian) is
// a SplitMix64 finalizer of seed+i*golden, where the seed hashes n and the
// version. Different n or versions therefore differ from the first byte on.
// This is not cryptographic; it only has to be fast (GB/s) and stable.
//
// A Content is an immutable value: the zero value is the empty object, and
// it is safe for concurrent use.
type Content struct {
	size int64
	seed uint64
}

// NewContent returns the content of /bytes/{size} at version ("" is the
// default version). It panics if size is negative or above MaxBytes: callers
// validate untrusted sizes with ParseSize first.
func NewContent(size int64, version string) Content {
	if size < 0 || size > MaxBytes {
		panic(fmt.Sprintf("demo: content size %d out of range [0, %d]", size, MaxBytes))
	}
	d := xxhash.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	_, _ = d.Write(b[:])
	_, _ = d.WriteString(version)
	return Content{size: size, seed: d.Sum64()}
}

// Bytes fills dst with the bytes of /bytes/{n} (default version) starting at
// offset off, clipped to the object: it returns how many bytes it wrote
// (fewer than len(dst) only at the end of the object).
func Bytes(n, off int64, dst []byte) int {
	return NewContent(n, "").Fill(off, dst)
}

// Size is the object's length in bytes.
func (c Content) Size() int64 { return c.size }

// ETag is the object's strong entity tag, quoted: it changes with n and
// with the version.
func (c Content) ETag() string {
	return `"b` + strconv.FormatInt(c.size, 10) + "-" + strconv.FormatUint(c.seed, 16) + `"`
}

const golden = 0x9E3779B97F4A7C15

func (c Content) word(i uint64) uint64 {
	z := c.seed + i*golden
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Fill writes the bytes at [off, off+len(dst)) of the object into dst,
// clipped to the object's end, and returns how many it wrote.
func (c Content) Fill(off int64, dst []byte) int {
	if off < 0 || off >= c.size {
		return 0
	}
	if rest := c.size - off; int64(len(dst)) > rest {
		dst = dst[:rest]
	}
	n := len(dst)
	i := uint64(off) / 8
	// Unaligned head: the tail bytes of word i.
	if skip := int(off % 8); skip != 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], c.word(i))
		k := copy(dst, w[skip:])
		dst = dst[k:]
		i++
	}
	for len(dst) >= 32 {
		binary.LittleEndian.PutUint64(dst[0:8], c.word(i))
		binary.LittleEndian.PutUint64(dst[8:16], c.word(i+1))
		binary.LittleEndian.PutUint64(dst[16:24], c.word(i+2))
		binary.LittleEndian.PutUint64(dst[24:32], c.word(i+3))
		dst = dst[32:]
		i += 4
	}
	for len(dst) >= 8 {
		binary.LittleEndian.PutUint64(dst, c.word(i))
		dst = dst[8:]
		i++
	}
	if len(dst) > 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], c.word(i))
		copy(dst, w[:])
	}
	return n
}

// ReadAt implements io.ReaderAt over the object.
func (c Content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("demo: negative offset %d", off)
	}
	n := c.Fill(off, p)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ParseSize parses the {n} of /bytes/{n}: decimal digits only, at most
// MaxBytes.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing size: want /bytes/{n} with n a number of bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("invalid size %q: want a non-negative decimal number of bytes", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxBytes {
		return 0, fmt.Errorf("size %s too large: at most %d bytes", s, MaxBytes)
	}
	return n, nil
}

var _ io.ReaderAt = Content{}
