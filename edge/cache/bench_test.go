package cache

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkLookupHit is the first step of every hit: the key's newest
// version, with its metadata blob and digests.
func BenchmarkLookupHit(b *testing.B) {
	s := openStore(b, Options{})
	defer s.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("example.com/static/file-%d.js?v=3", i)
		fillObject(b, s, keys[i], content(keys[i], 1024), true, 1024)
	}
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Lookup(keys[i&1023]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadChunkMemory serves an object from memory the two ways the
// HTTP layer does: Lookup then ReadChunk (a range within one chunk), and
// Lookup, NewReader, NextChunk to EOF, Close (any range).
func BenchmarkReadChunkMemory(b *testing.B) {
	ctx := context.Background()
	b.Run("ReadChunk/size=1024", func(b *testing.B) {
		s := openStore(b, Options{})
		defer s.Close()
		fillObject(b, s, "k", content("k", 1024), true, 1024)
		b.ReportAllocs()
		b.SetBytes(1024)
		for b.Loop() {
			info, err := s.Lookup("k")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.ReadChunk(ctx, info.ID, info.Version, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int64{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("Reader/size=%d", size), func(b *testing.B) {
			s := openStore(b, Options{})
			defer s.Close()
			fillObject(b, s, "k", content("k", size), true, 32<<10)
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				info, err := s.Lookup("k")
				if err != nil {
					b.Fatal(err)
				}
				r, err := s.NewReader(ctx, info.ID, info.Version, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := r.NextChunk()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
	}
}

// BenchmarkReadChunkMemoryParallel is the same 1 KiB hit from all cores:
// the cost of the store's lock under contention.
func BenchmarkReadChunkMemoryParallel(b *testing.B) {
	s := openStore(b, Options{})
	defer s.Close()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		fillObject(b, s, keys[i], content(keys[i], 1024), true, 1024)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			info, err := s.Lookup(keys[i&63])
			if err != nil {
				b.Fatal(err)
			}
			r, err := s.NewReader(ctx, info.ID, info.Version, 0, -1)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := r.NextChunk(); err != nil {
					break
				}
			}
			r.Close()
		}
	})
}

// BenchmarkReadChunkDisk reads a verified 256 KiB chunk from the disk tier
// (the memory tier holds one chunk, so every read misses it).
func BenchmarkReadChunkDisk(b *testing.B) {
	s := openStore(b, Options{MemoryBytes: 256 << 10, DiskPath: b.TempDir()})
	defer s.Close()
	info := fillObject(b, s, "k", content("k", 8<<20), true, 64<<10)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(256 << 10)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ReadChunk(ctx, info.ID, info.Version, i%32); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFill stores objects (hashing every chunk), in memory and on
// disk (without fsync: the figure is the store's cost, not the device's).
func BenchmarkFill(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int64
		disk bool
	}{
		{"memory/1KiB", 1 << 10, false},
		{"memory/1MiB", 1 << 20, false},
		{"disk/1KiB", 1 << 10, true},
		{"disk/1MiB", 1 << 20, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := Options{MemoryBytes: 64 << 20}
			if tc.disk {
				opts.DiskPath = b.TempDir()
				opts.DiskBytes = 256 << 20
				opts.NoFsync = true
			}
			s := openStore(b, opts)
			defer s.Close()
			body := content("body", tc.size)
			b.ReportAllocs()
			b.SetBytes(tc.size)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				f, _ := s.StartFill(fmt.Sprintf("k%d", i%512), tc.size, 0, nil)
				if err := writePieces(f, body, 32<<10); err != nil {
					b.Fatal(err)
				}
				if err := f.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
