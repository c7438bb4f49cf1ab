package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/manifest"
)

// stallingOrigin serves /stall/{n}: headers announcing n bytes, 64 KiB of
// them (more than the server's write buffer, so they leave), then nothing
// until stop is closed.
func stallingOrigin(stop <-chan struct{}) func(fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			p := string(ctx.Path())
			if !strings.HasPrefix(p, "/stall/") {
				next(ctx)
				return
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/stall/"))
			ctx.Response.Header.Set("Cache-Control", "max-age=60")
			ctx.Response.ImmediateHeaderFlush = true
			ctx.SetBodyStream(&stallReader{left: 64 << 10, stop: stop}, n)
		}
	}
}

type stallReader struct {
	left int
	stop <-chan struct{}
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left > 0 {
		n := min(len(p), r.left)
		clear(p[:n])
		r.left -= n
		return n, nil
	}
	<-r.stop
	return 0, io.ErrUnexpectedEOF
}

// TestManifestFillFails: a manifest whose fill fails answers with the
// failure at once, after one origin fetch; it used to fetch the object
// again up to 4 times and answer 503 "the object kept changing".
func TestManifestFillFails(t *testing.T) {
	stop := make(chan struct{})
	var mu sync.Mutex
	hits := map[string]int{}
	e := newEnv(t, func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
		h = chunkedOrigin(stallingOrigin(stop)(h))
		return func(ctx *fasthttp.RequestCtx) {
			mu.Lock()
			hits[string(ctx.Path())]++
			mu.Unlock()
			h(ctx)
		}
	}, func(c *config.Config, _ *Options) {
		c.Limits.MaxObjectBytes = 100 << 10
		c.Origin.ReadTimeout = config.Duration(300 * time.Millisecond)
	})
	defer close(stop) // before the edge's cleanup: the origin's handlers return
	tests := []struct {
		name, url, originPath string
		status                int
		msg                   string
	}{
		{"origin cuts the body", "/bytes/90000?break_after=1000", "/bytes/90000", 502, "origin's response failed"},
		{"body of unknown length outgrows the limit", "/chunked/300000", "/chunked/300000", 422, "too large"},
		{"origin stalls in the body", "/stall/90000", "/stall/90000", 504, "timed out"},
	}
	for _, tt := range tests {
		r := e.get(ManifestPath + "?url=" + url.QueryEscape(tt.url))
		var fail manifestError
		if err := json.Unmarshal(r.body, &fail); err != nil || r.status != tt.status || fail.Status != tt.status || !strings.Contains(fail.Error, tt.msg) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, r.status, r.body, tt.status, tt.msg)
		}
		mu.Lock()
		got := hits[tt.originPath]
		mu.Unlock()
		if got != 1 {
			t.Errorf("%s: %d origin fetches, want 1", tt.name, got)
		}
	}
}

// TestManifestWaitsForCommit: the manifest of an object whose every byte
// is written is sent once the fill commits, with the digest of every chunk.
func TestManifestWaitsForCommit(t *testing.T) {
	e := newEnv(t, nil)
	const size = 150_000 // 3 chunks of 64 KiB
	path := "/bytes/150000?m=commit"
	f := e.startFill(t, path, size, "Cache-Control", "public, max-age=3600")
	body := demoBytes(size, 0, size)
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	got := make(chan *response, 1)
	go func() { got <- e.get(ManifestPath + "?url=" + url.QueryEscape(path)) }()
	select {
	case r := <-got:
		t.Fatalf("manifest before the commit: %d %s", r.status, r.body)
	case <-time.After(100 * time.Millisecond):
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	mf, err := manifest.Parse(r.body)
	if r.status != 200 || err != nil {
		t.Fatalf("manifest after the commit: %d %v %s", r.status, err, r.body)
	}
	info := f.Info()
	if mf.Size != size || mf.NumChunks() != 3 || r.get("ETag") != fmt.Sprintf(`"m-%016x-%016x"`, info.ID, info.Version) {
		t.Errorf("manifest: size %d, %d chunks, ETag %q", mf.Size, mf.NumChunks(), r.get("ETag"))
	}
	for i := range mf.NumChunks() {
		start, end := mf.ChunkRange(i)
		if sum := sha256.Sum256(body[start:end]); mf.SHA256[i] != hex.EncodeToString(sum[:]) {
			t.Errorf("chunk %d: digest %s, want %x", i, mf.SHA256[i], sum)
		}
	}
}

// TestManifestPurgedDuringFill: a fill purged while a manifest waits for
// it is fetched again, and the manifest describes the new version.
func TestManifestPurgedDuringFill(t *testing.T) {
	e := newEnv(t, nil)
	path := "/bytes/100000?rate=200KiB" // half a second of body
	got := make(chan *response, 1)
	go func() { got <- e.get(ManifestPath + "?url=" + url.QueryEscape(path)) }()
	waitFor(t, "the fill", func() bool {
		_, f, _ := e.store.LookupOrInFlight("demo\x00" + path)
		return f != nil
	})
	if r := e.adminDo("POST", "/purge?url="+url.QueryEscape(path)); r.status != 200 {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	r := <-got
	stored, err := e.store.Lookup("demo\x00" + path)
	if r.status != 200 || err != nil || r.get("ETag") != fmt.Sprintf(`"m-%016x-%016x"`, stored.ID, stored.Version) {
		t.Errorf("manifest across a purge: %d %s, ETag %q; stored %v", r.status, r.body, r.get("ETag"), err)
	}
	if got := e.origin.Origin.Hits("/bytes/100000"); got != 2 {
		t.Errorf("origin fetches = %d, want 2 (the purged fill, then the new one)", got)
	}
}

// TestManifestConcurrentWithGets: manifests and GETs (whole and ranges) of
// new objects at the same moment, as a swarm's peers ask them, in rounds:
// every manifest succeeds and names the one version stored, fetched once
// from the origin (requests arriving while a fill commits used to miss both
// the fill and the stored version and fetch again).
func TestManifestConcurrentWithGets(t *testing.T) {
	e := newEnv(t, nil)
	for round := range 30 {
		path := fmt.Sprintf("/bytes/%d", 700+round)
		var wg sync.WaitGroup
		etags := make(chan string, 12)
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i%4) * time.Millisecond) // some during the fill, some at its commit
				if i%3 != 0 {
					resp, err := e.client.Get(e.url(ManifestPath + "?url=" + url.QueryEscape(path)))
					if err != nil {
						t.Errorf("manifest %s: %v", path, err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("manifest %s: %d %s", path, resp.StatusCode, body)
					}
					etags <- resp.Header.Get("ETag")
					return
				}
				req := rangeRequest(t, e.url(path), "bytes=0-99")
				if i%2 == 0 {
					req.Header.Del("Range")
				}
				resp, err := e.client.Do(req)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		close(etags)
		stored, err := e.store.Lookup("demo\x00" + path)
		if err != nil {
			t.Fatalf("%s not stored: %v", path, err)
		}
		want := fmt.Sprintf(`"m-%016x-%016x"`, stored.ID, stored.Version)
		for et := range etags {
			if et != want {
				t.Errorf("%s: manifest ETag %q, want %q (the version stored)", path, et, want)
			}
		}
		if got := e.origin.Origin.Hits(path); got != 1 {
			t.Errorf("%s: %d origin fetches, want 1", path, got)
		}
	}
}
