package cache

import (
	"errors"
	"fmt"
	"sync"
	"testing"
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
