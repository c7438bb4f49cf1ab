package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

const fileTestChunk = 64 << 10

func diskStore(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.ChunkBytes, opts.DiskPath, opts.NoFsync = fileTestChunk, dir, true
	if opts.MemoryBytes == 0 {
		opts.MemoryBytes = 4 * fileTestChunk
	}
	return openStore(t, opts)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*net.TCPConn), peer
}

// sendRange sends [off, off+n) of info with OpenFile and SendTo over a
// loopback connection and returns what the other end received.
func sendRange(t *testing.T, s *Store, info ObjectInfo, off, n int64) ([]byte, error) {
	t.Helper()
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, off, n)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, in := tcpPair(t)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(in)
		got <- b
	}()
	rc, err := out.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	sent, err := f.SendTo(rc)
	out.Close()
	b := <-got
	if err != nil {
		return b, err
	}
	if sent != n || f.Len() != 0 {
		t.Errorf("SendTo sent %d bytes, %d left; want %d, 0", sent, f.Len(), n)
	}
	return b, nil
}

func TestOpenFileSendsRanges(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendfile is implemented on Linux")
	}
	s := diskStore(t, t.TempDir(), Options{})
	defer s.Close()
	body := content("big", 10*fileTestChunk+123)
	info := fillObject(t, s, "big", body, true, 50_000)
	size := int64(len(body))
	tests := []struct {
		name   string
		off, n int64
	}{
		{"whole", 0, size},
		{"first byte", 0, 1},
		{"last byte", size - 1, 1},
		{"within a chunk", 100, 1000},
		{"across chunks", fileTestChunk - 10, 3*fileTestChunk + 20},
		{"tail", 9 * fileTestChunk, size - 9*fileTestChunk},
		{"empty", 5, 0},
	}
	for _, tc := range tests {
		got, err := sendRange(t, s, info, tc.off, tc.n)
		if err != nil {
			t.Errorf("%s: send [%d,+%d): %v", tc.name, tc.off, tc.n, err)
			continue
		}
		if !bytes.Equal(got, body[tc.off:tc.off+tc.n]) {
			t.Errorf("%s: send [%d,+%d) delivered %d bytes, not the stored ones", tc.name, tc.off, tc.n, len(got))
		}
		got, err = readFileRange(s, info, tc.off, tc.n)
		if err != nil || !bytes.Equal(got, body[tc.off:tc.off+tc.n]) {
			t.Errorf("%s: Read [%d,+%d) = %d bytes, %v; want the stored bytes", tc.name, tc.off, tc.n, len(got), err)
		}
	}
	if st := s.Stats(); st.CorruptChunks != 0 || st.DiskHits == 0 {
		t.Errorf("Stats() = %+v, want disk hits and no corrupt chunk", st)
	}
}

func TestOpenFileErrors(t *testing.T) {
	ctx := context.Background()
	mem := openStore(t, Options{ChunkBytes: fileTestChunk})
	defer mem.Close()
	memInfo := fillObject(t, mem, "k", content("k", 3*fileTestChunk), true, fileTestChunk)
	dir := t.TempDir()
	s := diskStore(t, dir, Options{})
	defer s.Close()
	info := fillObject(t, s, "k", content("k", 3*fileTestChunk), true, fileTestChunk)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name   string
		s      *Store
		ctx    context.Context
		id     uint64
		ver    uint64
		off, n int64
		want   error
	}{
		{"memory-only store", mem, ctx, memInfo.ID, memInfo.Version, 0, 10, ErrNotOnDisk},
		{"unknown version", s, ctx, info.ID, info.Version + 1, 0, 10, ErrNotFound},
		{"past the end", s, ctx, info.ID, info.Version, 3*fileTestChunk - 5, 10, ErrRange},
		{"negative offset", s, ctx, info.ID, info.Version, -1, 10, ErrRange},
		{"negative length", s, ctx, info.ID, info.Version, 0, -1, ErrRange},
		{"overflowing range", s, ctx, info.ID, info.Version, 1, 1<<63 - 1, ErrRange},
		{"canceled", s, canceled, info.ID, info.Version, 0, 10, context.Canceled},
	}
	for _, tc := range tests {
		f, err := tc.s.OpenFile(tc.ctx, tc.id, tc.ver, tc.off, tc.n)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: OpenFile = %v, want %v", tc.name, err, tc.want)
		}
		if f != nil {
			f.Close()
		}
	}
	s.Close()
	if _, err := s.OpenFile(ctx, info.ID, info.Version, 0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("OpenFile after Close = %v, want ErrClosed", err)
	}
}

// A chunk whose bytes on disk do not match its SHA-256 (a torn write, a bad
// sector) is never handed out for sending: the version is dropped.
func TestOpenFileCorruptNeverSent(t *testing.T) {
	dir := t.TempDir()
	s := diskStore(t, dir, Options{})
	body := content("k", 4*fileTestChunk)
	info := fillObject(t, s, "k", body, true, fileTestChunk)
	s.Close()
	flipByte(t, mustFind(t, dir, dataSuffix), 2*fileTestChunk+7)

	s = diskStore(t, dir, Options{})
	defer s.Close()
	// The chunks before the bad one are fine.
	if got, err := readFileRange(s, info, 0, 2*fileTestChunk); err != nil || !bytes.Equal(got, body[:2*fileTestChunk]) {
		t.Fatalf("OpenFile of the good chunks: %d bytes, %v; want the stored bytes", len(got), err)
	}
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, fileTestChunk, 2*fileTestChunk)
	if !errors.Is(err, ErrCorrupt) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("OpenFile over the bad chunk = %v, want ErrCorrupt", err)
	}
	if _, err := s.Lookup("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after a corrupt chunk = %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.CorruptChunks != 1 {
		t.Errorf("CorruptChunks = %d, want 1", st.CorruptChunks)
	}
	if files := versionFiles(t, dir); len(files) != 0 {
		t.Errorf("files left after dropping the corrupt version: %v", files)
	}
}

// Verification is remembered only by the process: after a restart every
// chunk is checked again before it is sent.
func TestOpenFileVerifiesAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := diskStore(t, dir, Options{})
	body := content("k", 2*fileTestChunk)
	info := fillObject(t, s, "k", body, true, fileTestChunk)
	if _, err := readFileRange(s, info, 0, int64(len(body))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	flipByte(t, mustFind(t, dir, dataSuffix), 3)
	s = diskStore(t, dir, Options{})
	defer s.Close()
	if _, err := readFileRange(s, info, 0, 10); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenFile after a restart over a changed chunk = %v, want ErrCorrupt", err)
	}
}

// An open File keeps sending the version it was opened for when the
// version is purged, replaced or its file evicted from the fd cache, and
// the purged version's files are deleted once it is closed.
func TestOpenFileOutlivesRemoval(t *testing.T) {
	dir := t.TempDir()
	s := diskStore(t, dir, Options{OpenFiles: 1})
	defer s.Close()
	ctx := context.Background()
	old := content("k", 3*fileTestChunk)
	info := fillObject(t, s, "k", old, true, fileTestChunk)
	purged := fillObject(t, s, "p", content("p", fileTestChunk), true, fileTestChunk)
	f1, err := s.OpenFile(ctx, info.ID, info.Version, 0, int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := s.OpenFile(ctx, purged.ID, purged.Version, 0, fileTestChunk)
	if err != nil {
		t.Fatal(err)
	}
	// f2's file took the only place in the fd cache; replace k, purge p.
	fillObject(t, s, "k", content("k2", 2*fileTestChunk), true, fileTestChunk)
	s.Purge("p")
	if got, err := io.ReadAll(f1); err != nil || !bytes.Equal(got, old) {
		t.Errorf("replaced version read through its open File: %d bytes, %v; want the old body", len(got), err)
	}
	if got, err := io.ReadAll(f2); err != nil || !bytes.Equal(got, content("p", fileTestChunk)) {
		t.Errorf("purged version read through its open File: %d bytes, %v; want its body", len(got), err)
	}
	f1.Close()
	f2.Close()
	f2.Close() // idempotent
	if files := versionFiles(t, dir); len(files) != 2 {
		t.Errorf("files on disk after the Files closed: %v, want the new version's two", files)
	}
	s.mu.Lock()
	open := s.openFiles.Len()
	s.mu.Unlock()
	if open > 1 {
		t.Errorf("%d data files open, bound 1", open)
	}
}

// Closing the store does not pull a file from under a send.
func TestOpenFileOutlivesClose(t *testing.T) {
	s := diskStore(t, t.TempDir(), Options{})
	body := content("k", 2*fileTestChunk)
	info := fillObject(t, s, "k", body, true, fileTestChunk)
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, 0, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("read after the store closed: %d bytes, %v; want the body", len(got), err)
	}
}

// A data file cut short after its chunks were verified ends the send with
// an error and drops the version, rather than sending short.
func TestSendToTruncatedFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendfile is implemented on Linux")
	}
	dir := t.TempDir()
	s := diskStore(t, dir, Options{})
	defer s.Close()
	body := content("k", 3*fileTestChunk)
	info := fillObject(t, s, "k", body, true, fileTestChunk)
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, 0, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(mustFind(t, dir, dataSuffix), fileTestChunk); err != nil {
		t.Fatal(err)
	}
	out, in := tcpPair(t)
	go io.Copy(io.Discard, in)
	rc, _ := out.SyscallConn()
	sent, err := f.SendTo(rc)
	if !errors.Is(err, ErrCorrupt) || sent != fileTestChunk {
		t.Errorf("SendTo of a truncated file = %d, %v; want %d, ErrCorrupt", sent, err, fileTestChunk)
	}
	if _, err := s.Lookup("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after a truncated data file = %v, want ErrNotFound", err)
	}
}

// SendTo waits for a full socket and honors the connection's write
// deadline.
func TestSendToDeadline(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendfile is implemented on Linux")
	}
	s := diskStore(t, t.TempDir(), Options{MemoryBytes: 1 << 20})
	defer s.Close()
	body := content("k", 256*fileTestChunk) // 16 MiB: more than the socket buffers hold
	info := fillObject(t, s, "k", body, true, 1<<20)
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, 0, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ := tcpPair(t) // nobody reads
	out.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	rc, _ := out.SyscallConn()
	sent, err := f.SendTo(rc)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || sent <= 0 || sent >= int64(len(body)) {
		t.Errorf("SendTo to a reader that never reads = %d bytes, %v; want part of %d, then a timeout", sent, err, len(body))
	}
	if errors.Is(err, syscall.EAGAIN) {
		t.Errorf("SendTo leaked EAGAIN: %v", err)
	}
}

func TestResident(t *testing.T) {
	s := diskStore(t, t.TempDir(), Options{MemoryBytes: 2 * fileTestChunk})
	defer s.Close()
	// Four chunks; memory keeps the last two written.
	info := fillObject(t, s, "k", content("k", 4*fileTestChunk), true, fileTestChunk)
	const c = fileTestChunk
	tests := []struct {
		name   string
		ver    uint64
		off, n int64
		want   bool
	}{
		{"chunks in memory", info.Version, 2 * c, 2 * c, true},
		{"one byte in memory", info.Version, 4*c - 1, 1, true},
		{"a chunk on disk only", info.Version, c, 2 * c, false},
		{"first chunk", info.Version, 0, 10, false},
		{"empty range", info.Version, 2 * c, 0, false},
		{"past the end", info.Version, 3 * c, 2 * c, false},
		{"negative offset", info.Version, -1, 10, false},
		{"unknown version", info.Version + 1, 2 * c, 10, false},
	}
	for _, tc := range tests {
		if got := s.Resident(info.ID, tc.ver, tc.off, tc.n); got != tc.want {
			t.Errorf("%s: Resident(%d, %d) = %v, want %v", tc.name, tc.off, tc.n, got, tc.want)
		}
	}
	// Asking does not count as a read or make a chunk recent.
	if st := s.Stats(); st.MemoryHits != 0 || st.DiskHits != 0 {
		t.Errorf("Stats after Resident = %+v, want no reads counted", st)
	}
}

func TestResidentChunk(t *testing.T) {
	s := diskStore(t, t.TempDir(), Options{MemoryBytes: 2 * fileTestChunk})
	defer s.Close()
	// Four chunks; memory keeps the last two written.
	body := content("k", 4*fileTestChunk)
	info := fillObject(t, s, "k", body, true, fileTestChunk)
	const c = fileTestChunk
	tests := []struct {
		name  string
		ver   uint64
		index int
		want  bool
	}{
		{"chunk in memory", info.Version, 3, true},
		{"other chunk in memory", info.Version, 2, true},
		{"chunk on disk only", info.Version, 1, false},
		{"past the end", info.Version, 4, false},
		{"negative index", info.Version, -1, false},
		{"unknown version", info.Version + 1, 3, false},
	}
	for _, tc := range tests {
		got, ok := s.ResidentChunk(info.ID, tc.ver, tc.index)
		if ok != tc.want {
			t.Errorf("%s: ResidentChunk(%d) ok = %v, want %v", tc.name, tc.index, ok, tc.want)
			continue
		}
		if ok && !bytes.Equal(got, body[tc.index*c:(tc.index+1)*c]) {
			t.Errorf("%s: ResidentChunk(%d) returned other bytes", tc.name, tc.index)
		}
	}
	// Served from memory: counted as memory hits; the disk was not read.
	if st := s.Stats(); st.MemoryHits != 2 || st.DiskHits != 0 {
		t.Errorf("Stats = %+v, want 2 memory hits and no disk read", st)
	}
}
