package webclient

import (
	"strings"
	"testing"
)

// The request headers the asset handler parses come from any client.

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"", "gzip", "br, gzip;q=0.5", "gzip;q=0", "*;q=0.000", ";;,,q=", "gzip;q=0.", "GZIP ; Q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := acceptsGzip(h)
		if got && !strings.Contains(strings.ToLower(h), "gzip") && !strings.Contains(h, "*") {
			t.Errorf("acceptsGzip(%q) = true without gzip or *", h)
		}
	})
}

func FuzzEtagMatch(f *testing.F) {
	for _, s := range []string{"", `"a"`, `W/"a", "b"`, "*", `,,W/`, `"` + strings.Repeat("x", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if etagMatch(h, `"a"`) && !strings.Contains(h, `"a"`) && !strings.Contains(h, "*") {
			t.Errorf("etagMatch(%q) matched without the tag or *", h)
		}
	})
}
