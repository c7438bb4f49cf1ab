package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// objMeta is the HTTP layer's metadata of one stored object version: what
// the store keeps, opaque to it, in ObjectInfo.HTTP. It is encoded as JSON
// with a format version, so that a future format can tell old entries apart
// (an entry it cannot read is a miss and is refetched).
//
// An objMeta is immutable once built (a revalidation builds a new one), so
// the decoded form can be shared by concurrent requests.
type objMeta struct {
	V      int         `json:"v"`
	Status int         `json:"status"`
	Header [][2]string `json:"header"` // stored end-to-end fields, canonical names, in order

	// RFC 9111 sec. 4.2.3 age inputs, in Unix nanoseconds / nanoseconds.
	RequestTime  int64 `json:"request_time"`
	ResponseTime int64 `json:"response_time"`
	InitialAge   int64 `json:"initial_age"` // corrected_initial_age
	// Lifetime is the freshness lifetime in nanoseconds.
	Lifetime int64 `json:"lifetime"`
	// NoCache: stored, but revalidated on every use.
	NoCache bool `json:"no_cache,omitempty"`
	// MustRevalidate: never served stale (must-revalidate,
	// proxy-revalidate or s-maxage).
	MustRevalidate bool `json:"must_revalidate,omitempty"`
	// SWR and SIE are the stale-while-revalidate and stale-if-error
	// windows in nanoseconds, already bounded by cache.max_stale.
	SWR int64 `json:"swr,omitempty"`
	SIE int64 `json:"sie,omitempty"`

	ETag         string   `json:"etag,omitempty"`
	LastModified string   `json:"last_modified,omitempty"`
	Vary         []string `json:"vary,omitempty"` // lower-case field names
	// VaryMarker: this entry has no body of its own; it records that the
	// object at this URL varies on Vary, and the variants live under keys
	// derived from the request's values of those fields.
	VaryMarker bool `json:"vary_marker,omitempty"`

	// Derived on decode, not stored.
	hdr         []hdrField // Header as byte slices, for writes without allocation
	notModHdr   []hdrField // the subset sent with a 304 (RFC 9110 sec. 15.4.5)
	lastModTime time.Time
	// tmpl is the response header of a hit, built once: status, stored
	// fields, Accept-Ranges and the CORS fields. A hit copies it (one copy
	// of the field list) and adds Age and Cache-Status. Read-only.
	tmpl *fasthttp.ResponseHeader
}

type hdrField struct{ k, v []byte }

var (
	hdrAcceptRanges = []byte("Accept-Ranges")
	valBytes        = []byte("bytes")
)

const metaVersion = 1

var errMetaVersion = errors.New("stored HTTP metadata has an unknown format version")

func (m *objMeta) encode() []byte {
	m.V = metaVersion
	b, err := json.Marshal(m)
	if err != nil {
		// Only strings, ints and bools: Marshal cannot fail.
		panic(fmt.Sprintf("edge: encoding object metadata: %v", err))
	}
	return b
}

func decodeMeta(b []byte) (*objMeta, error) {
	m := new(objMeta)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decoding stored HTTP metadata: %w", err)
	}
	if m.V != metaVersion {
		return nil, errMetaVersion
	}
	m.derive()
	return m, nil
}

// derive fills the fields that are not stored.
func (m *objMeta) derive() {
	m.hdr = make([]hdrField, len(m.Header))
	m.notModHdr = m.notModHdr[:0]
	m.tmpl = new(fasthttp.ResponseHeader)
	m.tmpl.DisableNormalizing() // stored names are canonical already
	m.tmpl.SetNoDefaultContentType(true)
	m.tmpl.SetStatusCode(m.Status)
	hasAccRanges := false
	for i, kv := range m.Header {
		f := hdrField{k: []byte(kv[0]), v: []byte(kv[1])}
		m.hdr[i] = f
		m.tmpl.AddBytesKV(f.k, f.v)
		switch kv[0] {
		case "Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Last-Modified", "Vary":
			m.notModHdr = append(m.notModHdr, f)
		case "Accept-Ranges":
			hasAccRanges = true
		}
	}
	if m.Status == fasthttp.StatusOK && !hasAccRanges {
		m.tmpl.SetCanonical(hdrAcceptRanges, valBytes)
	}
	m.tmpl.SetCanonical(hdrACAO, valStar)
	m.tmpl.SetCanonical(hdrACEH, valExposeHeaders)
	if m.LastModified != "" {
		if t, err := http.ParseTime(m.LastModified); err == nil {
			m.lastModTime = t
		}
	}
}

// currentAge is the object's age at now (RFC 9111 sec. 4.2.3).
func (m *objMeta) currentAge(now int64) time.Duration {
	return time.Duration(m.InitialAge + max(0, now-m.ResponseTime))
}

// freshness describes a stored object at one moment.
type freshness int

const (
	fresh freshness = iota
	// staleWhileRevalidate: stale, but within stale-while-revalidate: serve
	// it and refresh in the background.
	staleWhileRevalidate
	// mustRevalidate: stale (or no-cache): revalidate before serving; if
	// the origin fails, stale-if-error may still allow serving it.
	mustRevalidate
)

func (m *objMeta) freshnessAt(now int64) freshness {
	age := int64(m.currentAge(now))
	switch {
	case m.NoCache:
		return mustRevalidate
	case age < m.Lifetime:
		return fresh
	case !m.MustRevalidate && m.SWR > 0 && age-m.Lifetime <= m.SWR:
		return staleWhileRevalidate
	default:
		return mustRevalidate
	}
}

// staleIfErrorOK reports whether the object may be served after a failed
// revalidation at now.
func (m *objMeta) staleIfErrorOK(now int64) bool {
	if m.MustRevalidate || m.SIE <= 0 {
		return false
	}
	return int64(m.currentAge(now))-m.Lifetime <= m.SIE
}

// remainingFreshness is how long the object stays fresh after now (0 when
// stale or no-cache).
func (m *objMeta) remainingFreshness(now int64) time.Duration {
	if m.NoCache {
		return 0
	}
	return max(0, time.Duration(m.Lifetime)-m.currentAge(now))
}

// storePolicy is the configuration that decides storage and freshness.
type storePolicy struct {
	negativeTTL time.Duration // 404/410 without explicit freshness
	defaultTTL  time.Duration // other responses without explicit freshness
	maxStale    time.Duration // bound of stale-while-revalidate/stale-if-error
}

// Reasons a response is not stored; they appear in Cache-Status details
// and logs.
const (
	reasonNoStore    = "no-store"
	reasonPrivate    = "private"
	reasonSetCookie  = "set-cookie"
	reasonVaryStar   = "vary-star"
	reasonStatus     = "status"
	reasonNoFresh    = "no-freshness"
	reasonNegTTLOff  = "negative-caching-off"
	reasonTooLarge   = "too-large"
	reasonAuthorized = "authorization"
)

// heuristicStatuses are cacheable by default (RFC 9110 sec. 15.1);
// explicitStatuses only with explicit freshness.
func statusStorable(status int, explicit bool) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	case 302, 307:
		return explicit
	}
	return false
}

// hopByHop are fields that are never forwarded in either direction (RFC
// 9110 sec. 7.6.1), plus fields a cache computes itself.
func isHopByHop(k []byte) bool {
	switch {
	case equalFoldASCII(k, "connection"), equalFoldASCII(k, "keep-alive"),
		equalFoldASCII(k, "proxy-connection"), equalFoldASCII(k, "te"),
		equalFoldASCII(k, "trailer"), equalFoldASCII(k, "transfer-encoding"),
		equalFoldASCII(k, "upgrade"), equalFoldASCII(k, "proxy-authenticate"),
		equalFoldASCII(k, "proxy-authorization"):
		return true
	}
	return false
}

// connectionTokens returns the lower-case field names listed in Connection
// (which are hop-by-hop too).
func connectionTokens(fields iter.Seq2[[]byte, []byte]) []string {
	var names []string
	for k, v := range fields {
		if !equalFoldASCII(k, "connection") {
			continue
		}
		for _, t := range strings.Split(string(v), ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" && t != "close" && t != "keep-alive" {
				names = append(names, t)
			}
		}
	}
	return names
}

// buildMeta decides whether an origin response (its status and header
// fields) may be stored and builds its metadata. reqTime and respTime are
// when the request was sent and the response headers arrived. reason says
// why a response is not storable.
func buildMeta(fields iter.Seq2[[]byte, []byte], status int, reqTime, respTime time.Time, pol storePolicy) (m *objMeta, storable bool, reason string) {
	m = &objMeta{V: metaVersion, Status: status, RequestTime: reqTime.UnixNano(), ResponseTime: respTime.UnixNano()}
	cc := newCacheControl()
	var (
		expires, date []byte
		ageValue      int64
		hasExpires    bool
		setCookie     bool
	)
	connNames := connectionTokens(fields)
	for k, v := range fields {
		switch {
		case isHopByHop(k), slices.Contains(connNames, strings.ToLower(string(k))):
			continue
		case equalFoldASCII(k, "cache-control"):
			cc.parse(v)
		case equalFoldASCII(k, "expires"):
			if !hasExpires {
				expires, hasExpires = slices.Clone(v), true
			}
		case equalFoldASCII(k, "date"):
			date = slices.Clone(v)
		case equalFoldASCII(k, "age"):
			if n, ok := parseDigits(trimOWS(v)); ok {
				ageValue = n
			}
			continue // computed on every response
		case equalFoldASCII(k, "set-cookie"):
			setCookie = true
			continue // never replayed from the cache to other clients
		case equalFoldASCII(k, "content-length"), equalFoldASCII(k, "cache-status"):
			continue // computed on every response
		case equalFoldASCII(k, "etag"):
			m.ETag = string(v)
		case equalFoldASCII(k, "last-modified"):
			m.LastModified = string(v)
		case equalFoldASCII(k, "vary"):
			for _, t := range strings.Split(string(v), ",") {
				if t = strings.ToLower(strings.TrimSpace(t)); t != "" && !slices.Contains(m.Vary, t) {
					m.Vary = append(m.Vary, t)
				}
			}
		}
		m.Header = append(m.Header, [2]string{canonicalKey(k), string(v)})
	}

	// Age (RFC 9111 sec. 4.2.3).
	dateValue := respTime
	if len(date) > 0 {
		if t, err := http.ParseTime(string(date)); err == nil {
			dateValue = t
		}
	} else {
		// A response without Date gets one (RFC 9110 sec. 6.6.1): the
		// stored copy keeps it so that Age and Date agree on hits.
		m.Header = append(m.Header, [2]string{"Date", respTime.UTC().Format(http.TimeFormat)})
	}
	apparentAge := max(0, respTime.Sub(dateValue))
	correctedAge := time.Duration(min(ageValue, 1<<31))*time.Second + respTime.Sub(reqTime)
	m.InitialAge = int64(max(apparentAge, correctedAge))

	// Freshness lifetime (RFC 9111 sec. 4.2.1), shared cache.
	explicit := true
	var lifetime time.Duration
	switch {
	case cc.invalidFreshnessArg:
		lifetime = 0
	case cc.sMaxAge >= 0:
		lifetime = time.Duration(cc.sMaxAge) * time.Second
	case cc.maxAge >= 0:
		lifetime = time.Duration(cc.maxAge) * time.Second
	case hasExpires:
		if t, err := http.ParseTime(string(expires)); err == nil {
			lifetime = max(0, t.Sub(dateValue))
		}
	default:
		explicit = false
		if status == 404 || status == 410 {
			lifetime = pol.negativeTTL
		} else {
			lifetime = pol.defaultTTL
		}
	}
	m.Lifetime = int64(lifetime)
	m.NoCache = cc.noCache
	// s-maxage implies proxy-revalidate (RFC 9111 sec. 5.2.2.10).
	m.MustRevalidate = cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge >= 0
	if cc.staleWhileReval > 0 {
		m.SWR = int64(min(time.Duration(cc.staleWhileReval)*time.Second, pol.maxStale))
	}
	if cc.staleIfError > 0 {
		m.SIE = int64(min(time.Duration(cc.staleIfError)*time.Second, pol.maxStale))
	}

	switch {
	case cc.noStore:
		return m, false, reasonNoStore
	case cc.private:
		return m, false, reasonPrivate
	case setCookie && !cc.public:
		return m, false, reasonSetCookie
	case slices.Contains(m.Vary, "*"):
		return m, false, reasonVaryStar
	case !statusStorable(status, explicit):
		return m, false, reasonStatus
	case !explicit && (status == 404 || status == 410) && pol.negativeTTL <= 0:
		return m, false, reasonNegTTLOff
	case lifetime <= 0 && m.ETag == "" && m.LastModified == "" && m.SIE <= 0:
		// Nothing to gain: it could never be used without a full refetch.
		return m, false, reasonNoFresh
	}
	return m, true, ""
}

// canonicalKey returns the canonical form of a field name ("cache-control"
// is "Cache-Control"), as fasthttp writes it.
func canonicalKey(k []byte) string {
	b := []byte(string(k))
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// mergeNotModified returns a copy of m whose header fields are updated from
// a 304 response (RFC 9111 sec. 4.3.4) and whose age and freshness are
// recomputed from it. The body-related fields are kept. storable is false
// when the updated fields forbid storing (the 304 said no-store, say).
func mergeNotModified(m *objMeta, h iter.Seq2[[]byte, []byte], reqTime, respTime time.Time, pol storePolicy) (nm *objMeta, storable bool) {
	// The stored fields, with every field the 304 carries replaced, are
	// evaluated as if they were a new response.
	var fresh [][2]string
	replaced := map[string]bool{}
	for k, v := range h {
		switch {
		case isHopByHop(k), equalFoldASCII(k, "content-length"), equalFoldASCII(k, "content-type"),
			equalFoldASCII(k, "content-encoding"), equalFoldASCII(k, "content-range"):
			continue
		}
		ck := canonicalKey(k)
		replaced[ck] = true
		fresh = append(fresh, [2]string{ck, string(v)})
	}
	merged := make([][2]string, 0, len(m.Header)+len(fresh))
	for _, kv := range m.Header {
		if !replaced[kv[0]] {
			merged = append(merged, kv)
		}
	}
	merged = append(merged, fresh...)
	nm, storable, _ = buildMeta(fieldList(merged), m.Status, reqTime, respTime, pol)
	nm.VaryMarker = m.VaryMarker
	return nm, storable
}

// fieldList iterates over a list of header fields.
func fieldList(l [][2]string) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, kv := range l {
			if !yield([]byte(kv[0]), []byte(kv[1])) {
				return
			}
		}
	}
}
