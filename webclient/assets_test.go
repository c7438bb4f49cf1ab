package webclient

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peerassist/edgebox/webclient/internal/bundler"
	"github.com/valyala/fasthttp"
)

// TestBundleUpToDate rebuilds the bundles in memory and fails when the
// committed dist/ differs: run `go generate ./webclient` after changing src/.
func TestBundleUpToDate(t *testing.T) {
	out, err := bundler.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range out {
		got, err := os.ReadFile(filepath.Join("dist", name))
		if err != nil {
			t.Fatalf("%v (run go generate ./webclient)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dist/%s differs from a build of src/ (%d vs %d bytes): run go generate ./webclient and commit dist/", name, len(got), len(want))
		}
		if g := bundler.GzipSize(want); g > bundler.MaxGzipBytes {
			t.Errorf("%s is %d bytes gzipped, over the budget of %d", name, g, bundler.MaxGzipBytes)
		}
		if bytes.Contains(want, []byte("Hls.DefaultConfig")) || bytes.Contains(want, []byte("hls.js@")) {
			t.Errorf("%s seems to include hls.js; it must not", name)
		}
	}
}

// TestTypesUpToDate regenerates the declarations with tsc (the pinned
// version `npm ci` installs in webclient/node_modules) and compares; skipped
// where tsc is not installed, except under CI=true.
func TestTypesUpToDate(t *testing.T) {
	tsc, err := filepath.Abs(filepath.Join("node_modules", ".bin", "tsc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tsc not installed (CI=true: run cd webclient && npm ci, as .ci/run does)")
		}
		t.Skip("tsc not installed (cd webclient && npm ci) — declarations not checked")
	}
	dir := t.TempDir()
	cmd := exec.Command(tsc, "-p", "tsconfig.json", "--outDir", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := os.ReadDir(filepath.Join("dist", "types"))
	if len(entries) != len(committed) {
		t.Errorf("tsc wrote %d declaration files, dist/types has %d: run npm run types", len(entries), len(committed))
	}
	for _, e := range entries {
		want, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got, err := os.ReadFile(filepath.Join("dist", "types", e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("dist/types/%s is stale: run npm run types in webclient/", e.Name())
		}
	}
}

func TestVendoredHls(t *testing.T) {
	a := assets[HlsPath]
	if !bytes.Contains(a.body, []byte(`"`+HlsVersion+`"`)) {
		t.Errorf("vendored hls.min.js does not carry version %s", HlsVersion)
	}
}

func do(h fasthttp.RequestHandler, method, path string, hdr map[string]string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	for k, v := range hdr {
		ctx.Request.Header.Set(k, v)
	}
	h(&ctx)
	var r fasthttp.Response
	ctx.Response.CopyTo(&r)
	return &r
}

func TestHandler(t *testing.T) {
	h := Handler()
	etag := assets[BundlePath].etag
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		ctype, encoding    string
		bodyPrefix         string
	}{
		{"bundle", "GET", BundlePath, nil, 200, "text/javascript; charset=utf-8", "", "/*! @peerassist/webclient"},
		{"module", "GET", ModulePath, nil, 200, "text/javascript; charset=utf-8", "", "/*! @peerassist/webclient"},
		{"hls", "GET", HlsPath, nil, 200, "text/javascript; charset=utf-8", "", "!function"},
		{"demo", "GET", DemoPath, nil, 200, "text/html; charset=utf-8", "", "<!doctype html>"},
		{"gzip", "GET", BundlePath, map[string]string{"Accept-Encoding": "br, gzip"}, 200, "text/javascript; charset=utf-8", "gzip", ""},
		{"gzip refused", "GET", BundlePath, map[string]string{"Accept-Encoding": "gzip;q=0, identity"}, 200, "text/javascript; charset=utf-8", "", "/*!"},
		{"not modified", "GET", BundlePath, map[string]string{"If-None-Match": `"x", W/` + etag}, 304, "text/javascript; charset=utf-8", "", ""},
		{"etag mismatch", "GET", BundlePath, map[string]string{"If-None-Match": `"nope"`}, 200, "text/javascript; charset=utf-8", "", "/*!"},
		{"head", "HEAD", BundlePath, nil, 200, "text/javascript; charset=utf-8", "", ""},
		{"post", "POST", BundlePath, nil, 405, "", "", ""},
		{"options", "OPTIONS", ModulePath, nil, 204, "", "", ""},
		{"unknown", "GET", "/pa/v1/nope.js", nil, 404, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(h, tc.method, tc.path, tc.hdr)
			if r.StatusCode() != tc.status {
				t.Fatalf("%s %s: status %d, want %d (%s)", tc.method, tc.path, r.StatusCode(), tc.status, r.Body())
			}
			if tc.ctype != "" {
				if got := string(r.Header.ContentType()); got != tc.ctype {
					t.Errorf("Content-Type %q, want %q", got, tc.ctype)
				}
				if got := string(r.Header.Peek("ETag")); got == "" || r.Header.Peek("Cache-Control") == nil {
					t.Errorf("ETag %q and Cache-Control %q: want both", got, r.Header.Peek("Cache-Control"))
				}
			}
			if got := string(r.Header.Peek("Content-Encoding")); got != tc.encoding {
				t.Errorf("Content-Encoding %q, want %q", got, tc.encoding)
			}
			body := r.Body()
			if tc.encoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
				if !bytes.Equal(body, assets[tc.path].body) {
					t.Errorf("gunzipped body differs from the asset")
				}
			}
			if !strings.HasPrefix(string(body), tc.bodyPrefix) {
				t.Errorf("body starts %.40q, want prefix %q", body, tc.bodyPrefix)
			}
			if tc.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD body has %d bytes", len(body))
			}
			if tc.status < 400 && string(r.Header.Peek("Access-Control-Allow-Origin")) != "*" {
				t.Errorf("no CORS header")
			}
		})
	}
}

func TestDemoHandler(t *testing.T) {
	h := DemoHandler()
	for path, want := range map[string]int{"/": 200, "/index.html": 200, "/vod/sample/master.m3u8": 404} {
		if got := do(h, "GET", path, nil).StatusCode(); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "gzip; q=0.000": false,
		"deflate": false, "*": true, "gzip;q=1.0": true, "x-gzip": false,
	} {
		if got := acceptsGzip(in); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestEtagMatch(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{{`"a"`, true}, {`W/"a"`, true}, {`"b", "a"`, true}, {`*`, true}, {`"b"`, false}, {``, false}} {
		if got := etagMatch(tc.header, `"a"`); got != tc.want {
			t.Errorf("etagMatch(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
