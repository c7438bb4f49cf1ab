package edge

import (
	"testing"

	"github.com/peerassist/edgebox/config"
)

func testConfig(sites ...config.Site) *config.Config {
	cfg := config.Default()
	cfg.Sites = sites
	return &cfg
}

func TestRoute(t *testing.T) {
	video := config.NewSite("video", "http://127.0.0.1:1")
	video.Hosts = []string{"Video.Example.net", "*.cdn.example.net", "::1", "[2001:db8::1]"}
	vod := config.NewSite("vod", "http://127.0.0.1:1")
	vod.Hosts = []string{"video.example.net"}
	vod.PathPrefix = "/vod"
	deep := config.NewSite("deep", "http://127.0.0.1:1")
	deep.Hosts = []string{"*.a.cdn.example.net"}
	live := config.NewSite("live", "http://127.0.0.1:1")
	live.PathPrefix = "/live/"
	tbl, err := newTable(testConfig(video, vod, deep, live))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path string
		site       string // "" for none
		hostKnown  bool
	}{
		{"video.example.net", "/x", "video", true},
		{"VIDEO.example.NET:8080", "/x", "video", true},
		{"video.example.net.", "/x", "video", true},
		{"video.example.net", "/vod", "vod", true},
		{"video.example.net", "/vod/a.ts", "vod", true},
		{"video.example.net", "/vodka", "video", true},
		{"x.cdn.example.net", "/y", "video", true},
		{"b.a.cdn.example.net", "/y", "deep", true},
		{"cdn.example.net", "/live/1", "live", true}, // the bare suffix is not a subdomain: any-host site
		{"cdn.example.net", "/y", "", true},
		{"other.example", "/live/a", "live", true},
		{"other.example", "/livex", "", true},
		{"[::3]:8080", "/live/a", "live", true},
		// IPv6 literals: bracketed in Host, with or without a port,
		// listed with or without brackets (QA: "[::1]:8080" got 421).
		{"[::1]:8080", "/x", "video", true},
		{"[::1]", "/x", "video", true},
		{"[2001:DB8::1]:443", "/x", "video", true},
		{"[2001:db8::2]", "/x", "", true},
	}
	for _, tt := range tests {
		s, known := tbl.route([]byte(tt.host), []byte(tt.path))
		got := ""
		if s != nil {
			got = s.name
		}
		if got != tt.site || known != tt.hostKnown {
			t.Errorf("route(%q, %q) = %q, %v; want %q, %v", tt.host, tt.path, got, known, tt.site, tt.hostKnown)
		}
	}

	only := config.NewSite("only", "http://127.0.0.1:1")
	only.Hosts = []string{"a.example"}
	tbl, err = newTable(testConfig(only))
	if err != nil {
		t.Fatal(err)
	}
	if s, known := tbl.route([]byte("b.example"), []byte("/")); s != nil || known {
		t.Errorf("route to an unknown host = %v, %v; want nil, false (421)", s, known)
	}
}

func TestOriginPath(t *testing.T) {
	tests := []struct {
		prefix string
		strip  bool
		path   string
		want   string
	}{
		{"/", true, "/a", "/a"},
		{"/vod", false, "/vod/a", "/vod/a"},
		{"/vod", true, "/vod/a", "/a"},
		{"/vod", true, "/vod", "/"},
		{"/vod/", true, "/vod/a/b", "/a/b"},
		{"/vod/", true, "/vod/", "/"},
	}
	for _, tt := range tests {
		s := &site{prefix: tt.prefix, stripPrefix: tt.strip}
		if got := string(s.originPath([]byte(tt.path))); got != tt.want {
			t.Errorf("prefix %q strip %v: originPath(%q) = %q, want %q", tt.prefix, tt.strip, tt.path, got, tt.want)
		}
	}
}

func TestNewTableRejectsBadConfig(t *testing.T) {
	if _, err := newTable(testConfig()); err == nil {
		t.Error("newTable without sites: no error")
	}
}

// TestMethodName: request methods as the HTTP semantic conventions name
// them (QA: CONNECT and unknown methods were labelled "HTTP").
func TestMethodName(t *testing.T) {
	tests := []struct{ in, attr, span string }{
		{"GET", "GET", "GET"}, {"CONNECT", "CONNECT", "CONNECT"}, {"PATCH", "PATCH", "PATCH"},
		{"PROPFIND", "_OTHER", "HTTP"}, {"get", "_OTHER", "HTTP"}, {"", "_OTHER", "HTTP"},
	}
	for _, tt := range tests {
		if a, s := methodName([]byte(tt.in)), spanName([]byte(tt.in)); a != tt.attr || s != tt.span {
			t.Errorf("method %q: attribute %q, span %q; want %q, %q", tt.in, a, s, tt.attr, tt.span)
		}
	}
}
