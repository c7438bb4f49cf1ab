package region

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/peerassist/edgebox/config"
)

func proxyLocator(t *testing.T, header string, trusted ...string) *Locator {
	t.Helper()
	cfg := baseRegion()
	cfg.TrustedProxies = trusted
	if header != "" {
		cfg.ClientIPHeader = header
	}
	l, err := New(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// headers adapts a net/http header to ClientAddr's values function.
func headers(kv ...string) func(string) [][]byte {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return func(name string) [][]byte {
		var out [][]byte
		for _, v := range h.Values(name) {
			out = append(out, []byte(v))
		}
		return out
	}
}

func TestClientAddrXForwardedFor(t *testing.T) {
	l := proxyLocator(t, "", "10.0.0.0/8", "2001:db8:ffff::1", "192.0.2.7")
	tests := []struct {
		name   string
		remote string
		hdr    []string
		want   string
	}{
		{"untrusted peer: header ignored", "198.51.100.1", []string{"X-Forwarded-For", "203.0.113.9"}, "198.51.100.1"},
		{"trusted peer, no header", "10.1.1.1", nil, "10.1.1.1"},
		{"trusted peer", "10.1.1.1", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"chain: skip trusted hops", "10.1.1.1", []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.2.2.2, 192.0.2.7"}, "203.0.113.9"},
		{"spoofed left part is not believed", "10.1.1.1", []string{"X-Forwarded-For", "10.9.9.9, 203.0.113.9"}, "203.0.113.9"},
		{"several header lines form one list", "10.1.1.1", []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.9", "X-Forwarded-For", "10.2.2.2"}, "203.0.113.9"},
		{"all hops trusted: leftmost", "10.1.1.1", []string{"X-Forwarded-For", "10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"ports and brackets", "10.1.1.1", []string{"X-Forwarded-For", "[2001:db8::5]:443, 10.2.2.2:8080"}, "2001:db8::5"},
		{"bare IPv6", "10.1.1.1", []string{"X-Forwarded-For", "2001:db8::5"}, "2001:db8::5"},
		{"IPv4 with port", "10.1.1.1", []string{"X-Forwarded-For", "203.0.113.9:51234"}, "203.0.113.9"},
		{"IPv4-mapped entry is unmapped", "10.1.1.1", []string{"X-Forwarded-For", "::ffff:203.0.113.9"}, "203.0.113.9"},
		{"IPv4-mapped trusted peer", "::ffff:10.1.1.1", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"trusted IPv6 peer", "2001:db8:ffff::1", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"empty elements", "10.1.1.1", []string{"X-Forwarded-For", " , 203.0.113.9 ,,"}, "203.0.113.9"},
		{"garbage left of the client is never parsed", "10.1.1.1", []string{"X-Forwarded-For", "<script>, 203.0.113.9"}, "203.0.113.9"},
		{"malformed rightmost: socket address", "10.1.1.1", []string{"X-Forwarded-For", "203.0.113.9, not-an-ip"}, "10.1.1.1"},
		{"unknown: socket address", "10.1.1.1", []string{"X-Forwarded-For", "unknown"}, "10.1.1.1"},
		{"zone: socket address", "10.1.1.1", []string{"X-Forwarded-For", "fe80::1%eth0"}, "10.1.1.1"},
		{"bad port: socket address", "10.1.1.1", []string{"X-Forwarded-For", "203.0.113.9:99999"}, "10.1.1.1"},
		{"only commas: socket address", "10.1.1.1", []string{"X-Forwarded-For", " , ,"}, "10.1.1.1"},
		{"Forwarded is not read by default", "10.1.1.1", []string{"Forwarded", "for=203.0.113.9"}, "10.1.1.1"},
	}
	for _, tt := range tests {
		got := l.ClientAddr(netip.MustParseAddr(tt.remote), headers(tt.hdr...))
		if got != netip.MustParseAddr(tt.want) {
			t.Errorf("%s: ClientAddr(%s, %q) = %s, want %s", tt.name, tt.remote, tt.hdr, got, tt.want)
		}
	}
}

func TestClientAddrForwarded(t *testing.T) {
	l := proxyLocator(t, "forwarded", "10.0.0.0/8", "2001:db8:ffff::/48")
	tests := []struct {
		name string
		hdr  []string
		want string
	}{
		{"RFC 7239 example", []string{"Forwarded", `for="_gazonk"`}, "10.1.1.1"},
		{"simple", []string{"Forwarded", "for=192.0.2.43"}, "192.0.2.43"},
		{"quoted IPv6 with port", []string{"Forwarded", `For="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"pairs", []string{"Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"}, "192.0.2.60"},
		{"chain", []string{"Forwarded", "for=6.6.6.6, for=192.0.2.43, for=10.2.2.2;by=10.1.1.1"}, "192.0.2.43"},
		{"lenient whitespace", []string{"Forwarded", "for=6.6.6.6 ,  for = 192.0.2.43 ; proto=https"}, "192.0.2.43"},
		{"several lines", []string{"Forwarded", "for=192.0.2.43", "Forwarded", `for="[2001:db8:ffff::9]"`}, "192.0.2.43"},
		{"escaped quoted string", []string{"Forwarded", `for="192.0.2.\43"`}, "192.0.2.43"},
		{"all trusted: leftmost", []string{"Forwarded", "for=10.3.3.3, for=10.2.2.2"}, "10.3.3.3"},
		{"unknown: socket address", []string{"Forwarded", "for=unknown"}, "10.1.1.1"},
		{"element without for: socket address", []string{"Forwarded", "for=192.0.2.43, proto=https"}, "10.1.1.1"},
		{"unquoted port is malformed", []string{"Forwarded", "for=192.0.2.43:80"}, "10.1.1.1"},
		{"unterminated quote", []string{"Forwarded", `for="192.0.2.43`}, "10.1.1.1"},
		{"two for in one element", []string{"Forwarded", "for=192.0.2.43;for=192.0.2.44"}, "10.1.1.1"},
		{"no value", []string{"Forwarded", "for=;proto=http"}, "10.1.1.1"},
		{"malformed earlier line", []string{"Forwarded", "for=\"x", "Forwarded", "for=192.0.2.43"}, "10.1.1.1"},
		{"X-Forwarded-For is not read", []string{"X-Forwarded-For", "192.0.2.43"}, "10.1.1.1"},
	}
	for _, tt := range tests {
		got := l.ClientAddr(netip.MustParseAddr("10.1.1.1"), headers(tt.hdr...))
		if got != netip.MustParseAddr(tt.want) {
			t.Errorf("%s: ClientAddr(10.1.1.1, %q) = %s, want %s", tt.name, tt.hdr, got, tt.want)
		}
	}
}

func TestClientAddrNoTrustedProxies(t *testing.T) {
	l := proxyLocator(t, "")
	called := false
	values := func(string) [][]byte { called = true; return [][]byte{[]byte("1.2.3.4")} }
	if got := l.ClientAddr(netip.MustParseAddr("127.0.0.1"), values); got != netip.MustParseAddr("127.0.0.1") || called {
		t.Errorf("ClientAddr without trusted proxies = %s (headers read: %v), want the socket address, headers unread", got, called)
	}
	if got := l.ClientAddr(netip.Addr{}, values); got.IsValid() {
		t.Errorf("ClientAddr(invalid) = %s, want invalid", got)
	}
}

func TestTrustedProxiesReload(t *testing.T) {
	l := proxyLocator(t, "", "127.0.0.1")
	xff := headers("X-Forwarded-For", "203.0.113.9")
	if got := l.ClientAddr(netip.MustParseAddr("127.0.0.1"), xff); got != netip.MustParseAddr("203.0.113.9") {
		t.Fatalf("trusted: got %s", got)
	}
	cfg := config.DefaultRegion()
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := l.ClientAddr(netip.MustParseAddr("127.0.0.1"), xff); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("after reload without trusted proxies: ClientAddr = %s, want the socket address", got)
	}
}
