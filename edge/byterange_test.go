package edge

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	tests := []struct {
		h          string
		size       int64
		res        rangeResult
		start, end int64
	}{
		{h: "", res: rangeNone},
		{h: "bytes=0-0", res: rangeOK, start: 0, end: 1},
		{h: "bytes=0-499", res: rangeOK, start: 0, end: 500},
		{h: "bytes=500-999", res: rangeOK, start: 500, end: 1000},
		{h: "bytes=500-5000", res: rangeOK, start: 500, end: 1000},
		{h: "bytes=999-", res: rangeOK, start: 999, end: 1000},
		{h: "bytes=0-", res: rangeOK, start: 0, end: 1000},
		{h: "bytes=-1", res: rangeOK, start: 999, end: 1000},
		{h: "bytes=-500", res: rangeOK, start: 500, end: 1000},
		{h: "bytes=-5000", res: rangeOK, start: 0, end: 1000},
		{h: "Bytes = 1-2 ", res: rangeOK, start: 1, end: 3},
		{h: "bytes=1-2,", res: rangeOK, start: 1, end: 3},
		{h: "bytes=1000-", res: rangeUnsatisfiable},
		{h: "bytes=1000-2000", res: rangeUnsatisfiable},
		{h: "bytes=-0", res: rangeUnsatisfiable},
		{h: "bytes=99999999999999999999999-", res: rangeUnsatisfiable},
		{h: "BYtes=9227000000000000000-", res: rangeUnsatisfiable}, // found by FuzzParseRange: overflowed to negative
		{h: "bytes=0-99999999999999999999999", res: rangeOK, start: 0, end: 1000},
		{h: "bytes=0-1,5-6", res: rangeNone},              // multi-range: 200 with the whole body
		{h: "bytes=2000-,3000-", res: rangeUnsatisfiable}, // none satisfiable
		{h: "bytes=2000-,0-1", res: rangeNone},
		{h: "bytes=5-1", res: rangeNone}, // invalid: ignored
		{h: "bytes=a-b", res: rangeNone},
		{h: "bytes=1", res: rangeNone},
		{h: "bytes=-", res: rangeNone},
		{h: "bytes=", res: rangeNone},
		{h: "bytes=--1", res: rangeNone},
		{h: "bytes=+1-2", res: rangeNone},
		{h: "items=0-1", res: rangeNone},
		{h: "bytes 0-1", res: rangeNone},
		{h: "bytes=0-1;x", res: rangeNone},
		{h: "bytes=0-" + strings.Repeat(",0-1", maxRangeSpecs), res: rangeNone},
		{h: "bytes=0-", size: -2, res: rangeUnsatisfiable}, // empty representation (size 0)
		{h: "bytes=-1", size: -2, res: rangeUnsatisfiable},
	}
	for _, tt := range tests {
		sz := int64(size)
		if tt.size == -2 {
			sz = 0
		}
		res, start, end := parseRange([]byte(tt.h), sz)
		if res != tt.res || (res == rangeOK && (start != tt.start || end != tt.end)) {
			t.Errorf("parseRange(%q, %d) = %v [%d, %d), want %v [%d, %d)", tt.h, sz, res, start, end, tt.res, tt.start, tt.end)
		}
	}
}

// FuzzParseRange checks that any header yields a sane answer: a satisfiable
// range lies inside the representation and is not empty.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=10-", "bytes=0-1,2-3", "bytes=5-1", "bytes=99999999999999999999-", "BYTES = 1-"} {
		f.Add(s, int64(100))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		res, start, end := parseRange([]byte(h), size)
		switch res {
		case rangeOK:
			if start < 0 || end > size || start >= end {
				t.Fatalf("parseRange(%q, %d) = [%d, %d): outside the representation", h, size, start, end)
			}
		case rangeNone, rangeUnsatisfiable:
		default:
			t.Fatalf("parseRange(%q, %d) = %v", h, size, res)
		}
	})
}

func (r rangeResult) String() string {
	return [...]string{"none", "ok", "unsatisfiable"}[r]
}

var _ fmt.Stringer = rangeResult(0)
