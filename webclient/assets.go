// Package webclient serves the browser client of the peer-assisted CDN: the
// peer-assist bundle (built from src/ by `go generate`, committed in dist/),
// the pinned hls.js the demo plays with, and the demo page. The edge binary
// mounts Handler at the Paths below and DemoHandler at "/".
package webclient

//go:generate go run ./cmd/build -dir .

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
)

// Paths served by Handler.
const (
	// BundlePath is the classic-script bundle (global PeerAssist).
	BundlePath = "/pa/v1/peerassist.js"
	// ModulePath is the ES module bundle.
	ModulePath = "/pa/v1/peerassist.mjs"
	// HlsPath is the pinned hls.js build the demo uses.
	HlsPath = "/pa/v1/hls.min.js"
	// DemoPath is the demo page (also served by DemoHandler at "/").
	DemoPath = "/pa/v1/demo"
)

// HlsVersion is the version of the vendored hls.js.
const HlsVersion = "1.7.4"

// Paths lists every path Handler serves, for route tables.
var Paths = []string{BundlePath, ModulePath, HlsPath, DemoPath}

//go:embed dist/peerassist.js dist/peerassist.mjs demo/index.html vendor/hls.js/hls.min.js
var files embed.FS

// asset is one embedded file, with its precomputed gzip form and ETag.
type asset struct {
	body, gz     []byte
	etag         string
	contentType  string
	cacheControl string
}

var assets = map[string]*asset{
	BundlePath: mustAsset("dist/peerassist.js", "text/javascript; charset=utf-8", "public, max-age=300"),
	ModulePath: mustAsset("dist/peerassist.mjs", "text/javascript; charset=utf-8", "public, max-age=300"),
	// The vendored hls.js changes only with HlsVersion; a day of freshness
	// saves the demo a revalidation per load.
	HlsPath:  mustAsset("vendor/hls.js/hls.min.js", "text/javascript; charset=utf-8", "public, max-age=86400"),
	DemoPath: mustAsset("demo/index.html", "text/html; charset=utf-8", "no-cache"),
}

func mustAsset(name, contentType, cacheControl string) *asset {
	body, err := files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("webclient: embedded %s: %v", name, err)) // a build defect, not input
	}
	sum := sha256.Sum256(body)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body)
	zw.Close()
	return &asset{body: body, gz: gz.Bytes(), etag: `"` + hex.EncodeToString(sum[:12]) + `"`,
		contentType: contentType, cacheControl: cacheControl}
}

// Handler serves the Paths; any other path gets 404. It is safe for
// concurrent use.
func Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		a, ok := assets[string(ctx.Path())]
		if !ok {
			ctx.Error("webclient: no such file", fasthttp.StatusNotFound)
			return
		}
		a.serve(ctx)
	}
}

// DemoHandler serves the demo page for exactly "/" and "/index.html"; other
// paths get 404, so mount it on "/" only where nothing else claims the root.
func DemoHandler() fasthttp.RequestHandler {
	demo := assets[DemoPath]
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/", "/index.html":
			demo.serve(ctx)
		default:
			ctx.Error("webclient: no such file", fasthttp.StatusNotFound)
		}
	}
}

func (a *asset) serve(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	// Sites on other origins load the bundle as an ES module, which needs CORS.
	h.Set("Access-Control-Allow-Origin", "*")
	switch {
	case ctx.IsGet(), ctx.IsHead():
	case ctx.IsOptions():
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		ctx.Error("webclient: method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", a.cacheControl)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	h.SetContentType(a.contentType)
	if etagMatch(string(ctx.Request.Header.Peek("If-None-Match")), a.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(string(ctx.Request.Header.Peek("Accept-Encoding"))) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	if ctx.IsHead() {
		ctx.Response.SkipBody = true
		h.SetContentLength(len(body))
		return
	}
	ctx.SetBody(body)
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (q > 0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
			continue
		}
		params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !(strings.HasPrefix(params, "q=0") && strings.Trim(strings.TrimPrefix(params, "q=0"), ".0") == "")
	}
	return false
}
