package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
)

type vectorFile struct {
	Version       int `json:"version"`
	MaxFrameBytes int `json:"max_frame_bytes"`
	Valid         []struct {
		Name  string          `json:"name"`
		Hex   string          `json:"hex"`
		Frame json.RawMessage `json:"frame"`
	} `json:"valid"`
	Invalid []struct {
		Name  string `json:"name"`
		Hex   string `json:"hex"`
		Error string `json:"error"`
	} `json:"invalid"`
}

// jsonFrame is the vectors' JSON form of a frame.
type jsonFrame struct {
	Type        string  `json:"type"`
	MaxVersion  *uint8  `json:"max_version"`
	Flags       *uint8  `json:"flags"`
	MaxRequests *uint16 `json:"max_requests"`
	Object      string  `json:"object"`
	Chunk       uint32  `json:"chunk"`
	First       uint32  `json:"first"`
	Count       uint32  `json:"count"`
	Offset      uint32  `json:"offset"`
	Bits        string  `json:"bits"`
	Payload     string  `json:"payload"`
	Reason      string  `json:"reason"`
}

func (j *jsonFrame) frame() (Frame, error) {
	t, ok := ParseType(j.Type)
	if !ok {
		return Frame{}, fmt.Errorf("unknown type %q", j.Type)
	}
	f := Frame{Type: t}
	if t == TypeHello {
		if j.MaxVersion == nil || j.Flags == nil || j.MaxRequests == nil {
			return f, errors.New("hello without max_version, flags or max_requests")
		}
		f.MaxVersion, f.Flags, f.MaxRequests = *j.MaxVersion, *j.Flags, *j.MaxRequests
		return f, nil
	}
	id, err := ParseObjectID(j.Object)
	if err != nil {
		return f, err
	}
	f.Object, f.Chunk = id, j.Chunk
	switch t {
	case TypeBitfield:
		f.Chunk, f.Count = j.First, j.Count
		f.Bits, err = hex.DecodeString(j.Bits)
	case TypeData:
		f.Offset = j.Offset
		f.Payload, err = hex.DecodeString(j.Payload)
	case TypeAbsent:
		if f.Reason, ok = ParseReason(j.Reason); !ok {
			err = fmt.Errorf("unknown reason %q", j.Reason)
		}
	}
	return f, err
}

func loadVectors(t testing.TB) vectorFile {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	if v.Version != Version || v.MaxFrameBytes != MaxFrameBytes {
		t.Fatalf("vectors are for version %d, %d-byte frames; codec is %d, %d", v.Version, v.MaxFrameBytes, Version, MaxFrameBytes)
	}
	if len(v.Valid) == 0 || len(v.Invalid) == 0 {
		t.Fatal("vectors.json has no valid or no invalid frames")
	}
	return v
}

func equalFrames(a, b Frame) bool {
	return a.Type == b.Type && a.MaxVersion == b.MaxVersion && a.Flags == b.Flags && a.MaxRequests == b.MaxRequests &&
		a.Object == b.Object && a.Chunk == b.Chunk && a.Offset == b.Offset && a.Count == b.Count &&
		bytes.Equal(a.Bits, b.Bits) && bytes.Equal(a.Payload, b.Payload) && a.Reason == b.Reason
}

func short(f Frame) string {
	if len(f.Payload) > 8 {
		f.Payload = f.Payload[:8]
	}
	if len(f.Bits) > 8 {
		f.Bits = f.Bits[:8]
	}
	return fmt.Sprintf("%+v", f)
}

func TestGoldenValid(t *testing.T) {
	for _, v := range loadVectors(t).Valid {
		t.Run(v.Name, func(t *testing.T) {
			var jf jsonFrame
			if err := json.Unmarshal(v.Frame, &jf); err != nil {
				t.Fatal(err)
			}
			want, err := jf.frame()
			if err != nil {
				t.Fatalf("vector frame: %v", err)
			}
			raw, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode(%s) error %v, want %s", v.Hex, err, short(want))
			}
			if !equalFrames(got, want) {
				t.Errorf("Decode = %s, want %s", short(got), short(want))
			}
			enc, err := want.Encode()
			if err != nil {
				t.Fatalf("Encode(%s) error %v", short(want), err)
			}
			if !bytes.Equal(enc, raw) {
				t.Errorf("Encode(%s) = %x, want %s", short(want), enc, v.Hex)
			}
			if want.Size() != len(raw) {
				t.Errorf("Size() = %d, want %d", want.Size(), len(raw))
			}
		})
	}
}

func TestGoldenInvalid(t *testing.T) {
	for _, v := range loadVectors(t).Invalid {
		t.Run(v.Name, func(t *testing.T) {
			raw, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Decode(raw)
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("Decode(%.40s) = %s, %v; want error %q", v.Hex, short(f), err, v.Error)
			}
			if we.Code != v.Error {
				t.Errorf("Decode(%.40s) error code %q (%v), want %q", v.Hex, we.Code, err, v.Error)
			}
			if !errors.Is(err, &Error{Code: v.Error}) {
				t.Errorf("errors.Is(%v, code %q) = false", err, v.Error)
			}
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		code string
	}{
		{"unknown type", Frame{Type: 9}, CodeType},
		{"zero type", Frame{}, CodeType},
		{"hello version 0", Frame{Type: TypeHello}, CodeHelloVersion},
		{"absent reason 0", Absent(1, 1, 0), CodeReason},
		{"data empty", Data(1, 1, 0, nil), CodeDataEmpty},
		{"data too large", Data(1, 1, 0, make([]byte, MaxPayloadBytes+1)), CodeTooLarge},
		{"data range", Data(1, 1, 1<<32-1, []byte{1, 2}), CodeDataRange},
		{"bitfield count 0", Bitfield(1, 0, 0, nil), CodeBitfieldCount},
		{"bitfield bits short", Bitfield(1, 0, 9, []byte{0xff}), CodeLength},
		{"bitfield padding", Bitfield(1, 0, 9, []byte{0xff, 0x40}), CodeBitfieldPadding},
		{"bitfield too large", Bitfield(1, 0, MaxBitfieldCount+8, make([]byte, MaxBitfieldCount/8+1)), CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, err := tt.f.Append([]byte{0xaa})
			if !errors.Is(err, &Error{Code: tt.code}) {
				t.Errorf("Append(%s) error %v, want code %q", short(tt.f), err, tt.code)
			}
			if !bytes.Equal(dst, []byte{0xaa}) {
				t.Errorf("Append on error changed dst to %x", dst)
			}
		})
	}
}

func TestBitfieldHas(t *testing.T) {
	f := Bitfield(1, 16, 10, []byte{0xa5, 0x40})
	want := map[uint32]bool{16: true, 18: true, 21: true, 23: true, 25: true}
	for c := uint32(0); c < 40; c++ {
		if got := f.Has(c); got != want[c] {
			t.Errorf("Has(%d) = %v, want %v", c, got, want[c])
		}
	}
}

func TestObjectID(t *testing.T) {
	tests := []struct {
		in   string
		want ObjectID
		ok   bool
	}{
		{"0123456789abcdef", 0x0123456789abcdef, true},
		{"FFFFFFFFFFFFFFFF", 1<<64 - 1, true},
		{"0123456789abcde", 0, false},
		{"0123456789abcdeg", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseObjectID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseObjectID(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != fmt.Sprintf("%016x", uint64(tt.want)) {
			t.Errorf("String() = %q", got.String())
		}
	}
}

func TestNames(t *testing.T) {
	for ty := TypeHello; ty <= TypeCancel; ty++ {
		if got, ok := ParseType(ty.String()); !ok || got != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty.String(), got, ok)
		}
	}
	for r := ReasonNotHeld; r <= ReasonCancelled; r++ {
		if got, ok := ParseReason(r.String()); !ok || got != r {
			t.Errorf("ParseReason(%q) = %v, %v", r.String(), got, ok)
		}
	}
	if got := Type(0).String(); got != "type(0)" {
		t.Errorf("Type(0) = %q", got)
	}
	if _, ok := ParseReason("reason(9)"); ok {
		t.Error("ParseReason accepted an unknown name")
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	f := Data(7, 3, 0, make([]byte, MaxPayloadBytes))
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Decode(b) }); n != 0 {
		t.Errorf("Decode allocates %v times per frame, want 0", n)
	}
}

// FuzzDecode checks that Decode never panics, and that every frame it
// accepts encodes back to exactly the same bytes (the encoding is canonical,
// so two implementations cannot disagree on a frame both accept).
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f).Valid {
		if b, err := hex.DecodeString(v.Hex); err == nil && len(b) < 64 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || we.Code == "" {
				t.Fatalf("Decode(%x) error %v is not a coded *Error", b, err)
			}
			return
		}
		enc, err := fr.Encode()
		if err != nil {
			t.Fatalf("Decode(%x) accepted a frame Encode rejects: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("Encode(Decode(%x)) = %x", b, enc)
		}
	})
}

func BenchmarkDecodeData(b *testing.B) {
	f := Data(7, 3, 0, make([]byte, MaxPayloadBytes))
	buf, _ := f.Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendData(b *testing.B) {
	f := Data(7, 3, 0, make([]byte, MaxPayloadBytes))
	buf := make([]byte, 0, MaxFrameBytes)
	b.SetBytes(MaxFrameBytes)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
