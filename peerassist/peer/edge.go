package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/peerassist/edgebox/peerassist/manifest"
)

// The edge's request headers (edge/hooks.go; a test checks they agree).
// Copied rather than imported so a peer binary does not link the edge
// server.
const (
	sessionHeader = "X-PA-Session"
	urgentHeader  = "X-PA-Urgent"
)

// maxManifestBytes bounds a manifest document (64 hex digits per chunk: a
// 64 GiB object in 256 KiB chunks is about 17 MiB).
const maxManifestBytes = 32 << 20

// ErrUsePeers is returned (wrapped in *RefusedError) when the edge refuses a
// non-urgent fetch and asks the client to use peers (HTTP 429 with
// X-PA-Use-Peers).
var ErrUsePeers = errors.New("edge asks to fetch from peers")

// ErrObjectChanged: the edge's bytes no longer match the manifest the fetch
// started with (the object was updated at the origin meanwhile). Fetch it
// again for the new version.
var ErrObjectChanged = errors.New("object changed at the edge since its manifest")

// RefusedError is an edge 429: retry after RetryAfter, from peers meanwhile.
type RefusedError struct {
	RetryAfter time.Duration
	Reason     string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("edge refused the request (429, retry after %v): %s", e.RetryAfter, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrUsePeers }

// HTTPError is an edge response with an unexpected status.
type HTTPError struct {
	URL    string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("edge GET %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// edgeClient fetches manifests and byte ranges from the edge over HTTP,
// with the peer's session. Safe for concurrent use; no usable zero value.
type edgeClient struct {
	base    *url.URL
	hc      *http.Client
	session func() string
}

func newEdgeClient(base string, local net.IP, hc *http.Client, session func() string) (*edgeClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("edge URL %q: %w", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("edge URL %q: want http(s)://host[:port]", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if local != nil {
			d.LocalAddr = &net.TCPAddr{IP: local}
		}
		hc = &http.Client{Transport: &http.Transport{
			DialContext:           d.DialContext,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		}}
	}
	return &edgeClient{base: u, hc: hc, session: session}, nil
}

func (c *edgeClient) close() { c.hc.CloseIdleConnections() }

// objectURL resolves an object path ("/bytes/65536?x=1") against the edge.
func (c *edgeClient) objectURL(path string) string {
	return c.base.String() + path
}

func (c *edgeClient) get(ctx context.Context, u string, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if s := c.session(); s != "" {
		req.Header.Set(sessionHeader, s)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("edge GET %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, &RefusedError{RetryAfter: time.Duration(max(ra, 1)) * time.Second, Reason: strings.TrimSpace(string(body))}
	}
	return resp, nil
}

func httpError(u string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &HTTPError{URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
}

// manifest fetches and validates the manifest of the object at path.
func (c *edgeClient) manifest(ctx context.Context, path string) (*manifest.Manifest, error) {
	u := c.base.String() + "/pa/v1/manifest?url=" + url.QueryEscape(path)
	resp, err := c.get(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpError(u, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", path, err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("manifest of %s is larger than %d bytes", path, maxManifestBytes)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", path, err)
	}
	return m, nil
}

// rangeGet reads bytes [start, end) of the object at path into dst
// (len(dst) == end-start). size is the object's size from its manifest:
// the edge's Content-Range must agree with it.
func (c *edgeClient) rangeGet(ctx context.Context, path string, start, end, size int64, urgent bool, dst []byte) error {
	u := c.objectURL(path)
	hdr := map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", start, end-1)}
	if urgent {
		hdr[urgentHeader] = "1"
	}
	resp, err := c.get(ctx, u, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cs, ce, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("edge GET %s: %w", u, err)
		}
		if cs != start || ce != end || total != size {
			return fmt.Errorf("edge GET %s: Content-Range %d-%d/%d, asked %d-%d of %d bytes: %w",
				u, cs, ce-1, total, start, end-1, size, ErrObjectChanged)
		}
	case http.StatusOK:
		// The edge ignored the range (allowed by RFC 9110): skip to it.
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return fmt.Errorf("edge GET %s: %d bytes, manifest says %d: %w", u, resp.ContentLength, size, ErrObjectChanged)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, start); err != nil {
			return fmt.Errorf("edge GET %s: skipping to %d: %w", u, start, err)
		}
	default:
		return httpError(u, resp)
	}
	if _, err := io.ReadFull(body, dst); err != nil {
		return fmt.Errorf("edge GET %s: reading %d bytes: %w", u, len(dst), err)
	}
	return nil
}

// parseContentRange parses "bytes a-b/n" into [a, b+1) and n.
func parseContentRange(v string) (start, end, size int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: want bytes a-b/n", v)
	}
	rng, total, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: want bytes a-b/n", v)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	size, err3 := strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || last < start || size <= last {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: invalid", v)
	}
	return start, last + 1, size, nil
}
