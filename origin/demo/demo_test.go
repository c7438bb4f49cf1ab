package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner notices Stop only after its
		// 10 s sleep, and its Date updater runs for the process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

func TestContentDeterministic(t *testing.T) {
	const n = 100_003
	full := make([]byte, n)
	if got := Bytes(n, 0, full); got != n {
		t.Fatalf("Bytes(%d, 0) wrote %d, want %d", n, got, n)
	}
	again := make([]byte, n)
	Bytes(n, 0, again)
	if !bytes.Equal(full, again) {
		t.Fatal("two generations of the same object differ")
	}
	// Any window equals the same slice of the full object.
	for _, w := range []struct{ off, len int }{{0, 1}, {1, 7}, {3, 8}, {7, 33}, {8, 64}, {999, 4097}, {n - 5, 5}, {n - 9, 100}} {
		dst := make([]byte, w.len)
		got := Bytes(n, int64(w.off), dst)
		want := min(w.len, n-w.off)
		if got != want || !bytes.Equal(dst[:got], full[w.off:w.off+got]) {
			t.Errorf("Bytes(%d, off=%d, len=%d) = %d bytes, want %d equal to the full object's", n, w.off, w.len, got, want)
		}
	}
	if got := Bytes(n, n, make([]byte, 10)); got != 0 {
		t.Errorf("Bytes past the end wrote %d, want 0", got)
	}
	// Different sizes and versions differ from the first bytes on.
	a, b, c := make([]byte, 16), make([]byte, 16), make([]byte, 16)
	Bytes(1000, 0, a)
	Bytes(1001, 0, b)
	NewContent(1000, "2").Fill(0, c)
	if bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Errorf("prefixes of different objects are equal: %x %x %x", a, b, c)
	}
	if NewContent(1000, "").ETag() == NewContent(1000, "2").ETag() || NewContent(1000, "").ETag() == NewContent(1001, "").ETag() {
		t.Error("ETags of different objects are equal")
	}
	// Huge objects: any range without generating the prefix.
	huge := NewContent(64<<30, "")
	tail := make([]byte, 10)
	if got, err := huge.ReadAt(tail, 64<<30-5); got != 5 || err != io.EOF {
		t.Errorf("ReadAt at the end of 64 GiB = %d, %v; want 5, EOF", got, err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"65536", 65536, true}, {"68719476736", 64 << 30, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1e3", 0, false}, {"abc", 0, false},
		{"1099511627777", 0, false}, {"99999999999999999999999", 0, false}, {" 1", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h    string
		size int64
		want byteRange
		res  rangeResult
	}{
		{"bytes=0-0", 100, byteRange{0, 1}, rangeSingle},
		{"bytes=5-9", 100, byteRange{5, 10}, rangeSingle},
		{"bytes=90-200", 100, byteRange{90, 100}, rangeSingle},
		{"bytes=90-", 100, byteRange{90, 100}, rangeSingle},
		{"bytes=-10", 100, byteRange{90, 100}, rangeSingle},
		{"bytes=-1000", 100, byteRange{0, 100}, rangeSingle},
		{"BYTES = 1-2", 100, byteRange{1, 3}, rangeSingle},
		{"bytes= 1-2 , ", 100, byteRange{1, 3}, rangeSingle},
		{"bytes=200-300, 1-2", 100, byteRange{1, 3}, rangeSingle},
		{"bytes=100-", 100, byteRange{}, rangeUnsatisfiable},
		{"bytes=-0", 100, byteRange{}, rangeUnsatisfiable},
		{"bytes=0-", 0, byteRange{}, rangeUnsatisfiable},
		{"bytes=-5", 0, byteRange{}, rangeUnsatisfiable},
		{"bytes=100-200,300-400", 100, byteRange{}, rangeUnsatisfiable},
		{"bytes=0-1,5-6", 100, byteRange{}, rangeNone}, // multi-range: 200 full
		{"bytes=5-1", 100, byteRange{}, rangeNone},     // invalid: ignored
		{"bytes=a-b", 100, byteRange{}, rangeNone},
		{"bytes=-", 100, byteRange{}, rangeNone},
		{"bytes=1", 100, byteRange{}, rangeNone},
		{"bytes=", 100, byteRange{}, rangeNone},
		{"items=0-1", 100, byteRange{}, rangeNone},
		{"bytes 0-1", 100, byteRange{}, rangeNone},
		{"bytes=-1-2", 100, byteRange{}, rangeNone},
		{"bytes=99999999999999999999-", 100, byteRange{}, rangeNone},
		{"bytes=" + strings.Repeat("1-2,", 65), 100, byteRange{}, rangeNone},
	} {
		got, res := parseRange(tc.h, tc.size)
		if got != tc.want || res != tc.res {
			t.Errorf("parseRange(%q, %d) = %v, %v; want %v, %v", tc.h, tc.size, got, res, tc.want, tc.res)
		}
	}
}

// client is a plain net/http client without keep-alives, so that tests
// leave no goroutines behind.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}, Timeout: 20 * time.Second}

func startOrigin(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func do(t *testing.T, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, body, err}
}

func content(n int64, version string, start, end int64) []byte {
	b := make([]byte, end-start)
	NewContent(n, version).Fill(start, b)
	return b
}

func TestBytesHTTP(t *testing.T) {
	s := startOrigin(t, Options{})
	u := s.URL()
	etag := NewContent(1000, "").ETag()
	lm := BaseLastModified.Format(http.TimeFormat)
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		status             int
		body               []byte // nil: not checked
		wantHdr            map[string]string
	}{
		{"full", "GET", "/bytes/1000", nil, 200, content(1000, "", 0, 1000), map[string]string{
			"ETag": etag, "Last-Modified": lm, "Cache-Control": "public, max-age=3600",
			"Accept-Ranges": "bytes", "Content-Length": "1000", "Content-Type": "application/octet-stream"}},
		{"empty", "GET", "/bytes/0", nil, 200, []byte{}, map[string]string{"Content-Length": "0"}},
		{"streamed", "GET", "/bytes/3000001", nil, 200, content(3000001, "", 0, 3000001), nil},
		{"head huge", "HEAD", "/bytes/68719476736", nil, 200, []byte{}, map[string]string{"Content-Length": "68719476736"}},
		{"range", "GET", "/bytes/1000", []string{"Range", "bytes=10-19"}, 206, content(1000, "", 10, 20),
			map[string]string{"Content-Range": "bytes 10-19/1000", "Content-Length": "10", "ETag": etag}},
		{"suffix", "GET", "/bytes/1000", []string{"Range", "bytes=-100"}, 206, content(1000, "", 900, 1000),
			map[string]string{"Content-Range": "bytes 900-999/1000"}},
		{"open", "GET", "/bytes/1000", []string{"Range", "bytes=998-"}, 206, content(1000, "", 998, 1000), nil},
		{"range huge tail", "GET", "/bytes/68719476736", []string{"Range", "bytes=68719476700-"}, 206,
			content(64<<30, "", 64<<30-36, 64<<30), map[string]string{"Content-Range": "bytes 68719476700-68719476735/68719476736"}},
		{"range streamed", "GET", "/bytes/5000000", []string{"Range", "bytes=1000000-2999999"}, 206, content(5000000, "", 1000000, 3000000), nil},
		{"multi range full", "GET", "/bytes/1000", []string{"Range", "bytes=0-1,5-6"}, 200, content(1000, "", 0, 1000), nil},
		{"bad range ignored", "GET", "/bytes/1000", []string{"Range", "bytes=9-1"}, 200, content(1000, "", 0, 1000), nil},
		{"unsatisfiable", "GET", "/bytes/1000", []string{"Range", "bytes=1000-"}, 416, nil, map[string]string{"Content-Range": "bytes */1000"}},
		{"inm", "GET", "/bytes/1000", []string{"If-None-Match", `"x", ` + etag}, 304, []byte{}, map[string]string{"ETag": etag}},
		{"inm weak", "GET", "/bytes/1000", []string{"If-None-Match", "W/" + etag}, 304, []byte{}, nil},
		{"inm other", "GET", "/bytes/1000", []string{"If-None-Match", `"other"`}, 200, nil, nil},
		{"inm star", "HEAD", "/bytes/1000", []string{"If-None-Match", "*"}, 304, []byte{}, nil},
		{"ims", "GET", "/bytes/1000", []string{"If-Modified-Since", lm}, 304, []byte{}, nil},
		{"ims older", "GET", "/bytes/1000", []string{"If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT"}, 200, nil, nil},
		{"inm wins over ims", "GET", "/bytes/1000", []string{"If-None-Match", `"other"`, "If-Modified-Since", lm}, 200, nil, nil},
		{"if-range match", "GET", "/bytes/1000", []string{"Range", "bytes=0-3", "If-Range", etag}, 206, content(1000, "", 0, 4), nil},
		{"if-range date", "GET", "/bytes/1000", []string{"Range", "bytes=0-3", "If-Range", lm}, 206, content(1000, "", 0, 4), nil},
		{"if-range stale", "GET", "/bytes/1000", []string{"Range", "bytes=0-3", "If-Range", `"old"`}, 200, content(1000, "", 0, 1000), nil},
		{"if-match fails", "GET", "/bytes/1000", []string{"If-Match", `"old"`}, 412, nil, nil},
		{"if-match ok", "GET", "/bytes/10", []string{"If-Match", NewContent(10, "").ETag()}, 200, content(10, "", 0, 10), nil},
		{"bad n", "GET", "/bytes/abc", nil, 400, nil, nil},
		{"negative n", "GET", "/bytes/-1", nil, 400, nil, nil},
		{"too large n", "GET", "/bytes/99999999999999", nil, 400, nil, nil},
		{"missing n", "GET", "/bytes/", nil, 400, nil, nil},
		{"post", "POST", "/bytes/10", nil, 405, nil, map[string]string{"Allow": "GET, HEAD"}},
		{"unknown", "GET", "/nothing", nil, 404, nil, nil},
		{"health", "GET", "/healthz", nil, 200, []byte("ok\n"), nil},
		{"version", "GET", "/bytes/100?version=2", nil, 200, content(100, "2", 0, 100),
			map[string]string{"ETag": NewContent(100, "2").ETag(), "Last-Modified": BaseLastModified.Add(2 * time.Hour).Format(http.TimeFormat)}},
		{"cache_control", "GET", "/bytes/10?cache_control=no-store", nil, 200, nil, map[string]string{"Cache-Control": "no-store"}},
		{"remove cache_control", "GET", "/bytes/10?cache_control=", nil, 200, nil, map[string]string{"Cache-Control": ""}},
		{"headers", "GET", "/bytes/10?vary=Accept-Encoding&content_type=text/plain&expires=Thu,%2001%20Jan%201970%2000:00:00%20GMT", nil, 200, nil,
			map[string]string{"Vary": "Accept-Encoding", "Content-Type": "text/plain", "Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}},
		{"etag override", "GET", "/bytes/10?etag=abc", []string{"If-None-Match", `"abc"`}, 304, nil, map[string]string{"ETag": `"abc"`}},
		{"last_modified override", "GET", "/bytes/10?last_modified=1700000000", nil, 200, nil,
			map[string]string{"Last-Modified": time.Unix(1700000000, 0).UTC().Format(http.TimeFormat)}},
		{"status", "GET", "/bytes/10?status=503", nil, 503, nil, map[string]string{"ETag": ""}},
		{"status 404 cacheable", "GET", "/bytes/10?status=404&cache_control=max-age=5", nil, 404, nil, map[string]string{"Cache-Control": "max-age=5"}},
		{"bad status", "GET", "/bytes/10?status=99", nil, 400, nil, nil},
		{"bad delay", "GET", "/bytes/10?delay=forever", nil, 400, nil, nil},
		{"bad rate", "GET", "/bytes/10?rate=fast", nil, 400, nil, nil},
		{"bad break", "GET", "/bytes/10?break_after=x", nil, 400, nil, nil},
		{"bad last_modified", "GET", "/bytes/10?last_modified=yesterday", nil, 400, nil, nil},
		{"header injection", "GET", "/bytes/10?vary=a%0d%0aX-Evil:1", nil, 400, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, u+tc.path, tc.hdr...)
			if r.err != nil {
				t.Fatalf("reading body: %v", r.err)
			}
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tc.status, trunc(r.body))
			}
			if tc.body != nil && !bytes.Equal(r.body, tc.body) {
				t.Errorf("body = %d bytes %q, want %d bytes %q", len(r.body), trunc(r.body), len(tc.body), trunc(tc.body))
			}
			for k, v := range tc.wantHdr {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func TestFaultKnobs(t *testing.T) {
	s := startOrigin(t, Options{})
	u := s.URL()

	t.Run("delay", func(t *testing.T) {
		start := time.Now()
		r := do(t, "GET", u+"/bytes/10?delay=150ms")
		if r.status != 200 || time.Since(start) < 150*time.Millisecond {
			t.Errorf("delay=150ms: status %d after %v, want 200 after >= 150ms", r.status, time.Since(start))
		}
	})
	t.Run("rate", func(t *testing.T) {
		// 100 KiB at 200 KiB/s takes about half a second (the first 1/20 s
		// worth is sent at once).
		start := time.Now()
		r := do(t, "GET", u+"/bytes/102400?rate=200KiB")
		el := time.Since(start)
		if r.status != 200 || !bytes.Equal(r.body, content(102400, "", 0, 102400)) || el < 400*time.Millisecond {
			t.Errorf("rate: status %d, %d bytes after %v; want 200, the object, >= 400ms", r.status, len(r.body), el)
		}
	})
	t.Run("break_after", func(t *testing.T) {
		for _, k := range []int64{0, 1000, 200000} {
			r := do(t, "GET", fmt.Sprintf("%s/bytes/1000000?break_after=%d", u, k))
			if r.status != 200 || r.err == nil || int64(len(r.body)) != k || !bytes.Equal(r.body, content(1000000, "", 0, k)) {
				t.Errorf("break_after=%d: status %d, %d bytes, err %v; want 200, exactly %d right bytes, then an error", k, r.status, len(r.body), r.err, k)
			}
		}
		// Breaking after more than the body is no break at all.
		if r := do(t, "GET", u+"/bytes/100?break_after=1000"); r.err != nil || len(r.body) != 100 {
			t.Errorf("break_after beyond the body: %d bytes, err %v", len(r.body), r.err)
		}
	})
	t.Run("global faults", func(t *testing.T) {
		if err := s.Origin.SetFaults(Faults{Status: 503}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/healthz", "/bytes/10", "/vod/sample/master.m3u8"} {
			if r := do(t, "GET", u+p); r.status != 503 {
				t.Errorf("GET %s with global status 503 = %d", p, r.status)
			}
		}
		if r := do(t, "GET", u+"/bytes/10?status=200"); r.status != 200 {
			t.Errorf("query status=200 should override the global fault, got %d", r.status)
		}
		if err := s.Origin.SetFaults(Faults{Version: "7"}); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", u+"/bytes/10"); r.header.Get("ETag") != NewContent(10, "7").ETag() || !bytes.Equal(r.body, content(10, "7", 0, 10)) {
			t.Errorf("global version 7: ETag %s, want %s", r.header.Get("ETag"), NewContent(10, "7").ETag())
		}
		if err := s.Origin.SetFaults(Faults{BreakAfterBytes: 10}); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", u+"/bytes/100"); r.err == nil || len(r.body) != 10 {
			t.Errorf("global break after 10: %d bytes, err %v", len(r.body), r.err)
		}
		if err := s.Origin.SetFaults(Faults{Status: 42}); err == nil {
			t.Error("SetFaults(status 42) accepted")
		}
		if err := s.Origin.SetFaults(Faults{}); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", u+"/healthz"); r.status != 200 {
			t.Errorf("healthz after clearing faults = %d", r.status)
		}
	})
}

func TestHits(t *testing.T) {
	s := startOrigin(t, Options{})
	for range 3 {
		do(t, "GET", s.URL()+"/bytes/5?x=1")
	}
	do(t, "HEAD", s.URL()+"/bytes/6")
	if got := s.Origin.Hits("/bytes/5"); got != 3 {
		t.Errorf("Hits(/bytes/5) = %d, want 3", got)
	}
	if got := s.Origin.Hits("/bytes/6"); got != 1 {
		t.Errorf("Hits(/bytes/6) = %d, want 1", got)
	}
	if got := s.Origin.TotalHits(); got != 4 {
		t.Errorf("TotalHits = %d, want 4", got)
	}
	s.Origin.ResetHits()
	if got := s.Origin.Hits("/bytes/5"); got != 0 {
		t.Errorf("Hits after reset = %d", got)
	}
}

func TestVOD(t *testing.T) {
	s := startOrigin(t, Options{})
	files := s.Origin.SampleFiles()
	if len(files) < 10 {
		t.Fatalf("sample has %d files: %v", len(files), files)
	}
	master := do(t, "GET", s.URL()+SampleMasterPath)
	if master.status != 200 || master.header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("master: %d %q", master.status, master.header.Get("Content-Type"))
	}
	// Every rendition the master names exists, and every segment its
	// playlist names too; their bodies are the embedded bytes.
	renditions := 0
	for _, line := range strings.Split(string(master.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		renditions++
		pl := "/vod/sample/" + line
		r := do(t, "GET", s.URL()+pl)
		if r.status != 200 {
			t.Fatalf("%s: %d", pl, r.status)
		}
		dir := pl[:strings.LastIndex(pl, "/")+1]
		var total float64
		for _, l := range strings.Split(string(r.body), "\n") {
			if d, ok := strings.CutPrefix(l, "#EXTINF:"); ok {
				f, _ := strconv.ParseFloat(strings.TrimSuffix(d, ","), 64)
				if f < 2 || f > 4.01 {
					t.Errorf("%s: segment of %gs, want 2-4s", pl, f)
				}
				total += f
			}
			uri := l
			if m, ok := strings.CutPrefix(l, `#EXT-X-MAP:URI="`); ok {
				uri = strings.TrimSuffix(m, `"`)
			} else if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			seg := do(t, "GET", s.URL()+dir+uri)
			want, _ := s.Origin.SampleFile(dir + uri)
			if seg.status != 200 || seg.header.Get("Content-Type") != "video/mp4" || !bytes.Equal(seg.body, want) || seg.header.Get("ETag") == "" {
				t.Errorf("%s: %d %q, %d bytes, want 200 video/mp4 %d bytes", dir+uri, seg.status, seg.header.Get("Content-Type"), len(seg.body), len(want))
			}
		}
		if total < 30 || total > 60 {
			t.Errorf("%s: %gs of video, want 30-60s", pl, total)
		}
	}
	if renditions < 2 {
		t.Errorf("master lists %d renditions, want >= 2", renditions)
	}
	seg := "/vod/sample/360p/seg_001.m4s"
	want, _ := s.Origin.SampleFile(seg)
	if r := do(t, "GET", s.URL()+seg, "Range", "bytes=100-199"); r.status != 206 || !bytes.Equal(r.body, want[100:200]) {
		t.Errorf("range of a segment: %d, %d bytes", r.status, len(r.body))
	}
	if r := do(t, "GET", s.URL()+"/vod/sample/nope.m4s"); r.status != 404 {
		t.Errorf("missing segment: %d, want 404", r.status)
	}
}

func TestShutdownStopsSlowBody(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan response, 1)
	go func() {
		// 10 MB at 100 KB/s would take 100 s.
		resp, err := client.Get(s.URL() + "/bytes/10000000?rate=100KB")
		if err != nil {
			done <- response{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- response{status: resp.StatusCode, body: b, err: err}
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_ = s.Shutdown(ctx)
	r := <-done
	if r.err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("slow body after shutdown: err %v after %v; want a cut body within 3s", r.err, time.Since(start))
	}
}

func BenchmarkContentFill(b *testing.B) {
	c := NewContent(64<<30, "")
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		c.Fill(off, buf)
		off = (off + int64(len(buf)) + 3) % (60 << 30)
	}
}
