package edge

import (
	"bytes"
	"strings"
	"testing"
)

func TestTargetParse(t *testing.T) {
	tests := []struct {
		raw     string
		want    string // normalized path and query
		session string // "" and !hasSession when absent
		hasSess bool
		urgent  bool
		err     error
	}{
		{raw: "/", want: "/"},
		{raw: "/a/b", want: "/a/b"},
		{raw: "/a/./b/../c", want: "/a/c"},
		{raw: "/a/b/..", want: "/a/"},
		{raw: "/..", want: "/"},
		{raw: "/../../etc/passwd", want: "/etc/passwd"},
		{raw: "/a/%2E%2E/b", want: "/b"},
		{raw: "/a/%2e/b", want: "/a/b"},
		{raw: "/%7Euser/%41%42c", want: "/~user/ABc"},
		{raw: "/a%2fb", want: "/a%2Fb"}, // an encoded slash stays encoded: not a separator
		{raw: "/a%2Fb", want: "/a%2Fb"},
		{raw: "/sp ace", want: "/sp%20ace"},
		{raw: "/\xc3\xa9t\xc3\xa9", want: "/%C3%A9t%C3%A9"},
		{raw: "/a#frag", want: "/a%23frag"},
		{raw: "//double//slash", want: "//double//slash"},
		{raw: "/p?", want: "/p"},
		{raw: "/p?&&", want: "/p"},
		{raw: "/p?b=2&a=1", want: "/p?a=1&b=2"},
		{raw: "/p?a=2&b=1&a=1", want: "/p?a=2&a=1&b=1"}, // stable: repeated names keep order
		{raw: "/p?a&a=", want: "/p?a&a="},
		{raw: "/p?%61=%31", want: "/p?a=1"},
		{raw: "/p?q=a%2bb&r=a+b", want: "/p?q=a%2Bb&r=a+b"},
		{raw: "/p?x=a=b", want: "/p?x=a=b"},
		{raw: "/p?x=%26", want: "/p?x=%26"},
		{raw: "/p?pa_session=abc&b=1", want: "/p?b=1", session: "abc", hasSess: true},
		{raw: "/p?pa%5Fsession=a%20b", want: "/p", session: "a b", hasSess: true},
		{raw: "/p?pa_urgent=1&pa_session=", want: "/p", hasSess: true, urgent: true},
		{raw: "/p?pa_urgent=0", want: "/p"},
		{raw: "", err: errTargetNotOrigin},
		{raw: "http://example.com/", err: errTargetNotOrigin},
		{raw: "example.com:443", err: errTargetNotOrigin},
		{raw: "*", err: errTargetNotOrigin},
		{raw: "/a%", err: errTargetPercent},
		{raw: "/a%4", err: errTargetPercent},
		{raw: "/a%zz", err: errTargetPercent},
		{raw: "/a?b=%G0", err: errTargetPercent},
		{raw: "/a?" + strings.Repeat("x=1&", maxQueryParams+1), err: errTargetParams},
	}
	for _, tt := range tests {
		var tg target
		err := tg.parse([]byte(tt.raw))
		if err != tt.err {
			t.Errorf("parse(%q) error = %v, want %v", tt.raw, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if got := string(tg.pathQuery()); got != tt.want {
			t.Errorf("parse(%q) = %q, want %q", tt.raw, got, tt.want)
		}
		if tg.hasSession != tt.hasSess || string(tg.session) != tt.session {
			t.Errorf("parse(%q) session = %q (present %v), want %q (present %v)", tt.raw, tg.session, tg.hasSession, tt.session, tt.hasSess)
		}
		if tg.urgent != tt.urgent {
			t.Errorf("parse(%q) urgent = %v, want %v", tt.raw, tg.urgent, tt.urgent)
		}
		path, query, _ := strings.Cut(tt.want, "?")
		if string(tg.path()) != path || string(tg.query()) != query {
			t.Errorf("parse(%q) path, query = %q, %q; want %q, %q", tt.raw, tg.path(), tg.query(), path, query)
		}
	}
}

// A target is reused across requests: the previous request must leave no
// trace.
func TestTargetReuse(t *testing.T) {
	var tg target
	if err := tg.parse([]byte("/a?pa_session=s1&pa_urgent=1&z=1&y=2")); err != nil {
		t.Fatal(err)
	}
	if err := tg.parse([]byte("/b")); err != nil {
		t.Fatal(err)
	}
	if got := string(tg.pathQuery()); got != "/b" || tg.hasSession || tg.urgent || tg.query() != nil {
		t.Errorf("reused target = %q session %v urgent %v, want a clean /b", got, tg.hasSession, tg.urgent)
	}
}

func TestTargetParseAllocs(t *testing.T) {
	var tg target
	raw := []byte("/vod/seg-001.m4s?token=abc&expires=123&pa_session=xyz")
	tg.parse(raw) // grow the buffers once
	if n := testing.AllocsPerRun(100, func() { tg.parse(raw) }); n > 0 {
		t.Errorf("parse allocates %v times per call, want 0", n)
	}
}

// FuzzTargetParse checks the normalization's invariants on any input: no
// panic; the result is an origin-form target with only allowed bytes and
// valid escapes; no dot segment survives; the peer-assist parameters are
// gone; and normalizing again changes nothing (so the cache key of a
// normalized target is stable).
func FuzzTargetParse(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2E/x", "/p?b=1&a=2", "/p?pa_session=1&pa_urgent=1",
		"/a%zz", "/a?x=%", "/\x00\xff", "//a//b/./../c?&=&a=b=c", "/p?a&a=&%61"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var tg target
		if err := tg.parse(raw); err != nil {
			return
		}
		out := tg.pathQuery()
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("parse(%q) = %q: not origin-form", raw, out)
		}
		for i := 0; i < len(out); i++ {
			c := out[i]
			if c == '%' {
				if i+2 >= len(out) || !isUpperHex(out[i+1]) || !isUpperHex(out[i+2]) {
					t.Fatalf("parse(%q) = %q: bad escape at %d", raw, out, i)
				}
				d := unhexMust(out[i+1])<<4 | unhexMust(out[i+2])
				if unreservedChars[d] {
					t.Fatalf("parse(%q) = %q: unreserved byte %q left encoded", raw, out, d)
				}
				i += 2
				continue
			}
			if !pathChars[c] && !queryChars[c] && c != '?' && c != '&' && c != '=' {
				t.Fatalf("parse(%q) = %q: disallowed byte %q", raw, out, c)
			}
		}
		for _, seg := range bytes.Split(tg.path(), []byte("/")) {
			if string(seg) == "." || string(seg) == ".." {
				t.Fatalf("parse(%q) path %q keeps a dot segment", raw, tg.path())
			}
		}
		for _, p := range bytes.Split(tg.query(), []byte("&")) {
			name, _, _ := bytes.Cut(p, []byte("="))
			if string(name) == SessionParam || string(name) == UrgentParam {
				t.Fatalf("parse(%q) query %q keeps %s", raw, tg.query(), name)
			}
			if len(p) == 0 && len(tg.query()) > 0 {
				t.Fatalf("parse(%q) query %q has an empty parameter", raw, tg.query())
			}
		}
		first := string(out)
		var again target
		if err := again.parse([]byte(first)); err != nil {
			t.Fatalf("parse(%q) = %q, which does not parse again: %v", raw, first, err)
		}
		if got := string(again.pathQuery()); got != first {
			t.Fatalf("not idempotent: parse(%q) = %q, parse(%q) = %q", raw, first, first, got)
		}
	})
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhexMust(c byte) byte { v, _ := unhex(c); return v }
