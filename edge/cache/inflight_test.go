package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLookupOrInFlight: the stored version, else the fill in flight, read
// at one moment: a fill that commits meanwhile is never missed by both.
func TestLookupOrInFlight(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: 1024})
	defer s.Close()

	if info, f, err := s.LookupOrInFlight("k"); !errors.Is(err, ErrNotFound) || f != nil || info.Key != "" {
		t.Errorf("empty store: %+v, %v, %v; want ErrNotFound and no fill", info, f, err)
	}
	body := content("k", 3000)
	f, _ := s.StartFill("k", int64(len(body)), 0, []byte("m"))
	if _, got, err := s.LookupOrInFlight("k"); !errors.Is(err, ErrNotFound) || got != f {
		t.Errorf("while filling: fill %p, %v; want the fill %p and ErrNotFound", got, err, f)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if info, got, err := s.LookupOrInFlight("k"); err != nil || got != nil || !info.Complete || info.Size != 3000 {
		t.Errorf("committed: %+v, fill %p, %v; want the complete version", info, got, err)
	}
	// A refill while a version is stored: the stored version is returned.
	f2, _ := s.StartFill("k", 10, 0, []byte("m2"))
	if info, got, err := s.LookupOrInFlight("k"); err != nil || got != nil || info.Size != 3000 {
		t.Errorf("refilling: %+v, fill %p, %v; want the stored version", info, got, err)
	}
	f2.Abort(nil)

	// Commits racing with lookups: each lookup sees the version or its fill.
	var wg sync.WaitGroup
	for i := range 200 {
		key := fmt.Sprintf("race-%d", i)
		f, _ := s.StartFill(key, 5, 0, nil)
		if _, err := f.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Commit(); err != nil {
				t.Errorf("Commit %s: %v", key, err)
			}
		}()
		for range 3 {
			info, got, err := s.LookupOrInFlight(key)
			if err == nil && info.Complete {
				break
			}
			if got == nil {
				t.Errorf("%s: neither stored (%v) nor in flight while its fill commits", key, err)
				break
			}
		}
	}
	wg.Wait()
}

// TestFillWait: Wait returns when the fill ends, with the committed
// version and every digest, or why it did not commit.
func TestFillWait(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: 1024, MaxObjectBytes: 1 << 20})
	defer s.Close()
	ctx := context.Background()

	// Committed: waiters started before the end all get the version.
	body := content("w", 2500)
	f, _ := s.StartFill("w", int64(len(body)), 0, []byte("m"))
	got := make(chan ObjectInfo, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := f.Wait(ctx)
			if err != nil {
				t.Errorf("Wait on a committed fill: %v", err)
			}
			got <- info
		}()
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	// Every byte is readable now, but the version is not published:
	// Wait must not return yet.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := f.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait before Commit = %v, want the context's deadline", err)
	}
	cancel()
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(got)
	stored, err := s.Lookup("w")
	if err != nil {
		t.Fatal(err)
	}
	for info := range got {
		if !info.Complete || info.Version != stored.Version || info.Size != 2500 || len(info.ChunkSHA256) != 3 ||
			info.ChunkSHA256[2] != sha256.Sum256(body[2048:]) {
			t.Errorf("Wait = %+v, want the committed version %d with 3 digests", info, stored.Version)
		}
	}
	// After the end, Wait returns at once, replaced or not.
	fillObject(t, s, "w", content("w2", 10), true, 10)
	if info, err := f.Wait(ctx); err != nil || info.Version != stored.Version {
		t.Errorf("Wait after a replacement = %d, %v; want version %d", info.Version, err, stored.Version)
	}

	cause := errors.New("origin reset")
	tests := []struct {
		name string
		run  func() *Fill
		want []error
	}{
		{"aborted", func() *Fill {
			f, _ := s.StartFill("a", 10, 0, nil)
			f.Write([]byte("12345"))
			f.Abort(cause)
			return f
		}, []error{ErrFillFailed, cause}},
		{"too large up front", func() *Fill {
			f, _ := s.StartFill("big", 2<<20, 0, nil)
			return f
		}, []error{ErrFillFailed, ErrTooLarge}},
		{"grew too large", func() *Fill {
			f, _ := s.StartFill("grew", -1, 0, nil)
			f.Write(make([]byte, 1<<20))
			f.Write(make([]byte, 1))
			return f
		}, []error{ErrFillFailed, ErrTooLarge}},
		{"purged", func() *Fill {
			f, _ := s.StartFill("p", 5, 0, nil)
			f.Write([]byte("12345"))
			s.Purge("p")
			f.Commit()
			return f
		}, []error{ErrPurged}},
	}
	for _, tt := range tests {
		f := tt.run()
		_, err := f.Wait(ctx)
		for _, want := range tt.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: Wait = %v, want errors.Is %v", tt.name, err, want)
			}
		}
	}

	// A closed store fails the fills in flight.
	f, _ = s.StartFill("c", 5, 0, nil)
	done := make(chan error, 1)
	go func() {
		_, err := f.Wait(ctx)
		done <- err
	}()
	s.Close()
	if err := <-done; !errors.Is(err, ErrFillFailed) || !errors.Is(err, ErrClosed) {
		t.Errorf("Wait across Close = %v, want ErrFillFailed and ErrClosed", err)
	}
}

// TestFillWritten: Written counts the body bytes written, across chunk
// boundaries, for bodies of known and unknown size; a refused write does
// not count; it may be read while the writer writes.
func TestFillWritten(t *testing.T) {
	s := openStore(t, Options{ChunkBytes: 1024, MaxObjectBytes: 1 << 20})
	defer s.Close()
	tests := []struct {
		name   string
		size   int64 // declared; -1 unknown
		writes []int // bytes per Write
		want   []int64
	}{
		{"known size, within a chunk", 1000, []int{10, 990}, []int64{10, 1000}},
		{"known size, across chunks", 3000, []int{1500, 1, 1499}, []int64{1500, 1501, 3000}},
		{"unknown size", -1, []int{2048, 100, 0}, []int64{2048, 2148, 2148}},
		{"write past the declared size is refused", 100, []int{60, 60}, []int64{60, 60}},
	}
	for i, tt := range tests {
		f, leader := s.StartFill(fmt.Sprintf("written-%d", i), tt.size, 0, nil)
		if !leader {
			t.Fatalf("%s: not the leader of a new key", tt.name)
		}
		if got := f.Written(); got != 0 {
			t.Errorf("%s: Written() before any write = %d, want 0", tt.name, got)
		}
		for j, n := range tt.writes {
			f.Write(content(tt.name, int64(n)))
			if got := f.Written(); got != tt.want[j] {
				t.Errorf("%s: Written() after write %d = %d, want %d", tt.name, j, got, tt.want[j])
			}
		}
		want := f.Written()
		f.Commit()
		if got := f.Written(); got != want {
			t.Errorf("%s: Written() after Commit = %d, want %d", tt.name, got, want)
		}
	}

	// Read concurrently with the writer (go test -race): never backwards,
	// never past what was handed to Write.
	const pieces, pieceBytes = 200, 100
	f, _ := s.StartFill("written-concurrent", pieces*pieceBytes, 0, nil)
	var handed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range pieces {
			handed.Add(pieceBytes)
			f.Write(make([]byte, pieceBytes))
		}
		f.Commit()
	}()
	var last int64
	for last < pieces*pieceBytes {
		got := f.Written()
		if got < last || got > handed.Load() {
			t.Fatalf("Written() = %d after %d, with %d bytes handed to Write", got, last, handed.Load())
		}
		last = got
		runtime.Gosched()
	}
	<-done
}
