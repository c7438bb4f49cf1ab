package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

func sampleMeta() *meta {
	key := "example.com/video/seg-001.m4s"
	body := content(key, 3*4096+17)
	return &meta{id: xxhash.Sum64String(key), version: 1234567, size: int64(len(body)), chunkBytes: 4096,
		storedAt: time.Unix(0, 1700000000123456789), key: key, http: []byte(`{"status":200}`),
		sums: chunkSums(body, 4096)}
}

func TestMetaRoundTrip(t *testing.T) {
	empty := &meta{id: xxhash.Sum64String(""), version: 1, chunkBytes: 1, storedAt: time.Unix(0, 0), http: []byte{}}
	for _, m := range []*meta{sampleMeta(), empty} {
		got, err := decodeMeta(encodeMeta(m))
		if err != nil {
			t.Fatalf("decodeMeta(encodeMeta(%+v)): %v", m, err)
		}
		if got.id != m.id || got.version != m.version || got.size != m.size || got.chunkBytes != m.chunkBytes ||
			!got.storedAt.Equal(m.storedAt) || got.key != m.key || !bytes.Equal(got.http, m.http) || !slices.Equal(got.sums, m.sums) {
			t.Errorf("round trip = %+v, want %+v", got, m)
		}
	}
}

func TestMetaRejects(t *testing.T) {
	good := encodeMeta(sampleMeta())
	resum := func(b []byte) []byte { // fix the trailer after an edit, to reach the field checks
		body := b[:len(b)-32]
		s := sha256.Sum256(body)
		return append(slices.Clone(body), s[:]...)
	}
	edit := func(off int, v byte) []byte {
		b := slices.Clone(good)
		b[off] = v
		return resum(b)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"flipped bit", func() []byte { b := slices.Clone(good); b[50] ^= 1; return b }()},
		{"bad magic", edit(0, 'X')},
		{"bad format", edit(4, 9)},
		{"wrong id", edit(8, good[8]+1)},
		{"negative size", edit(31, 0x80)},
		{"size not matching sums", edit(25, good[25]+0x10)},
		{"zero chunk size", func() []byte { b := slices.Clone(good); copy(b[32:36], []byte{0, 0, 0, 0}); return resum(b) }()},
		{"huge key length", func() []byte {
			b := slices.Clone(good)
			copy(b[44:48], []byte{0xff, 0xff, 0xff, 0x7f})
			return resum(b)
		}()},
		{"extra bytes", resum(append(slices.Clone(good[:len(good)-32]), 0, 0, 0, 0, 0))},
	} {
		if m, err := decodeMeta(tc.in); !errors.Is(err, errMeta) {
			t.Errorf("%s: decodeMeta = %+v, %v; want errMeta", tc.name, m, err)
		}
	}
}

// FuzzDecodeMeta feeds arbitrary bytes (what a damaged disk may hold) to
// the metadata parser: it must never panic, and what it accepts must encode
// back to the same bytes. Each input is also tried with a valid trailer, so
// that the fuzzer reaches the field checks behind the checksum.
func FuzzDecodeMeta(f *testing.F) {
	good := encodeMeta(sampleMeta())
	f.Add(good)
	f.Add(good[:len(good)-32])
	f.Add([]byte("EBXM"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sum := sha256.Sum256(b)
		for _, in := range [][]byte{b, append(slices.Clone(b), sum[:]...)} {
			m, err := decodeMeta(in)
			if err != nil {
				if !errors.Is(err, errMeta) {
					t.Errorf("decodeMeta(%x): error %v does not wrap errMeta", in, err)
				}
				continue
			}
			if again := encodeMeta(m); !bytes.Equal(again, in) {
				t.Errorf("decodeMeta accepted %x but it encodes back as %x", in, again)
			}
		}
	})
}
