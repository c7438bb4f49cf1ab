package demo

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-1,2-3", "bytes=9-1", "BYTES = 1-2 ,", "bytes=,,", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 || size > MaxBytes {
			return
		}
		r, res := parseRange(h, size)
		switch res {
		case rangeSingle:
			if r.start < 0 || r.start >= r.end || r.end > size {
				t.Fatalf("parseRange(%q, %d) = %v: outside [0, %d)", h, size, r, size)
			}
		case rangeNone, rangeUnsatisfiable:
			if r != (byteRange{}) {
				t.Fatalf("parseRange(%q, %d) = %v with result %v", h, size, r, res)
			}
		default:
			t.Fatalf("parseRange(%q, %d): unknown result %v", h, size, res)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "65536", "-1", "1e9", "", "1099511627776", "1099511627777"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && (n < 0 || n > MaxBytes) {
			t.Fatalf("ParseSize(%q) = %d, out of range", s, n)
		}
	})
}

func FuzzParseKnobs(f *testing.F) {
	for _, s := range []string{"status=503", "delay=200ms&rate=1MiB", "break_after=0", "etag=x&last_modified=1700000000",
		"expires=-1h&cache_control=", "vary=a%0d%0ab", "version=2&content_type=text/plain", "rate=0", "delay=-1s"} {
		f.Add(s)
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, q string) {
		var args fasthttp.Args
		args.Parse(q)
		k, err := parseKnobs(&args, Faults{}, now)
		if err != nil {
			return
		}
		if err := k.Faults.Validate(); err != nil {
			t.Fatalf("parseKnobs(%q) accepted invalid faults: %v", q, err)
		}
		if k.breakAfter < -1 {
			t.Fatalf("parseKnobs(%q): breakAfter %d", q, k.breakAfter)
		}
		for _, h := range k.headers {
			for i := 0; i < len(h[1]); i++ {
				if h[1][i] == '\r' || h[1][i] == '\n' {
					t.Fatalf("parseKnobs(%q): header %s has a line break", q, h[0])
				}
			}
		}
	})
}
