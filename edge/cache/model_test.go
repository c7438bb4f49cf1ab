package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestRandomOperations drives the store with a random mix of fills
// (committed, aborted, refilled), reads, purges, HTTP updates and restarts,
// and checks after every step that everything served is right and that the
// byte accounting matches what memory and disk really hold.
func TestRandomOperations(t *testing.T) {
	for _, disk := range []bool{false, true} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("disk=%v/seed=%d", disk, seed), func(t *testing.T) {
				randomOperations(t, disk, seed)
			})
		}
	}
}

func randomOperations(t *testing.T, disk bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	opts := Options{ChunkBytes: testChunk, MemoryBytes: 24 * testChunk, MaxObjectBytes: 12 * testChunk}
	if disk {
		opts.DiskPath = t.TempDir()
		opts.DiskBytes = 60 * testChunk
		opts.NoFsync = true
		opts.OpenFiles = 3 // evict open data files often
	}
	s := openStore(t, opts)
	defer func() { s.Close() }()
	gen := 0
	// Bodies depend on a generation number kept in the HTTP blob, so every
	// version of a key has its own content.
	body := func(key string, g int) []byte {
		return content(key+"#"+strconv.Itoa(g), int64(rng.IntN(10*testChunk)))
	}
	for step := range 400 {
		key := fmt.Sprintf("k%d", rng.IntN(12))
		switch op := rng.IntN(100); {
		case op < 45: // fill, maybe followed, maybe aborted
			gen++
			b := body(key, gen)
			size := int64(len(b))
			if rng.IntN(2) == 0 {
				size = -1
			}
			f, leader := s.StartFill(key, size, 0, []byte(strconv.Itoa(gen)))
			if !leader {
				t.Fatalf("step %d: StartFill(%q) joined a fill, but none should be in flight", step, key)
			}
			var r Reader
			if rng.IntN(3) == 0 {
				info := f.Info()
				var err error
				if r, err = s.NewReader(context.Background(), info.ID, info.Version, 0, -1); err != nil {
					t.Fatalf("step %d: NewReader on a fill: %v", step, err)
				}
			}
			abort := rng.IntN(5) == 0
			cut := len(b)
			if abort {
				cut = rng.IntN(len(b) + 1)
			}
			err := writePieces(f, b[:cut], 1+rng.IntN(3*testChunk))
			switch {
			case err != nil:
				t.Fatalf("step %d: Write: %v", step, err)
			case abort:
				f.Abort(errors.New("test abort"))
			default:
				if err := f.Commit(); err != nil {
					t.Fatalf("step %d: Commit: %v", step, err)
				}
			}
			if r != nil {
				got, err := io.ReadAll(r)
				r.Close()
				switch {
				case abort && !errors.Is(err, ErrFillFailed):
					t.Errorf("step %d: follower of an aborted fill: err = %v, want ErrFillFailed", step, err)
				case abort && !bytes.Equal(got, b[:len(got)]):
					t.Errorf("step %d: follower of an aborted fill read wrong bytes", step)
				case !abort && (err != nil || !bytes.Equal(got, b)):
					t.Errorf("step %d: follower read %d bytes, err %v; want %d", step, len(got), err, len(b))
				}
			}
		case op < 75: // read a range
			info, err := s.Lookup(key)
			if err != nil {
				continue
			}
			g, _ := strconv.Atoi(string(info.HTTP))
			off := rng.Int64N(info.Size + 1)
			n := rng.Int64N(info.Size-off+1) - 1 // -1: to the end
			var got []byte
			if disk && rng.IntN(2) == 0 { // from the data file, as sendfile does
				got, err = readFileRange(s, info, off, n)
			} else {
				got, err = readRange(s, info, off, n)
			}
			if err != nil {
				t.Fatalf("step %d: read %q [%d,+%d): %v", step, key, off, n, err)
			}
			want := content(key+"#"+strconv.Itoa(g), info.Size)
			end := info.Size
			if n >= 0 {
				end = off + n
			}
			if !bytes.Equal(got, want[off:end]) {
				t.Fatalf("step %d: read %q [%d,+%d) returned wrong bytes", step, key, off, n)
			}
		case op < 82:
			s.Purge(key)
		case op < 85:
			s.PurgePrefix(key[:2])
		case op < 92: // revalidation keeps the body: same generation
			if info, err := s.Lookup(key); err == nil {
				if err := s.UpdateHTTP(info.ID, info.Version, info.HTTP); err != nil {
					t.Fatalf("step %d: UpdateHTTP: %v", step, err)
				}
			}
		default:
			if disk {
				s.Close()
				s = openStore(t, opts)
			}
		}
		// Walking the disk tier is slow: check it every few steps.
		checkInvariants(t, s, step, step%8 == 0 || step == 399)
		if t.Failed() {
			return
		}
	}
}

// checkInvariants compares the store's accounting with what it holds when
// nothing is in flight or being read.
func checkInvariants(t *testing.T, s *Store, step int, withDisk bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var memBytes int64
	for _, k := range s.mem.Keys() {
		buf, _ := s.mem.Peek(k)
		memBytes += int64(len(buf))
		v := s.versions[verKey{k.id, k.version}]
		if v == nil || v.dead.Load() {
			t.Errorf("step %d: memory holds chunk %v of a version that is gone", step, k)
		}
	}
	if memBytes != s.memBytes || memBytes > s.opts.MemoryBytes {
		t.Errorf("step %d: memory holds %d bytes, accounted %d, bound %d", step, memBytes, s.memBytes, s.opts.MemoryBytes)
	}
	objects, chunks := 0, 0
	for key, o := range s.objects {
		if o.fill != nil {
			t.Errorf("step %d: %q has a fill in flight", step, key)
		}
		if o.current == nil {
			t.Errorf("step %d: %q has an empty index entry", step, key)
			continue
		}
		objects++
		chunks += len(o.current.sums)
	}
	for _, k := range s.openFiles.Keys() {
		if v := s.versions[k]; v == nil || v.dead.Load() || v.file == nil {
			t.Errorf("step %d: the open file cache holds version %v, which is gone or has no open file", step, k)
		}
	}
	if s.openFiles.Len() > s.opts.OpenFiles {
		t.Errorf("step %d: %d data files open, bound %d", step, s.openFiles.Len(), s.opts.OpenFiles)
	}
	if len(s.versions) != objects {
		t.Errorf("step %d: %d versions indexed for %d objects", step, len(s.versions), objects)
	}
	if int64(objects) != s.stats.Objects || int64(chunks) != s.stats.Chunks {
		t.Errorf("step %d: Stats objects %d chunks %d, want %d %d", step, s.stats.Objects, s.stats.Chunks, objects, chunks)
	}
	if s.disk == nil || !withDisk {
		return
	}
	var diskBytes int64
	files := 0
	filepath.WalkDir(s.disk.objects, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			st, _ := d.Info()
			diskBytes += st.Size()
			files++
		}
		return nil
	})
	if diskBytes != s.diskBytes || diskBytes > s.opts.DiskBytes || files != 2*objects || s.diskLRU.Len() != objects {
		t.Errorf("step %d: disk holds %d bytes in %d files, accounted %d bytes (bound %d) for %d objects (%d in the LRU)",
			step, diskBytes, files, s.diskBytes, s.opts.DiskBytes, objects, s.diskLRU.Len())
	}
}
