package region

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
)

// loopbackClient returns an HTTP client whose connections come from the
// loopback address src.
func loopbackClient(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func TestServeWhoami(t *testing.T) {
	cfg := baseRegion()
	cfg.Name = "lab"
	cfg.TrustedProxies = []string{"127.0.0.2"}
	cfg.Regions = []config.RegionDef{{Name: "lab", ISPs: []config.ISPDef{{Name: "loopback", ASN: 64512, Prefixes: []string{"127.0.0.0/8"}}}}}
	l, err := New(cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == WhoamiPath {
			l.ServeWhoami(ctx)
			return
		}
		ctx.NotFound()
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	edge := "http://" + ln.Addr().String()

	// A reverse proxy (net/http/httputil appends the client to
	// X-Forwarded-For) whose connections to the edge come from src.
	proxy := func(src string) (string, func()) {
		u, _ := url.Parse(edge)
		rp := httputil.NewSingleHostReverseProxy(u)
		tr := loopbackClient(src).Transport.(*http.Transport)
		rp.Transport = tr
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ps := &http.Server{Handler: rp}
		go ps.Serve(pl)
		return "http://" + pl.Addr().String(), func() { ps.Shutdown(context.Background()); tr.CloseIdleConnections() }
	}
	trusted, stopTrusted := proxy("127.0.0.2")
	defer stopTrusted()
	untrusted, stopUntrusted := proxy("127.0.0.3")
	defer stopUntrusted()

	get := func(base, src, xff string) (int, Answer, http.Header) {
		t.Helper()
		c := loopbackClient(src)
		defer c.Transport.(*http.Transport).CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, base+WhoamiPath, nil)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a Answer
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &a); err != nil {
				t.Fatalf("decoding %q: %v", body, err)
			}
		}
		return resp.StatusCode, a, resp.Header
	}

	want := func(ip string) Answer {
		return Answer{IP: ip, Known: true, Region: "lab", ISP: "loopback", ASN: 64512, Prefix: "127.0.0.0/8", Subnet: "127.0.0.0/24", Source: "config", Served: true}
	}
	tests := []struct {
		name, base, src, xff, want string
	}{
		{"direct", edge, "127.0.0.5", "", "127.0.0.5"},
		{"direct with a spoofed header", edge, "127.0.0.5", "203.0.113.9", "127.0.0.5"},
		{"through the trusted proxy", trusted, "127.0.0.7", "", "127.0.0.7"},
		{"through the trusted proxy, spoofed header", trusted, "127.0.0.7", "203.0.113.9", "127.0.0.7"},
		{"through an untrusted proxy", untrusted, "127.0.0.7", "203.0.113.9", "127.0.0.3"},
	}
	for _, tt := range tests {
		code, got, h := get(tt.base, tt.src, tt.xff)
		if code != http.StatusOK || got != want(tt.want) {
			t.Errorf("%s: GET whoami = %d %+v\nwant 200 %+v", tt.name, code, got, want(tt.want))
		}
		if ct, cc := h.Get("Content-Type"), h.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
			t.Errorf("%s: Content-Type %q, Cache-Control %q; want application/json, no-store", tt.name, ct, cc)
		}
	}

	// Unknown caller through the trusted proxy: known false, fields present.
	c := loopbackClient("127.0.0.2")
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, edge+WhoamiPath, nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantBody := `{"ip":"203.0.113.9","known":false,"region":"","isp":"","asn":0,"prefix":"","subnet":"203.0.113.0/24","source":"","served":false}` + "\n"
	if string(body) != wantBody {
		t.Errorf("unknown caller: body %s\nwant %s", body, wantBody)
	}

	req, _ = http.NewRequest(http.MethodPost, edge+WhoamiPath, strings.NewReader("x"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST whoami = %d Allow %q, want 405 Allow GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
