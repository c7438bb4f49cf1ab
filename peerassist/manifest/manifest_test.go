package manifest

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
)

func build(data []byte, chunkBytes int) *Manifest {
	var sums [][32]byte
	for off := 0; off < len(data); off += chunkBytes {
		sums = append(sums, sha256.Sum256(data[off:min(off+chunkBytes, len(data))]))
	}
	return New("/bytes/10", 0xabc, `"e"`, int64(len(data)), chunkBytes, sums)
}

func TestVerifyAndRanges(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 10)) // 100 bytes
	m := build(data, 32)
	if m.NumChunks() != 4 || m.ObjectID != "0000000000000abc" {
		t.Fatalf("NumChunks = %d, ObjectID = %s", m.NumChunks(), m.ObjectID)
	}
	tests := []struct {
		i          int
		start, end int64
	}{{0, 0, 32}, {1, 32, 64}, {3, 96, 100}}
	for _, tt := range tests {
		s, e := m.ChunkRange(tt.i)
		if s != tt.start || e != tt.end {
			t.Errorf("ChunkRange(%d) = %d,%d want %d,%d", tt.i, s, e, tt.start, tt.end)
		}
		if !m.Verify(tt.i, data[s:e]) {
			t.Errorf("Verify(%d) of the right bytes = false", tt.i)
		}
	}
	bad := append([]byte(nil), data[32:64]...)
	bad[5] ^= 1
	for name, tc := range map[string]struct {
		i int
		b []byte
	}{
		"flipped byte": {1, bad}, "short": {1, data[32:63]}, "long": {3, data[95:100]},
		"wrong chunk": {2, data[32:64]}, "negative index": {-1, data[:32]}, "past end": {4, data[:4]},
	} {
		if m.Verify(tc.i, tc.b) {
			t.Errorf("%s: Verify = true", name)
		}
	}
}

func TestParseValidates(t *testing.T) {
	good := build(make([]byte, 70), 32)
	raw, _ := json.Marshal(good)
	if _, err := Parse(raw); err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	tests := []struct{ name, json, want string }{
		{"not json", `{`, "manifest:"},
		{"negative size", `{"size":-1,"chunk_size":1,"sha256":[]}`, "negative size"},
		{"zero chunk", `{"size":0,"chunk_size":0,"sha256":[]}`, "chunk_size"},
		{"missing digests", `{"size":70,"chunk_size":32,"sha256":[]}`, "want 3"},
		{"short digest", `{"size":1,"chunk_size":32,"sha256":["ab"]}`, "hex digits"},
		{"not hex", `{"size":1,"chunk_size":32,"sha256":["` + strings.Repeat("zz", 32) + `"]}`, "sha256[0]"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want error containing %q", tt.name, err, tt.want)
		}
	}
	empty := build(nil, 32)
	if err := empty.Validate(); err != nil || empty.NumChunks() != 0 {
		t.Errorf("empty object: Validate = %v, chunks %d", err, empty.NumChunks())
	}
}

func FuzzParse(f *testing.F) {
	raw, _ := json.Marshal(build(make([]byte, 70), 32))
	f.Add(raw)
	f.Add([]byte(`{"size":9223372036854775807,"chunk_size":1,"sha256":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		// A manifest that parses must answer every chunk's range inside the object.
		for i := 0; i < m.NumChunks(); i++ {
			s, e := m.ChunkRange(i)
			if s < 0 || e > m.Size || s > e {
				t.Fatalf("chunk %d range %d-%d outside size %d", i, s, e, m.Size)
			}
		}
	})
}
