package edge

import (
	"net/http"
	"testing"
	"time"
)

func TestCacheControlParse(t *testing.T) {
	tests := []struct {
		in   []string
		want cacheControl
	}{
		{in: []string{"max-age=60"}, want: cacheControl{maxAge: 60, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1}},
		{in: []string{"Public, S-MaxAge=10, max-age=5"}, want: cacheControl{maxAge: 5, sMaxAge: 10, staleWhileReval: -1, staleIfError: -1, public: true}},
		{in: []string{"max-age=1", "max-age=2"}, want: cacheControl{maxAge: 1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1}},
		{in: []string{`max-age="30"`}, want: cacheControl{maxAge: 30, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1}},
		{in: []string{"max-age=abc"}, want: cacheControl{maxAge: -1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1, invalidFreshnessArg: true}},
		{in: []string{"max-age"}, want: cacheControl{maxAge: -1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1, invalidFreshnessArg: true}},
		{in: []string{`no-cache="set-cookie, x", private`}, want: cacheControl{maxAge: -1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1, noCache: true, private: true}},
		{in: []string{"no-store,must-revalidate,proxy-revalidate"}, want: cacheControl{maxAge: -1, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1, noStore: true, mustRevalidate: true, proxyRevalidate: true}},
		{in: []string{"max-age=1, stale-while-revalidate=30, stale-if-error=600"}, want: cacheControl{maxAge: 1, sMaxAge: -1, staleWhileReval: 30, staleIfError: 600}},
		{in: []string{"max-age=99999999999"}, want: cacheControl{maxAge: 1 << 31, sMaxAge: -1, staleWhileReval: -1, staleIfError: -1}},
		{in: []string{" , ,unknown=1,"}, want: newCacheControl()},
	}
	for _, tt := range tests {
		got := newCacheControl()
		for _, v := range tt.in {
			got.parse([]byte(v))
		}
		if got != tt.want {
			t.Errorf("parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestBuildMeta is the table of storage and freshness decisions (RFC 9111
// sec. 3 and 4.2) for a shared cache.
func TestBuildMeta(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	pol := storePolicy{negativeTTL: 10 * time.Second, defaultTTL: 0, maxStale: time.Hour}
	type hdr = [][2]string
	tests := []struct {
		name      string
		status    int
		h         hdr
		storable  bool
		reason    string
		lifetime  time.Duration
		noCache   bool
		mustReval bool
		swr, sie  time.Duration
		initAge   time.Duration
	}{
		{name: "max-age", status: 200, h: hdr{{"Cache-Control", "max-age=60"}}, storable: true, lifetime: time.Minute},
		{name: "s-maxage wins", status: 200, h: hdr{{"Cache-Control", "max-age=60, s-maxage=5"}}, storable: true, lifetime: 5 * time.Second, mustReval: true},
		{name: "expires", status: 200, h: hdr{{"Date", date}, {"Expires", now.Add(90 * time.Second).Format(http.TimeFormat)}}, storable: true, lifetime: 90 * time.Second},
		{name: "max-age over expires", status: 200, h: hdr{{"Cache-Control", "max-age=7"}, {"Expires", now.Add(time.Hour).Format(http.TimeFormat)}}, storable: true, lifetime: 7 * time.Second},
		{name: "invalid expires is stale", status: 200, h: hdr{{"Expires", "0"}, {"ETag", `"e"`}}, storable: true, lifetime: 0},
		{name: "no-store", status: 200, h: hdr{{"Cache-Control", "max-age=60, no-store"}}, reason: reasonNoStore},
		{name: "private", status: 200, h: hdr{{"Cache-Control", "private, max-age=60"}}, reason: reasonPrivate},
		{name: "no-cache stored", status: 200, h: hdr{{"Cache-Control", "no-cache"}, {"ETag", `"x"`}}, storable: true, noCache: true},
		{name: "must-revalidate", status: 200, h: hdr{{"Cache-Control", "max-age=1, must-revalidate"}}, storable: true, lifetime: time.Second, mustReval: true},
		{name: "proxy-revalidate", status: 200, h: hdr{{"Cache-Control", "max-age=1, proxy-revalidate"}}, storable: true, lifetime: time.Second, mustReval: true},
		{name: "set-cookie", status: 200, h: hdr{{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=b"}}, reason: reasonSetCookie},
		{name: "set-cookie public", status: 200, h: hdr{{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=b"}}, storable: true, lifetime: time.Minute},
		{name: "vary star", status: 200, h: hdr{{"Cache-Control", "max-age=60"}, {"Vary", "*"}}, reason: reasonVaryStar},
		{name: "500", status: 500, h: hdr{{"Cache-Control", "max-age=60"}}, reason: reasonStatus},
		{name: "206", status: 206, h: hdr{{"Cache-Control", "max-age=60"}}, reason: reasonStatus},
		{name: "302 without freshness", status: 302, h: hdr{{"Location", "/x"}}, reason: reasonStatus},
		{name: "302 with max-age", status: 302, h: hdr{{"Location", "/x"}, {"Cache-Control", "max-age=5"}}, storable: true, lifetime: 5 * time.Second},
		{name: "404 negative ttl", status: 404, storable: true, lifetime: 10 * time.Second},
		{name: "410 negative ttl", status: 410, storable: true, lifetime: 10 * time.Second},
		{name: "404 origin freshness", status: 404, h: hdr{{"Cache-Control", "max-age=2"}}, storable: true, lifetime: 2 * time.Second},
		{name: "200 nothing", status: 200, reason: reasonNoFresh},
		{name: "200 validator only", status: 200, h: hdr{{"Last-Modified", date}}, storable: true, lifetime: 0},
		{name: "swr sie bounded", status: 200, h: hdr{{"Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=86400"}}, storable: true,
			lifetime: time.Second, swr: 30 * time.Second, sie: time.Hour},
		{name: "age counted", status: 200, h: hdr{{"Cache-Control", "max-age=60"}, {"Age", "20"}}, storable: true, lifetime: time.Minute, initAge: 20 * time.Second},
		{name: "date in the past", status: 200, h: hdr{{"Cache-Control", "max-age=60"}, {"Date", now.Add(-30 * time.Second).Format(http.TimeFormat)}}, storable: true,
			lifetime: time.Minute, initAge: 30 * time.Second},
	}
	for _, tt := range tests {
		m, storable, reason := buildMeta(fieldList(tt.h), tt.status, now, now, pol)
		if storable != tt.storable || reason != tt.reason {
			t.Errorf("%s: storable, reason = %v, %q; want %v, %q", tt.name, storable, reason, tt.storable, tt.reason)
			continue
		}
		if !storable {
			continue
		}
		if got := time.Duration(m.Lifetime); got != tt.lifetime {
			t.Errorf("%s: lifetime = %v, want %v", tt.name, got, tt.lifetime)
		}
		if m.NoCache != tt.noCache || m.MustRevalidate != tt.mustReval {
			t.Errorf("%s: no-cache, must-revalidate = %v, %v; want %v, %v", tt.name, m.NoCache, m.MustRevalidate, tt.noCache, tt.mustReval)
		}
		if time.Duration(m.SWR) != tt.swr || time.Duration(m.SIE) != tt.sie {
			t.Errorf("%s: swr, sie = %v, %v; want %v, %v", tt.name, time.Duration(m.SWR), time.Duration(m.SIE), tt.swr, tt.sie)
		}
		if got := time.Duration(m.InitialAge); got != tt.initAge {
			t.Errorf("%s: initial age = %v, want %v", tt.name, got, tt.initAge)
		}
	}
}

func TestFreshness(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	sec := int64(time.Second)
	m := &objMeta{ResponseTime: base, Lifetime: 10 * sec, SWR: 5 * sec, SIE: 20 * sec}
	tests := []struct {
		at      int64
		want    freshness
		sieOK   bool
		remains time.Duration
	}{
		{at: base, want: fresh, sieOK: true, remains: 10 * time.Second},
		{at: base + 9*sec, want: fresh, sieOK: true, remains: time.Second},
		{at: base + 10*sec, want: staleWhileRevalidate, sieOK: true},
		{at: base + 15*sec, want: staleWhileRevalidate, sieOK: true},
		{at: base + 16*sec, want: mustRevalidate, sieOK: true},
		{at: base + 30*sec, want: mustRevalidate, sieOK: true},
		{at: base + 31*sec, want: mustRevalidate, sieOK: false},
	}
	for _, tt := range tests {
		if got := m.freshnessAt(tt.at); got != tt.want {
			t.Errorf("freshnessAt(+%ds) = %v, want %v", (tt.at-base)/sec, got, tt.want)
		}
		if got := m.staleIfErrorOK(tt.at); got != tt.sieOK {
			t.Errorf("staleIfErrorOK(+%ds) = %v, want %v", (tt.at-base)/sec, got, tt.sieOK)
		}
		if got := m.remainingFreshness(tt.at); got != tt.remains {
			t.Errorf("remainingFreshness(+%ds) = %v, want %v", (tt.at-base)/sec, got, tt.remains)
		}
	}
	mr := &objMeta{ResponseTime: base, Lifetime: 10 * sec, SWR: 5 * sec, SIE: 20 * sec, MustRevalidate: true}
	if got := mr.freshnessAt(base + 11*sec); got != mustRevalidate {
		t.Errorf("must-revalidate: freshnessAt(+11s) = %v, want mustRevalidate (no stale serving)", got)
	}
	if mr.staleIfErrorOK(base + 11*sec) {
		t.Errorf("must-revalidate: staleIfErrorOK = true, want false")
	}
	nc := &objMeta{ResponseTime: base, Lifetime: 10 * sec, NoCache: true}
	if got := nc.freshnessAt(base); got != mustRevalidate {
		t.Errorf("no-cache: freshnessAt(0) = %v, want mustRevalidate", got)
	}
}

func TestMergeNotModified(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pol := storePolicy{maxStale: time.Hour}
	h200 := [][2]string{{"Content-Type", "video/mp4"}, {"Cache-Control", "max-age=1"}, {"ETag", `"v1"`}, {"X-Old", "kept"}}
	m, ok, _ := buildMeta(fieldList(h200), 200, now, now, pol)
	if !ok {
		t.Fatal("200 not storable")
	}
	h304 := [][2]string{{"Cache-Control", "max-age=100"}, {"ETag", `"v1"`}, {"Content-Length", "0"}}
	later := now.Add(5 * time.Second)
	nm, storable := mergeNotModified(m, fieldList(h304), later, later, pol)
	if !storable {
		t.Fatal("merged response not storable")
	}
	nm.derive()
	if got := time.Duration(nm.Lifetime); got != 100*time.Second {
		t.Errorf("merged lifetime = %v, want 100s", got)
	}
	if nm.freshnessAt(later.UnixNano()) != fresh {
		t.Errorf("merged object not fresh at the 304's time")
	}
	got := map[string]string{}
	for _, kv := range nm.Header {
		got[kv[0]] = kv[1]
	}
	for k, want := range map[string]string{"Content-Type": "video/mp4", "Cache-Control": "max-age=100", "Etag": `"v1"`, "X-Old": "kept"} {
		if got[k] != want {
			t.Errorf("merged header %s = %q, want %q (all: %v)", k, got[k], want, nm.Header)
		}
	}
	if _, ok := got["Content-Length"]; ok {
		t.Errorf("merged header keeps the 304's Content-Length")
	}
}

func TestMetaEncodeDecode(t *testing.T) {
	m := &objMeta{Status: 200, Header: [][2]string{{"Content-Type", "text/plain"}, {"Etag", `"a"`}, {"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}},
		RequestTime: 1, ResponseTime: 2, InitialAge: 3, Lifetime: 4, NoCache: true, SWR: 5, SIE: 6, ETag: `"a"`,
		LastModified: "Mon, 01 Jan 2024 00:00:00 GMT", Vary: []string{"accept-encoding"}}
	got, err := decodeMeta(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || len(got.hdr) != 3 || got.ETag != `"a"` || got.lastModTime.IsZero() || len(got.notModHdr) != 2 || got.Lifetime != 4 {
		t.Errorf("decode(encode(m)) = %+v", got)
	}
	if _, err := decodeMeta([]byte(`{"v":99}`)); err != errMetaVersion {
		t.Errorf("decode of an unknown version: err = %v, want errMetaVersion", err)
	}
	if _, err := decodeMeta([]byte(`{`)); err == nil {
		t.Errorf("decode of bad JSON: no error")
	}
}

func (f freshness) String() string {
	return [...]string{"fresh", "staleWhileRevalidate", "mustRevalidate"}[f]
}

// FuzzBuildMeta feeds arbitrary origin header values through the storage
// and freshness decision: no panic, and the numbers stay sane.
func FuzzBuildMeta(f *testing.F) {
	f.Add(200, "max-age=60", "", "", "")
	f.Add(404, `no-cache="a, b", private`, "0", "W/\"x\"", "accept-encoding, *")
	f.Add(302, "s-maxage=-1, stale-if-error=99999999999999", "Thu, 01 Jan 1970 00:00:00 GMT", "", "")
	f.Fuzz(func(t *testing.T, status int, cc, expires, etag, vary string) {
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		h := [][2]string{{"Cache-Control", cc}, {"Expires", expires}, {"ETag", etag}, {"Vary", vary}, {"Age", cc}, {"Date", expires}}
		m, storable, reason := buildMeta(fieldList(h), status, now, now, storePolicy{negativeTTL: time.Second, maxStale: time.Hour})
		if storable == (reason != "") {
			t.Fatalf("storable %v with reason %q", storable, reason)
		}
		if m.Lifetime < 0 || m.InitialAge < 0 || m.SWR < 0 || m.SIE < 0 || m.SWR > int64(time.Hour) || m.SIE > int64(time.Hour) {
			t.Fatalf("insane meta %+v", m)
		}
		if _, err := decodeMeta(m.encode()); err != nil {
			t.Fatalf("meta does not round-trip: %v", err)
		}
	})
}
