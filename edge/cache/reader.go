package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
)

// reader reads a byte range of one version, complete or being filled. It
// is pooled: a hit allocates nothing. It is not safe for concurrent use,
// and must not be used after Close.
type reader struct {
	s     *Store
	v     *version
	f     *Fill // the fill followed, nil for a complete version
	ctx   context.Context
	pos   int64
	end   int64 // -1: to the end of a body of yet unknown size
	toEnd bool  // n < 0 was asked: end is the body's end
	rest  []byte
	file  *os.File // data file, opened at the first disk read
	err   error    // sticky error after a failure
}

// NewReader opens a reader of bytes [off, off+n) of a version (complete or
// being filled); n < 0 reads to the end. Reads block until the bytes are
// written, the fill fails (ErrFillFailed) or ctx ends. ErrNotFound if the
// version is not stored, ErrRange if the range is outside a body of known
// size. The reader must be closed.
func (s *Store) NewReader(ctx context.Context, id, version uint64, off, n int64) (Reader, error) {
	if off < 0 || (n >= 0 && off > maxEnd-n) {
		return nil, fmt.Errorf("%w: offset %d, length %d", ErrRange, off, n)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	v := s.versions[verKey{id, version}]
	if v == nil || v.dead.Load() {
		s.mu.Unlock()
		return nil, ErrNotFound
	}
	end := off + n
	if n < 0 {
		end = v.size // -1 while unknown
	}
	if v.size >= 0 && (off > v.size || end > v.size) {
		size := v.size
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: bytes %d+%d of a %d-byte object", ErrRange, off, n, size)
	}
	v.refs.Add(1)
	s.touchLocked(v)
	f := v.fill
	s.mu.Unlock()

	r := s.readers.Get().(*reader)
	*r = reader{s: s, v: v, f: f, ctx: ctx, pos: off, end: end, toEnd: n < 0}
	return r, nil
}

const maxEnd = 1<<63 - 1

// NextChunk returns the next slice of the range, the store's own buffer.
func (r *reader) NextChunk() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.rest) > 0 { // left over by Read
		b := r.rest
		r.rest = nil
		return b, nil
	}
	if r.end >= 0 && r.pos >= r.end {
		return nil, io.EOF
	}
	cb := int64(r.v.chunkBytes)
	index, within := int(r.pos/cb), int(r.pos%cb)
	buf, err := r.chunk(index, within)
	if err != nil {
		if err != io.EOF {
			r.err = err
		}
		return nil, err
	}
	b := buf[within:]
	if r.end >= 0 && int64(len(b)) > r.end-r.pos {
		b = b[:r.end-r.pos]
	}
	r.pos += int64(len(b))
	return b[:len(b):len(b)], nil
}

// chunk returns the buffer of chunk index holding at least the byte at
// offset within (the whole chunk, or the written part of the chunk being
// filled), waiting for a fill in flight if needed.
func (r *reader) chunk(index, within int) ([]byte, error) {
	s, v := r.s, r.v
	k := chunkKey{v.id, v.version, index}
	retried := false
	for {
		s.mu.Lock()
		if buf, ok := s.mem.Get(k); ok && len(buf) > within {
			s.stats.MemoryHits++
			s.mu.Unlock()
			return buf, nil
		}
		f := r.f
		if f == nil {
			sum := v.sums[index]
			s.mu.Unlock()
			return r.readDisk(index, chunkLen(v.size, v.chunkBytes, index), sum)
		}
		s.mu.Unlock()

		f.mu.Lock()
		switch {
		case f.err != nil:
			err := f.err
			f.mu.Unlock()
			return nil, err
		case r.pos >= f.written && (f.done || f.ended): // pos is at the end
			size := f.written
			f.mu.Unlock()
			if r.toEnd {
				r.end = size
			}
			if r.end > size {
				return nil, fmt.Errorf("%w: object ended at %d bytes, before the requested end %d", ErrRange, size, r.end)
			}
			return nil, io.EOF
		case r.pos >= f.written: // not written yet: wait below
		case index < f.nfull:
			// Finished but not in memory: just finished (look again) or
			// evicted (read it from disk).
			sum := f.sums[index]
			n := chunkLen(f.written, v.chunkBytes, index)
			f.mu.Unlock()
			if !retried {
				retried = true
				continue
			}
			return r.readDisk(index, n, sum)
		default: // the chunk being written holds pos
			buf := f.cur
			f.mu.Unlock()
			return buf, nil
		}
		wait := f.waitLocked()
		f.mu.Unlock()
		select {
		case <-wait:
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
}

// chunkLen is the length of chunk index of a body of size bytes.
func chunkLen(size int64, chunkBytes, index int) int {
	return int(min(int64(chunkBytes), size-int64(index)*int64(chunkBytes)))
}

func (r *reader) readDisk(index, n int, sum [32]byte) ([]byte, error) {
	buf, err := r.s.readDisk(r.v, &r.file, index, n, sum)
	if err == nil {
		r.s.mu.Lock()
		r.s.stats.DiskHits++
		r.s.mu.Unlock()
	}
	return buf, err
}

// readDisk reads chunk index of v from its data file (opening *file if
// needed), verifies it against its SHA-256 and promotes it to memory. A
// failure drops the version and returns ErrCorrupt: the caller refetches.
func (s *Store) readDisk(v *version, file **os.File, index, n int, sum [32]byte) ([]byte, error) {
	s.mu.Lock()
	memOnly := v.memOnly
	s.mu.Unlock()
	if memOnly {
		return nil, fmt.Errorf("cache: chunk %d of %q: %w", index, v.key, errNoDisk)
	}
	if *file == nil {
		f, err := os.Open(s.disk.dataPath(v.id, v.version))
		if err != nil {
			return nil, s.corrupt(v, index, err)
		}
		*file = f
	}
	buf := make([]byte, n)
	if _, err := (*file).ReadAt(buf, int64(index)*int64(v.chunkBytes)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, s.corrupt(v, index, err)
	}
	if sha256.Sum256(buf) != sum {
		return nil, s.corrupt(v, index, errors.New("SHA-256 mismatch"))
	}
	var c cleanup
	s.mu.Lock()
	if !v.released && !v.dead.Load() {
		s.addChunkLocked(v, index, buf, &c)
	}
	s.mu.Unlock()
	s.runCleanup(&c)
	return buf, nil
}

// Read copies the range into p.
func (r *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.rest) == 0 {
		b, err := r.NextChunk()
		if err != nil {
			return 0, err
		}
		r.rest = b
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// Close releases the reader; the version's files may then be deleted if it
// was replaced or purged meanwhile.
func (r *reader) Close() error {
	if r.s == nil {
		return nil
	}
	s, v := r.s, r.v
	if r.file != nil {
		r.file.Close()
	}
	*r = reader{}
	s.releaseRef(v)
	s.readers.Put(r)
	return nil
}

// ResidentChunk returns chunk index of a complete version if it is in the
// memory tier (counted as a memory hit), without reading the disk: the
// event loops' read of a hit (one lock where Resident and ReadChunk take
// two). The store's own buffer, not to be modified.
func (s *Store) ResidentChunk(id, version uint64, index int) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.versions[verKey{id, version}]
	if s.closed || v == nil || v.dead.Load() || !v.complete || index < 0 || index >= len(v.sums) {
		return nil, false
	}
	buf, ok := s.mem.Get(chunkKey{id, version, index})
	if !ok {
		return nil, false
	}
	s.touchLocked(v)
	s.stats.MemoryHits++
	return buf[:len(buf):len(buf)], true
}

// ReadChunk returns chunk index of a complete version, verified: the
// store's own buffer, not to be modified.
func (s *Store) ReadChunk(ctx context.Context, id, version uint64, index int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	v := s.versions[verKey{id, version}]
	if v == nil || v.dead.Load() || !v.complete {
		s.mu.Unlock()
		return nil, ErrNotFound
	}
	if index < 0 || index >= len(v.sums) {
		n := len(v.sums)
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: chunk %d of %d", ErrRange, index, n)
	}
	s.touchLocked(v)
	if buf, ok := s.mem.Get(chunkKey{id, version, index}); ok {
		s.stats.MemoryHits++
		s.mu.Unlock()
		return buf[:len(buf):len(buf)], nil
	}
	v.refs.Add(1)
	sum := v.sums[index]
	s.mu.Unlock()
	var file *os.File
	buf, err := s.readDisk(v, &file, index, chunkLen(v.size, v.chunkBytes, index), sum)
	if file != nil {
		file.Close()
	}
	s.mu.Lock()
	if err == nil {
		s.stats.DiskHits++
	}
	s.mu.Unlock()
	s.releaseRef(v)
	return buf, err
}
