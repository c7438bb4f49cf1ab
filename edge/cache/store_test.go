package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

const testChunk = 4096

func TestRoundTrip(t *testing.T) {
	sizes := []int64{0, 1, 1000, testChunk - 1, testChunk, testChunk + 1, 3 * testChunk, 10*testChunk + 7, 300_000}
	for _, disk := range []bool{false, true} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("disk=%v/knownSize=%v", disk, known), func(t *testing.T) {
				opts := Options{ChunkBytes: testChunk, MemoryBytes: 64 << 20}
				if disk {
					opts.DiskPath = t.TempDir()
				}
				s := openStore(t, opts)
				infos := map[string]ObjectInfo{}
				for i, size := range sizes {
					key := fmt.Sprintf("site/obj-%d", size)
					body := content(key, size)
					infos[key] = fillObject(t, s, key, body, known, []int{1, 100, 4096, 5000, 1 << 20}[i%5])
				}
				check := func(s *Store, fromDisk bool) {
					t.Helper()
					for _, size := range sizes {
						key := fmt.Sprintf("site/obj-%d", size)
						body := content(key, size)
						info, err := s.Lookup(key)
						if err != nil {
							t.Fatalf("Lookup(%q): %v", key, err)
						}
						if info.Size != size || !info.Complete || info.ChunkBytes != testChunk || info.Version != infos[key].Version {
							t.Errorf("Lookup(%q) = size %d complete %v chunk %d version %d, want %d true %d %d",
								key, info.Size, info.Complete, info.ChunkBytes, info.Version, size, testChunk, infos[key].Version)
						}
						if got, want := info.ChunkSHA256, chunkSums(body, testChunk); !slices.Equal(got, want) {
							t.Errorf("Lookup(%q).ChunkSHA256 has %d sums, want %d (or they differ)", key, len(got), len(want))
						}
						if got, want := string(info.HTTP), "meta:"+key; got != want {
							t.Errorf("Lookup(%q).HTTP = %q, want %q", key, got, want)
						}
						if info.NumChunks() != len(info.ChunkSHA256) {
							t.Errorf("NumChunks() = %d, want %d", info.NumChunks(), len(info.ChunkSHA256))
						}
						ranges := [][2]int64{{0, -1}, {0, size}, {size / 3, -1}, {size / 2, size / 4}, {size, 0}, {size, -1}}
						for _, rg := range ranges {
							got, err := readRange(s, info, rg[0], rg[1])
							end := size
							if rg[1] >= 0 {
								end = rg[0] + rg[1]
							}
							if err != nil || !bytes.Equal(got, body[rg[0]:end]) {
								t.Errorf("read %q [%d,+%d): %d bytes, err %v; want %d bytes", key, rg[0], rg[1], len(got), err, end-rg[0])
							}
						}
						r, _ := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
						all, err := io.ReadAll(r)
						r.Close()
						if err != nil || !bytes.Equal(all, body) {
							t.Errorf("io.ReadAll(%q): %d bytes, err %v; want %d bytes", key, len(all), err, size)
						}
						for i := range info.NumChunks() {
							got, err := s.ReadChunk(context.Background(), info.ID, info.Version, i)
							if err != nil || !bytes.Equal(got, body[i*testChunk:min(int64(i+1)*testChunk, size)]) {
								t.Errorf("ReadChunk(%q, %d): %d bytes, err %v", key, i, len(got), err)
							}
						}
					}
					if st := s.Stats(); fromDisk && st.DiskHits == 0 {
						t.Errorf("after reopening, Stats().DiskHits = 0, want reads from disk")
					}
				}
				check(s, false)
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if disk {
					s = openStore(t, opts)
					if got, want := s.Stats().Objects, int64(len(sizes)); got != want {
						t.Errorf("after reopen, Stats().Objects = %d, want %d", got, want)
					}
					check(s, true)
					s.Close()
				}
			})
		}
	}
}

func TestEvictionMemory(t *testing.T) {
	const bound = 10 * testChunk
	s := openStore(t, Options{ChunkBytes: testChunk, MemoryBytes: bound})
	defer s.Close()
	for i := range 30 {
		key := fmt.Sprintf("k%d", i)
		fillObject(t, s, key, content(key, testChunk), true, testChunk)
		// Keep k0 hot: it must survive.
		if _, err := readRange(s, mustLookup(t, s, "k0"), 0, -1); err != nil {
			t.Fatalf("read k0: %v", err)
		}
		if st := s.Stats(); st.MemoryBytes > bound {
			t.Fatalf("after %d fills MemoryBytes = %d, want <= %d", i+1, st.MemoryBytes, bound)
		}
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{{"k0", true}, {"k1", false}, {"k15", false}, {"k29", true}, {"k25", true}} {
		_, err := s.Lookup(tc.key)
		if got := err == nil; got != tc.want {
			t.Errorf("Lookup(%q) found = %v, want %v", tc.key, got, tc.want)
		}
	}
	st := s.Stats()
	if st.Evictions != 20 || st.Objects != 10 || st.Chunks != 10 {
		t.Errorf("Stats() = %+v, want 20 evictions, 10 objects, 10 chunks", st)
	}
}

func TestEvictionDisk(t *testing.T) {
	dir := t.TempDir()
	const objBytes = 3 * testChunk
	// Room for about 8 objects with their metadata files.
	opts := Options{ChunkBytes: testChunk, MemoryBytes: 2 * testChunk, DiskPath: dir, DiskBytes: 8*objBytes + 8*400}
	s := openStore(t, opts)
	defer s.Close()
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		fillObject(t, s, key, content(key, objBytes), i%2 == 0, 5000)
		if _, err := readRange(s, mustLookup(t, s, "k0"), 0, -1); err != nil {
			t.Fatalf("read k0: %v", err)
		}
		st := s.Stats()
		if st.DiskBytes > opts.DiskBytes || st.MemoryBytes > opts.MemoryBytes {
			t.Fatalf("after %d fills Stats() = %+v, want disk <= %d and memory <= %d", i+1, st, opts.DiskBytes, opts.MemoryBytes)
		}
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{{"k0", true}, {"k1", false}, {"k10", false}, {"k19", true}, {"k14", true}} {
		info, err := s.Lookup(tc.key)
		if got := err == nil; got != tc.want {
			t.Errorf("Lookup(%q) found = %v, want %v", tc.key, got, tc.want)
		}
		if err == nil {
			got, err := readRange(s, info, 0, -1)
			if err != nil || !bytes.Equal(got, content(tc.key, objBytes)) {
				t.Errorf("read %q: %d bytes, err %v", tc.key, len(got), err)
			}
		}
	}
	st := s.Stats()
	if st.DiskHits == 0 {
		t.Errorf("Stats().DiskHits = 0, want reads from disk with a 2-chunk memory tier")
	}
	// Exactly the live versions have files.
	if got, want := len(versionFiles(t, dir)), 2*int(st.Objects); got != want {
		t.Errorf("%d files on disk, want %d (data and metadata of %d objects)", got, want, st.Objects)
	}
}

func mustLookup(t testing.TB, s *Store, key string) ObjectInfo {
	t.Helper()
	info, err := s.Lookup(key)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", key, err)
	}
	return info
}

func TestRestartDropsPartial(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ChunkBytes: testChunk, DiskPath: dir}
	s := openStore(t, opts)
	fillObject(t, s, "good", content("good", 5*testChunk+3), true, 1000)
	f, _ := s.StartFill("partial", 10*testChunk, 0, nil)
	if _, err := f.Write(content("partial", 10*testChunk)[:4*testChunk+10]); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: copy the directory as it is now, with the fill in flight.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	f.Abort(errors.New("test over"))
	s.Close()

	// Add the debris of other crash moments.
	good := mustFind(t, crashed, ".meta")
	base := good[:len(good)-len(".meta")]
	writeFile(t, base[:len(base)-4]+"beef.meta.tmp", []byte("half a metadata file"))
	writeFile(t, base[:len(base)-4]+"cafe.meta", []byte("EBXM torn"))
	writeFile(t, base[:len(base)-4]+"cafe.data", []byte("data of a torn commit"))

	s = openStore(t, Options{ChunkBytes: testChunk, DiskPath: crashed})
	defer s.Close()
	if _, err := s.Lookup("partial"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(partial) after crash: err = %v, want ErrNotFound", err)
	}
	info := mustLookup(t, s, "good")
	if got, err := readRange(s, info, 0, -1); err != nil || !bytes.Equal(got, content("good", 5*testChunk+3)) {
		t.Errorf("read good after crash: %d bytes, err %v", len(got), err)
	}
	if got := versionFiles(t, crashed); len(got) != 2 {
		t.Errorf("files after recovery = %v, want only the data and metadata of %q", got, "good")
	}
	// A new fill of the partial key works.
	fillObject(t, s, "partial", content("partial", 100), true, 7)
}

func mustFind(t *testing.T, dir, suffix string) string {
	t.Helper()
	for _, p := range versionFiles(t, dir) {
		if len(p) > len(suffix) && p[len(p)-len(suffix):] == suffix {
			return dir + p
		}
	}
	t.Fatalf("no %s file in %s", suffix, dir)
	return ""
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
}

func TestCorruptChunkNeverServed(t *testing.T) {
	const size = 5*testChunk + 100
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, data string)
		chunk  int // first chunk that fails
	}{
		{"flipped byte in first chunk", func(t *testing.T, p string) { flipByte(t, p, 17) }, 0},
		{"flipped byte in last chunk", func(t *testing.T, p string) { flipByte(t, p, size-1) }, 5},
		{"flipped byte in middle chunk", func(t *testing.T, p string) { flipByte(t, p, 3*testChunk) }, 3},
		{"truncated", func(t *testing.T, p string) {
			if err := os.Truncate(p, 2*testChunk+5); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"deleted", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{ChunkBytes: testChunk, DiskPath: dir}
			s := openStore(t, opts)
			body := content("obj", size)
			fillObject(t, s, "obj", body, true, 3000)
			s.Close()
			s = openStore(t, opts) // memory tier empty: every read goes to disk
			defer s.Close()
			tc.damage(t, mustFind(t, dir, ".data"))
			info := mustLookup(t, s, "obj")
			got, err := readRange(s, info, 0, -1)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read after damage: err = %v, want ErrCorrupt", err)
			}
			if want := body[:tc.chunk*testChunk]; !bytes.Equal(got, want) {
				t.Errorf("read after damage returned %d bytes, want the %d intact bytes before chunk %d", len(got), len(want), tc.chunk)
			}
			if _, err := s.Lookup("obj"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup after corruption: err = %v, want ErrNotFound", err)
			}
			if _, err := s.ReadChunk(context.Background(), info.ID, info.Version, tc.chunk); !errors.Is(err, ErrNotFound) {
				t.Errorf("ReadChunk after corruption: err = %v, want ErrNotFound", err)
			}
			if st := s.Stats(); st.CorruptChunks != 1 || st.Objects != 0 {
				t.Errorf("Stats() = %+v, want 1 corrupt chunk and 0 objects", st)
			}
			if files := versionFiles(t, dir); len(files) != 0 {
				t.Errorf("files after corruption = %v, want none", files)
			}
		})
	}
}

func TestReadChunkCorrupt(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ChunkBytes: testChunk, DiskPath: dir}
	s := openStore(t, opts)
	fillObject(t, s, "obj", content("obj", 2*testChunk), true, 3000)
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	flipByte(t, mustFind(t, dir, ".data"), testChunk+1)
	info := mustLookup(t, s, "obj")
	if _, err := s.ReadChunk(context.Background(), info.ID, info.Version, 0); err != nil {
		t.Errorf("ReadChunk(0) of intact chunk: %v", err)
	}
	if b, err := s.ReadChunk(context.Background(), info.ID, info.Version, 1); !errors.Is(err, ErrCorrupt) || b != nil {
		t.Errorf("ReadChunk(1) of damaged chunk = %d bytes, %v; want nil, ErrCorrupt", len(b), err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFollowersStreamFill(t *testing.T) {
	for _, tc := range []struct {
		name      string
		disk      bool
		known     bool
		memBytes  int64
		size      int64
		pieceSize int
	}{
		{"memory known size", false, true, 64 << 20, 50*testChunk + 11, 1000},
		{"memory unknown size", false, false, 64 << 20, 20*testChunk + 1, 777},
		{"disk unknown size tiny memory", true, false, 2 * testChunk, 30*testChunk + 5, 3000},
		{"disk known size", true, true, 64 << 20, 30 * testChunk, 4096},
		{"memory-only object as large as memory", false, true, 12 * testChunk, 12 * testChunk, 999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{ChunkBytes: testChunk, MemoryBytes: tc.memBytes}
			if tc.disk {
				opts.DiskPath = t.TempDir()
			}
			s := openStore(t, opts)
			defer s.Close()
			body := content("movie", tc.size)
			size := tc.size
			if !tc.known {
				size = -1
			}
			f, leader := s.StartFill("movie", size, 0, nil)
			if !leader {
				t.Fatal("first StartFill: leader = false")
			}
			info := f.Info()
			type result struct {
				got  []byte
				want []byte
				err  error
			}
			results := make(chan result, 64)
			var wg sync.WaitGroup
			start := func(off, n int64) {
				r, err := s.NewReader(context.Background(), info.ID, info.Version, off, n)
				if err != nil {
					t.Fatalf("NewReader(%d, %d): %v", off, n, err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer r.Close()
					got, err := io.ReadAll(r)
					end := tc.size
					if n >= 0 {
						end = off + n
					}
					results <- result{got, body[off:end], err}
				}()
			}
			for range 8 {
				start(0, -1)
			}
			start(tc.size/2, -1)
			start(100, 3*testChunk)
			// Followers joining the fill get it, not a new one.
			f2, leader2 := s.StartFill("movie", size, 0, nil)
			if f2 != f || leader2 {
				t.Errorf("second StartFill = (%p, %v), want (%p, false)", f2, leader2, f)
			}
			if got, ok := s.InFlight("movie"); got != f || !ok {
				t.Errorf("InFlight = (%p, %v), want (%p, true)", got, ok, f)
			}
			half := len(body) / 2
			if err := writePieces(f, body[:half], tc.pieceSize); err != nil {
				t.Fatal(err)
			}
			for range 4 { // late joiners
				start(0, -1)
			}
			if err := writePieces(f, body[half:], tc.pieceSize); err != nil {
				t.Fatal(err)
			}
			if err := f.Commit(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			close(results)
			for r := range results {
				if r.err != nil || !bytes.Equal(r.got, r.want) {
					t.Errorf("follower read %d bytes, err %v; want %d bytes", len(r.got), r.err, len(r.want))
				}
			}
			if _, ok := s.InFlight("movie"); ok {
				t.Error("InFlight after Commit = true")
			}
			got := mustLookup(t, s, "movie")
			if got.Version != info.Version || got.Size != tc.size {
				t.Errorf("Lookup after fill = version %d size %d, want %d %d", got.Version, got.Size, info.Version, tc.size)
			}
		})
	}
}

// Without a disk tier, evicting a chunk loses its object, so chunks that
// readers need are kept even over the bound, and evicted once released.
func TestMemoryOnlyKeepsChunksInUse(t *testing.T) {
	const bound = 4 * testChunk
	s := openStore(t, Options{ChunkBytes: testChunk, MemoryBytes: bound})
	defer s.Close()
	a := fillObject(t, s, "a", content("a", 3*testChunk), true, 1000)
	r, err := s.NewReader(context.Background(), a.ID, a.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	fillObject(t, s, "b", content("b", 3*testChunk), true, 1000)
	fillObject(t, s, "c", content("c", 3*testChunk), true, 1000)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content("a", 3*testChunk)) {
		t.Errorf("reader of a while b and c were filled: %d bytes, err %v", len(got), err)
	}
	r.Close()
	fillObject(t, s, "d", content("d", 3*testChunk), true, 1000)
	for _, tc := range []struct {
		key  string
		want bool
	}{{"a", false}, {"b", false}, {"c", false}, {"d", true}} {
		if _, err := s.Lookup(tc.key); (err == nil) != tc.want {
			t.Errorf("Lookup(%q) found = %v, want %v", tc.key, err == nil, tc.want)
		}
	}
	if st := s.Stats(); st.MemoryBytes > bound {
		t.Errorf("MemoryBytes = %d once nothing is in use, want <= %d", st.MemoryBytes, bound)
	}
}

func TestAbortedFill(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			opts := Options{ChunkBytes: testChunk}
			if disk {
				opts.DiskPath = t.TempDir()
			}
			s := openStore(t, opts)
			defer s.Close()
			f, _ := s.StartFill("obj", -1, 0, nil)
			info := f.Info()
			r, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			body := content("obj", 3*testChunk)
			if _, err := f.Write(body); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(body))
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("reading written part: %v", err)
			}
			cause := errors.New("origin reset the connection")
			done := make(chan error)
			go func() {
				_, err := r.Read(make([]byte, 10))
				done <- err
			}()
			time.Sleep(10 * time.Millisecond) // let the reader block (the test passes either way)
			f.Abort(cause)
			err = <-done
			if !errors.Is(err, ErrFillFailed) || !errors.Is(err, cause) {
				t.Errorf("reader after Abort: err = %v, want ErrFillFailed wrapping the cause", err)
			}
			if _, err := f.Write([]byte("x")); !errors.Is(err, ErrFillFailed) {
				t.Errorf("Write after Abort: err = %v, want ErrFillFailed", err)
			}
			if err := f.Commit(); !errors.Is(err, ErrFillFailed) {
				t.Errorf("Commit after Abort: err = %v, want ErrFillFailed", err)
			}
			if _, err := s.Lookup("obj"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup after Abort: err = %v, want ErrNotFound", err)
			}
			if _, ok := s.InFlight("obj"); ok {
				t.Error("InFlight after Abort = true")
			}
			if _, leader := s.StartFill("obj", -1, 0, nil); !leader {
				t.Error("StartFill after Abort: leader = false, want a new fill")
			}
			r.Close()
			if disk {
				if files := versionFiles(t, opts.DiskPath); len(files) != 0 {
					t.Errorf("files after abort = %v, want none", files)
				}
			}
		})
	}
}

func TestReaderContext(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: testChunk})
	defer s.Close()
	f, _ := s.StartFill("slow", 100, 0, nil)
	defer f.Abort(nil)
	info := f.Info()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := s.NewReader(ctx, info.ID, info.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error)
	go func() {
		_, err := r.NextChunk()
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("NextChunk after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NextChunk did not return after its context was canceled")
	}
}

func TestPurge(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{ChunkBytes: testChunk, DiskPath: dir})
	defer s.Close()
	for _, k := range []string{"a/1", "a/2", "a/3/x", "b/1", "ab"} {
		fillObject(t, s, k, content(k, 2*testChunk+1), true, 5000)
	}
	// An open reader of a purged object finishes reading it.
	info := mustLookup(t, s, "a/1")
	r, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Purge("a/1") {
		t.Error("Purge(a/1) = false, want true")
	}
	if s.Purge("a/1") {
		t.Error("second Purge(a/1) = true, want false")
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content("a/1", 2*testChunk+1)) {
		t.Errorf("open reader after Purge read %d bytes, err %v", len(got), err)
	}
	r.Close()
	if n := s.PurgePrefix("a/"); n != 2 {
		t.Errorf("PurgePrefix(a/) = %d, want 2", n)
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{{"a/1", false}, {"a/2", false}, {"a/3/x", false}, {"b/1", true}, {"ab", true}} {
		if _, err := s.Lookup(tc.key); (err == nil) != tc.want {
			t.Errorf("Lookup(%q) found = %v, want %v", tc.key, err == nil, tc.want)
		}
	}
	if got := len(versionFiles(t, dir)); got != 4 {
		t.Errorf("%d files after purges, want 4 (b/1 and ab)", got)
	}
	// Purged objects stay purged after a restart.
	s.Close()
	s2 := openStore(t, Options{ChunkBytes: testChunk, DiskPath: dir})
	defer s2.Close()
	if got := s2.Stats().Objects; got != 2 {
		t.Errorf("objects after restart = %d, want 2", got)
	}
}

func TestPurgeDuringFill(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{ChunkBytes: testChunk, DiskPath: dir})
	defer s.Close()
	fillObject(t, s, "obj", content("old", 100), true, 100)
	body := content("obj", 5*testChunk)
	f, _ := s.StartFill("obj", int64(len(body)), 0, nil)
	info := f.Info()
	r, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := f.Write(body[:2*testChunk]); err != nil {
		t.Fatal(err)
	}
	if !s.Purge("obj") {
		t.Error("Purge during fill = false")
	}
	if _, ok := s.InFlight("obj"); ok {
		t.Error("InFlight after Purge = true, want the fill detached")
	}
	if _, leader := s.StartFill("obj", 10, 0, nil); !leader {
		t.Error("StartFill after Purge: leader = false, want a fresh fill")
	}
	if _, err := f.Write(body[2*testChunk:]); err != nil {
		t.Errorf("Write after Purge: %v (the leader's client is still being served)", err)
	}
	if err := f.Commit(); !errors.Is(err, ErrPurged) {
		t.Errorf("Commit after Purge: err = %v, want ErrPurged", err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("follower of a purged fill read %d bytes, err %v; want all %d", len(got), err, len(body))
	}
	if _, err := s.Lookup("obj"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after purged fill committed: err = %v, want ErrNotFound", err)
	}
	r.Close()
	// The fresh fill of 10 bytes has not committed: only its data file may exist.
	for _, p := range versionFiles(t, dir) {
		if bytes.HasSuffix([]byte(p), []byte(".meta")) {
			t.Errorf("metadata file %s left after purge", p)
		}
	}
}

func TestReplaceKeepsOldReaders(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{ChunkBytes: testChunk, MemoryBytes: testChunk, DiskPath: dir})
	defer s.Close()
	v1 := content("v1", 4*testChunk)
	v2 := content("v2", 2*testChunk)
	old := fillObject(t, s, "obj", v1, true, 4096)
	r, err := s.NewReader(context.Background(), old.ID, old.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	fillObject(t, s, "obj", v2, false, 4096)
	cur := mustLookup(t, s, "obj")
	if cur.Version <= old.Version || cur.Size != int64(len(v2)) {
		t.Errorf("Lookup after refill = version %d size %d, want > %d and %d", cur.Version, cur.Size, old.Version, len(v2))
	}
	if _, err := s.NewReader(context.Background(), old.ID, old.Version, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("NewReader of replaced version: err = %v, want ErrNotFound", err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, v1) {
		t.Errorf("reader of the old version read %d bytes, err %v; want all %d of it", len(got), err, len(v1))
	}
	if n := len(versionFiles(t, dir)); n != 3 {
		t.Errorf("%d files while the old version is read, want 3 (its data, new data and metadata)", n)
	}
	r.Close()
	if n := len(versionFiles(t, dir)); n != 2 {
		t.Errorf("%d files after the old reader closed, want 2", n)
	}
}

func TestUpdateHTTP(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			opts := Options{ChunkBytes: testChunk}
			if disk {
				opts.DiskPath = t.TempDir()
			}
			s := openStore(t, opts)
			defer func() { s.Close() }()
			info := fillObject(t, s, "obj", content("obj", 10), true, 10)
			if err := s.UpdateHTTP(info.ID, info.Version, []byte("revalidated")); err != nil {
				t.Fatalf("UpdateHTTP: %v", err)
			}
			if got := string(mustLookup(t, s, "obj").HTTP); got != "revalidated" {
				t.Errorf("HTTP after UpdateHTTP = %q, want %q", got, "revalidated")
			}
			if err := s.UpdateHTTP(info.ID, info.Version+1, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateHTTP of unknown version: err = %v, want ErrNotFound", err)
			}
			if disk {
				s.Close()
				s = openStore(t, opts)
				if got := string(mustLookup(t, s, "obj").HTTP); got != "revalidated" {
					t.Errorf("HTTP after restart = %q, want %q", got, "revalidated")
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: testChunk, MaxObjectBytes: 10 * testChunk})
	defer s.Close()
	info := fillObject(t, s, "obj", content("obj", 1000), true, 1000)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		id, ver uint64
		off, n  int64
		want    error
	}{
		{"negative offset", info.ID, info.Version, -1, 10, ErrRange},
		{"offset past end", info.ID, info.Version, 1001, -1, ErrRange},
		{"length past end", info.ID, info.Version, 10, 991, ErrRange},
		{"overflowing length", info.ID, info.Version, 10, 1<<63 - 5, ErrRange},
		{"unknown version", info.ID, info.Version + 1, 0, -1, ErrNotFound},
		{"unknown id", info.ID + 1, info.Version, 0, -1, ErrNotFound},
	} {
		if r, err := s.NewReader(ctx, tc.id, tc.ver, tc.off, tc.n); !errors.Is(err, tc.want) {
			t.Errorf("%s: NewReader err = %v, want %v", tc.name, err, tc.want)
			if r != nil {
				r.Close()
			}
		}
	}
	if _, err := s.ReadChunk(ctx, info.ID, info.Version, 1); !errors.Is(err, ErrRange) {
		t.Errorf("ReadChunk past the last chunk: err = %v, want ErrRange", err)
	}

	fills := []struct {
		name       string
		size       int64
		chunkBytes int
		body       int
		want       error // from Write or Commit
	}{
		{"declared too large", 10*testChunk + 1, 0, 1, ErrTooLarge},
		{"grows too large", -1, 0, 10*testChunk + 1, ErrTooLarge},
		{"longer than declared", 100, 0, 101, ErrFillFailed},
		{"shorter than declared", 100, 0, 99, ErrFillFailed},
		{"negative size", -2, 0, 1, ErrRange},
		{"huge chunk", 10, 1 << 30, 1, ErrRange},
		{"negative chunk", 10, -5, 1, ErrRange},
	}
	for _, tc := range fills {
		f, leader := s.StartFill("bad/"+tc.name, tc.size, tc.chunkBytes, nil)
		if !leader {
			t.Errorf("%s: leader = false", tc.name)
			continue
		}
		_, err := f.Write(content(tc.name, int64(tc.body)))
		if err == nil {
			err = f.Commit()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if _, err := s.Lookup("bad/" + tc.name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: Lookup err = %v, want ErrNotFound", tc.name, err)
		}
	}
	if st := s.Stats(); st.Objects != 1 || st.MemoryBytes != 1000 {
		t.Errorf("after failed fills Stats() = %+v, want 1 object of 1000 bytes", st)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{DiskPath: dir})
	defer s.Close()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"directory in use", Options{DiskPath: dir}},
		{"negative memory", Options{MemoryBytes: -1}},
		{"negative disk", Options{DiskBytes: -1}},
		{"negative max object", Options{MaxObjectBytes: -1}},
		{"chunk too large", Options{ChunkBytes: 1 << 30}},
		{"disk path is a file", Options{DiskPath: "/dev/null/x"}},
	} {
		tc.opts.Logger = quietLogger()
		if s, err := Open(tc.opts); err == nil {
			t.Errorf("%s: Open succeeded, want an error", tc.name)
			s.Close()
		}
	}
}

func TestClosedStore(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: testChunk})
	f, _ := s.StartFill("inflight", -1, 0, nil)
	info := fillObject(t, s, "obj", content("obj", 10), true, 10)
	s.Close()
	if err := f.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit of a fill the store's Close aborted: err = %v, want ErrClosed", err)
	}
	if _, err := s.Lookup("obj"); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookup after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1); !errors.Is(err, ErrClosed) {
		t.Errorf("NewReader after Close: err = %v, want ErrClosed", err)
	}
	if f, _ := s.StartFill("new", 1, 0, nil); !errors.Is(f.Err(), ErrClosed) {
		t.Errorf("StartFill after Close: Err() = %v, want ErrClosed", f.Err())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentFills(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{ChunkBytes: testChunk, MemoryBytes: 40 * testChunk, DiskPath: dir, DiskBytes: 400 * testChunk})
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				key := fmt.Sprintf("g%d/k%d", g, i%7) // refills replace versions
				body := content(key, int64(g*5000+i*333))
				f, leader := s.StartFill(key, -1, 0, nil)
				if !leader {
					errs <- fmt.Errorf("%s: not leader", key)
					continue
				}
				if err := writePieces(f, body, 1500); err != nil {
					errs <- err
					continue
				}
				if err := f.Commit(); err != nil {
					errs <- err
					continue
				}
				info, err := s.Lookup(key)
				if err != nil {
					continue // evicted by the other writers: allowed
				}
				got, err := readRange(s, info, 0, -1)
				if err != nil && !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("%s: %w", key, err)
				} else if err == nil && !bytes.Equal(got, content(key, info.Size)) {
					errs <- fmt.Errorf("%s: read wrong bytes", key)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.MemoryBytes > 40*testChunk || st.DiskBytes > 400*testChunk {
		t.Errorf("Stats() = %+v, over the bounds", st)
	}
}

// A failing disk (full, read-only, broken) must not break the responses
// that follow a fill: the fill goes on in memory only, unless a chunk it
// needs was only on disk.
func TestDiskFailureDuringFill(t *testing.T) {
	const size = 6 * testChunk
	for _, tc := range []struct {
		name      string
		memBytes  int64
		breakDisk func(t *testing.T, dir string, f *Fill)
		wantErr   error // from Write or Commit; nil: stored in memory
	}{
		{"data file cannot be created", 64 << 20, func(t *testing.T, dir string, f *Fill) {
			fan := filepath.Join(dir, "objects", fmt.Sprintf("%02x", f.Info().ID>>56))
			if err := os.RemoveAll(fan); err != nil {
				t.Fatal(err)
			}
			writeFile(t, fan, []byte("not a directory"))
		}, nil},
		{"write fails mid-fill", 64 << 20, func(t *testing.T, dir string, f *Fill) {
			f.file.Close() // the next write fails, as on EIO
		}, nil},
		{"write fails after chunks left memory", 2 * testChunk, func(t *testing.T, dir string, f *Fill) {
			f.file.Close()
		}, ErrFillFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{ChunkBytes: testChunk, MemoryBytes: tc.memBytes, DiskPath: dir}
			s := openStore(t, opts)
			defer s.Close()
			body := content("obj", size)
			f, _ := s.StartFill("obj", size, 0, nil)
			info := f.Info()
			r, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if tc.name != "data file cannot be created" {
				if _, err := f.Write(body[:4*testChunk]); err != nil {
					t.Fatal(err)
				}
			}
			tc.breakDisk(t, dir, f)
			_, err = f.Write(body[f.written:])
			if err == nil {
				err = f.Commit()
			}
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("fill with a broken disk: err = %v, want %v", err, tc.wantErr)
			}
			got, rerr := io.ReadAll(r)
			if tc.wantErr != nil {
				if !errors.Is(rerr, ErrFillFailed) {
					t.Errorf("follower: err = %v, want ErrFillFailed", rerr)
				}
				return
			}
			if rerr != nil || !bytes.Equal(got, body) {
				t.Errorf("follower read %d bytes, err %v; want all %d", len(got), rerr, size)
			}
			info = mustLookup(t, s, "obj")
			if got, err := readRange(s, info, 0, -1); err != nil || !bytes.Equal(got, body) {
				t.Errorf("read after fill: %d bytes, err %v", len(got), err)
			}
			if st := s.Stats(); st.DiskBytes != 0 || st.Objects != 1 {
				t.Errorf("Stats() = %+v, want 1 object, 0 disk bytes", st)
			}
			for _, p := range versionFiles(t, dir) {
				if filepath.Base(p) != fmt.Sprintf("%02x", info.ID>>56) { // the test's blocking file
					t.Errorf("file %s left by a fill that left the disk", p)
				}
			}
		})
	}
}

// A crash between committing a new version and deleting the one it
// replaced leaves both on disk: the next Open keeps the newest.
func TestRestartKeepsNewestVersion(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ChunkBytes: testChunk, DiskPath: dir}
	s := openStore(t, opts)
	old := fillObject(t, s, "k", content("old", 3*testChunk), true, 5000)
	saved := t.TempDir()
	copyDir(t, dir+"/objects", saved)
	cur := fillObject(t, s, "k", content("k", 2*testChunk), true, 5000)
	s.Close()
	copyDir(t, saved, dir+"/objects") // the old version's files are back

	if n := len(versionFiles(t, dir)); n != 4 {
		t.Fatalf("%d files before reopening, want both versions (4)", n)
	}
	s = openStore(t, opts)
	defer s.Close()
	got := mustLookup(t, s, "k")
	if got.Version != cur.Version || got.Version <= old.Version {
		t.Errorf("Lookup after restart = version %d, want the newest %d (not %d)", got.Version, cur.Version, old.Version)
	}
	if b, err := readRange(s, got, 0, -1); err != nil || !bytes.Equal(b, content("k", 2*testChunk)) {
		t.Errorf("read after restart: %d bytes, err %v", len(b), err)
	}
	if n := len(versionFiles(t, dir)); n != 2 {
		t.Errorf("%d files after reopening, want only the newest version's 2", n)
	}
	// New versions keep growing past what was found on disk.
	if next := fillObject(t, s, "k", content("k", 10), true, 10); next.Version <= cur.Version {
		t.Errorf("version after restart = %d, want > %d", next.Version, cur.Version)
	}
}
