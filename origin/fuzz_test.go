package origin

import (
	"strings"
	"testing"
)

func FuzzParseOriginURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8081", "https://origin.example.com/base/", "http://[::1]:80/x", "ftp://x", "http://", "http://u:p@h", "http://h?q", "http://h:99999", "http://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		scheme, hostHeader, addr, prefix, err := parseOriginURL(raw)
		if err != nil {
			return
		}
		if scheme != "http" && scheme != "https" {
			t.Fatalf("parseOriginURL(%q): scheme %q", raw, scheme)
		}
		if hostHeader == "" || addr == "" || strings.ContainsAny(hostHeader, "/?#") {
			t.Fatalf("parseOriginURL(%q): host %q addr %q", raw, hostHeader, addr)
		}
		if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/")) {
			t.Fatalf("parseOriginURL(%q): path prefix %q", raw, prefix)
		}
	})
}
