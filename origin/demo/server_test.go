package demo

import (
	"strings"
	"testing"
)

// The edge forwards its clients' headers; a request it accepts (up to its
// 16 KiB default) must not be refused by the origin with 431.
func TestLargeRequestHeaders(t *testing.T) {
	s := startOrigin(t, Options{})
	r := do(t, "GET", s.URL()+"/bytes/10", "X-Big", strings.Repeat("a", 20<<10))
	if r.status != 200 {
		t.Errorf("status %d with a 20 KiB header, want 200", r.status)
	}
}
