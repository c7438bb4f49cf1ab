package peer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peerassist/edgebox/edge"
)

// TestEdgeClientResponses: what the edge client makes of each kind of
// response to a range request for bytes [10, 20) of a 100-byte object.
func TestEdgeClientResponses(t *testing.T) {
	body := make([]byte, 100)
	for i := range body {
		body[i] = byte(i)
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(error) bool
		want    string
	}{
		{"206 with the range", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(sessionHeader) != "sess" || r.Header.Get("Range") != "bytes=10-19" || r.Header.Get(urgentHeader) != "1" {
				http.Error(w, "bad request headers", 400)
				return
			}
			w.Header().Set("Content-Range", "bytes 10-19/100")
			w.WriteHeader(206)
			_, _ = w.Write(body[10:20])
		}, func(err error) bool { return err == nil }, "nil"},
		{"200 with the whole object", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write(body)
		}, func(err error) bool { return err == nil }, "nil"},
		{"206 of another range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 10-19/200")
			w.WriteHeader(206)
			_, _ = w.Write(body[10:20])
		}, func(err error) bool { return errors.Is(err, ErrObjectChanged) }, "ErrObjectChanged"},
		{"200 of another size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "50")
			_, _ = w.Write(body[:50])
		}, func(err error) bool { return errors.Is(err, ErrObjectChanged) }, "ErrObjectChanged"},
		{"206 without Content-Range", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(206)
			_, _ = w.Write(body[10:20])
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "Content-Range") }, "a Content-Range error"},
		{"short body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 10-19/100")
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(206)
			_, _ = w.Write(body[10:15])
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "reading 10 bytes") }, "a read error"},
		{"429 use peers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.Header().Set("X-PA-Use-Peers", "1")
			http.Error(w, "edge: stopped_ebu", 429)
		}, func(err error) bool {
			var re *RefusedError
			return errors.Is(err, ErrUsePeers) && errors.As(err, &re) && re.RetryAfter == 3*time.Second
		}, "a RefusedError of 3s"},
		{"502", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "origin down", 502)
		}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Status == 502 && he.Body == "origin down"
		}, "an HTTPError 502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := newEdgeClient(srv.URL+"/", nil, nil, func() string { return "sess" })
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			dst := make([]byte, 10)
			err = c.rangeGet(context.Background(), "/obj", 10, 20, 100, true, dst)
			if !tt.check(err) {
				t.Fatalf("rangeGet = %v, want %s", err, tt.want)
			}
			if err == nil && !bytes.Equal(dst, body[10:20]) {
				t.Errorf("bytes %v, want %v", dst, body[10:20])
			}
		})
	}
}

func TestEdgeClientManifest(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
	}{
		{"not JSON", "<html>", "manifest"},
		{"inconsistent", `{"url":"/x","object_id":"0123456789abcdef","size":100,"chunk_size":64,"sha256":[]}`, "digests"},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/pa/v1/manifest" || r.URL.Query().Get("url") != "/x?y=1" {
				http.Error(w, "wrong request", 400)
				return
			}
			_, _ = w.Write([]byte(tt.body))
		}))
		c, _ := newEdgeClient(srv.URL, nil, nil, func() string { return "" })
		_, err := c.manifest(context.Background(), "/x?y=1")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: manifest = %v, want an error with %q", tt.name, err, tt.want)
		}
		c.close()
		srv.Close()
	}
	if _, err := newEdgeClient("ftp://x", nil, nil, nil); err == nil {
		t.Error("newEdgeClient accepted ftp://")
	}
}

// TestHeaderNamesMatchEdge: the header names copied from edge/hooks.go
// (so that a peer binary does not link the edge server) are the edge's.
func TestHeaderNamesMatchEdge(t *testing.T) {
	if sessionHeader != edge.SessionHeader || urgentHeader != edge.UrgentHeader {
		t.Errorf("headers %q, %q; the edge uses %q, %q", sessionHeader, urgentHeader, edge.SessionHeader, edge.UrgentHeader)
	}
}
