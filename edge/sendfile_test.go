package edge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
)

// diskEnv is an edge with a disk tier and a memory tier of two 64 KiB
// chunks, so that large hits are mostly sent from the data files with
// sendfile (ranges whose chunks are all in memory are written from there).
func diskEnv(t *testing.T, dir string, opts ...envOption) *testEnv {
	return newEnv(t, nil, append([]envOption{func(c *config.Config, _ *Options) {
		c.Cache.DiskPath = dir
		c.Cache.DiskBytes = 64 << 20
		c.Cache.MemoryBytes = 128 << 10
	}}, opts...)...)
}

// fillAndWait requests path (a miss) and waits until its fill committed.
func (e *testEnv) fillAndWait(path string) {
	e.t.Helper()
	before := e.store.Stats().Objects
	if r := e.get(path); r.status != 200 {
		e.t.Fatalf("fill %s: status %d", path, r.status)
	}
	waitFor(e.t, "the fill of "+path, func() bool { return e.store.Stats().Objects > before })
}

func TestSendfileHits(t *testing.T) {
	g := &gate{}
	e := diskEnv(t, t.TempDir(), func(_ *config.Config, o *Options) { o.Sessions = g })
	const size = 300000 // five 64 KiB chunks
	e.fillAndWait(fmt.Sprintf("/bytes/%d", size))
	e.fillAndWait("/bytes/40000")
	// Memory now holds the last chunk of each (the two most recent).
	full := demoBytes(size, 0, size)
	const (
		fromFile   = "file"   // sendfile from the data file
		fromMemory = "memory" // every chunk in memory
		diskRead   = "read"   // below sendfileMinBytes, not in memory: read (and promoted)
	)
	tests := []struct {
		name, path, rng string
		status          int
		off, n          int64
		contentRange    string
		from            string
	}{
		{"whole object", "/bytes/300000", "", 200, 0, size, "", fromFile},
		{"object in memory", "/bytes/40000", "", 200, 0, 40000, "", fromMemory},
		{"range in memory", "/bytes/300000", "bytes=262144-299999", 206, 262144, size - 262144, "bytes 262144-299999/300000", fromMemory},
		{"range across chunks", "/bytes/300000", "bytes=65000-200000", 206, 65000, 135001, "bytes 65000-200000/300000", fromFile},
		{"suffix range", "/bytes/300000", "bytes=-100000", 206, size - 100000, 100000, "bytes 200000-299999/300000", fromFile},
		{"open-ended range", "/bytes/300000", "bytes=100000-", 206, 100000, size - 100000, "bytes 100000-299999/300000", fromFile},
		{"small range", "/bytes/300000", "bytes=10-1009", 206, 10, 1000, "bytes 10-1009/300000", diskRead},
	}
	for _, tc := range tests {
		before := e.store.Stats()
		var r *response
		if tc.rng != "" {
			r = e.get(tc.path, "Range", tc.rng)
		} else {
			r = e.get(tc.path)
		}
		after := e.store.Stats()
		want := full[tc.off : tc.off+tc.n]
		if tc.path == "/bytes/40000" {
			want = demoBytes(40000, 0, 40000)
		}
		switch {
		case r.status != tc.status || r.get("Content-Range") != tc.contentRange:
			t.Errorf("%s: %d Content-Range %q, want %d %q", tc.name, r.status, r.get("Content-Range"), tc.status, tc.contentRange)
		case !bytes.Equal(r.body, want):
			t.Errorf("%s: %d bytes that differ from the origin's %d", tc.name, len(r.body), len(want))
		case !strings.HasPrefix(r.get("Cache-Status"), "edge; hit"):
			t.Errorf("%s: Cache-Status %q, want a hit", tc.name, r.get("Cache-Status"))
		}
		from := "none"
		switch disk, mem := after.DiskHits > before.DiskHits, after.MemoryHits > before.MemoryHits; {
		case disk && !mem && after.MemoryBytes == before.MemoryBytes && after.Evictions == before.Evictions:
			from = fromFile // nothing read into memory
		case disk && !mem:
			from = diskRead
		case mem && !disk:
			from = fromMemory
		}
		if from != tc.from {
			t.Errorf("%s: served from %s, want %s (stats before %+v, after %+v)", tc.name, from, tc.from, before, after)
		}
	}
	if r := e.do(http.MethodHead, "/bytes/300000"); r.status != 200 || r.get("Content-Length") != "300000" || len(r.body) != 0 {
		t.Errorf("HEAD: %d Content-Length %q, %d body bytes", r.status, r.get("Content-Length"), len(r.body))
	}
	// A peer-assist session is told the bytes actually sent.
	e.get("/bytes/300000", SessionHeader, "s1", "Range", "bytes=0-99999")
	waitFor(t, "the Served call", func() bool { _, served := g.snapshot(); return len(served) == 1 })
	if _, served := g.snapshot(); served[0] != "s1 demo /bytes/300000 100000" {
		t.Errorf("Served: %q, want %q", served[0], "s1 demo /bytes/300000 100000")
	}
}

// Pipelined requests are answered in order when some bodies go out with
// sendfile straight to the socket and others through fasthttp's buffer.
func TestSendfilePipelined(t *testing.T) {
	e := diskEnv(t, t.TempDir())
	e.fillAndWait("/bytes/300000")
	paths := []string{"/bytes/300000", "/bytes/10", "/bytes/300000", "/bytes/300000", "/bytes/20"}
	var req strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: demo.example\r\n\r\n", p)
	}
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, p := range paths {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d (%s): %v", i, p, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var n int64
		fmt.Sscanf(p, "/bytes/%d", &n)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, demoBytes(n, 0, n)) {
			t.Errorf("response %d (%s): %d, %d bytes, %v; want 200 and the origin's %d bytes", i, p, resp.StatusCode, len(body), err, n)
		}
	}
}

// A data file changed on disk (here between two runs) is never sent: the
// chunk fails verification, the object is refetched from the origin.
func TestSendfileCorruptRefetched(t *testing.T) {
	dir := t.TempDir()
	e := diskEnv(t, dir)
	e.fillAndWait("/bytes/300000")
	e.restart(func() {
		var data string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".data") {
				data = p
			}
			return nil
		})
		f, err := os.OpenFile(data, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{'!'}, 200000); err != nil {
			t.Fatal(err)
		}
	})
	r := e.get("/bytes/300000", "Range", "bytes=150000-")
	if r.status != 206 || !bytes.Equal(r.body, demoBytes(300000, 150000, 150000)) {
		t.Fatalf("after corruption: %d, %d bytes; want 206 and the origin's bytes", r.status, len(r.body))
	}
	if cs := r.get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("after corruption: Cache-Status %q, want a refetch (fwd=uri-miss)", cs)
	}
	if st := e.store.Stats(); st.CorruptChunks != 1 {
		t.Errorf("CorruptChunks = %d, want 1", st.CorruptChunks)
	}
	if hits := e.origin.Origin.TotalHits(); hits != 2 {
		t.Errorf("origin hits = %d, want 2 (the fill, the refetch)", hits)
	}
}

// restart stops the server and its store, runs between (with nothing
// open), and starts both again on a new listener.
func (e *testEnv) restart(between func()) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.client.Transport.(*http.Transport).CloseIdleConnections()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	between()
	logger := slog.New(slog.NewTextHandler(e.logs, nil))
	store, err := openStore(e.cfg, logger)
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := New(Options{Config: e.cfg, Store: store, Origins: e.pool, Logger: logger})
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.store, e.srv, e.addr = store, srv, ln.Addr().String()
	e.t.Cleanup(func() {
		e.client.Transport.(*http.Transport).CloseIdleConnections()
		srv.Shutdown(context.Background())
		<-done
	})
}
