package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
)

// Serving from the disk tier's data files without copying.
//
// A large hit is cheapest when the kernel sends the body from the page
// cache to the socket (sendfile(2)): no copy through user space. OpenFile
// hands out a byte range of a complete version's data file for that.
//
// Integrity: the read path verifies every chunk it reads from disk against
// its SHA-256; bytes sent by sendfile never pass through the process, so
// each chunk is instead verified once, by reading it back, before the first
// time it is sent, and marked verified in memory (version.verified) for the
// life of the process. A chunk that was only partly written (a crash, a
// torn write after a power loss) therefore fails that check and is never
// sent, as on the read path: the version is dropped and the caller
// refetches. Data files are written only by their fill, before commit, so a
// verified chunk does not change afterwards.
//
// Open data files are kept in a small cache (Options.OpenFiles, least
// recently used closed first), so that a hit costs no open(2). Each open
// file is reference counted: evicting it from that cache, purging or
// replacing its version, or closing the store never closes it under a
// send in progress.

// dataFile is one open data file, shared by the senders of its version.
// refs counts the fd cache's reference (while cached) and one per open
// File; the last release closes it. Safe for concurrent use.
type dataFile struct {
	f    *os.File
	fd   int // f's descriptor, for sendfile(2); valid until f is closed
	refs atomic.Int32
}

func newDataFile(f *os.File, refs int32) *dataFile {
	df := &dataFile{f: f, fd: int(f.Fd())}
	df.refs.Store(refs)
	return df
}

func (d *dataFile) release() {
	if d.refs.Add(-1) == 0 {
		d.f.Close()
	}
}

// File is a byte range of a complete version's data file, every chunk of
// which was verified: send it with SendTo (sendfile(2) on Linux) or read
// it. Get one from Store.OpenFile and Close it when done; the zero value is
// not usable. A File is used by one goroutine at a time (not safe for
// concurrent use); while it is open its version's file stays readable, even
// if the version is purged, replaced or evicted meanwhile.
type File struct {
	s        *Store
	v        *version
	df       *dataFile
	pos, end int64 // next byte to send or read, and the end of the range
}

// OpenFile returns bytes [off, off+n) of a complete version as a File of
// its data file, after verifying (once per chunk while the process runs)
// every chunk the range covers. Errors: ErrNotOnDisk when the version is in
// memory only (no disk tier, or its disk writes failed): read it with
// NewReader; ErrNotFound when it is no longer stored; ErrCorrupt when a
// chunk failed verification (the version is dropped); ErrRange for a range
// outside the object.
func (s *Store) OpenFile(ctx context.Context, id, version uint64, off, n int64) (*File, error) {
	if off < 0 || n < 0 || off > maxEnd-n {
		return nil, fmt.Errorf("%w: offset %d, length %d", ErrRange, off, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := verKey{id, version}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	v := s.versions[k]
	switch {
	case v == nil || v.dead.Load() || !v.complete:
		s.mu.Unlock()
		return nil, ErrNotFound
	case v.memOnly || s.disk == nil:
		s.mu.Unlock()
		return nil, ErrNotOnDisk
	case off+n > v.size:
		size := v.size
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: bytes %d+%d of a %d-byte object", ErrRange, off, n, size)
	}
	v.refs.Add(1)
	s.touchLocked(v)
	df := v.file
	if df != nil {
		df.refs.Add(1)
		s.openFiles.Get(k) // most recently used
	}
	if n > 0 {
		cb := int64(v.chunkBytes)
		s.stats.DiskHits += (off+n-1)/cb - off/cb + 1
	}
	s.mu.Unlock()

	var err error
	if df == nil {
		if df, err = s.openDataFile(v); err != nil {
			s.releaseRef(v)
			return nil, err
		}
	}
	if err = s.verifyRange(ctx, v, df, off, n); err != nil {
		df.release()
		s.releaseRef(v)
		return nil, err
	}
	f := s.filePool.Get().(*File)
	*f = File{s: s, v: v, df: df, pos: off, end: off + n}
	return f, nil
}

// Resident reports whether every chunk of bytes [off, off+n) of a complete
// version is in the memory tier, without counting a read or changing its
// recency: the HTTP layer writes such a range from memory and sends any
// other with OpenFile, so that disk hits skip the read, the SHA-256 and the
// promotion to memory of the chunk read path.
func (s *Store) Resident(id, version uint64, off, n int64) bool {
	if off < 0 || n <= 0 || off > maxEnd-n {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.versions[verKey{id, version}]
	if v == nil || v.dead.Load() || !v.complete || off+n > v.size {
		return false
	}
	cb := int64(v.chunkBytes)
	for i := off / cb; i <= (off+n-1)/cb; i++ {
		if !s.mem.Contains(chunkKey{id, version, int(i)}) {
			return false
		}
	}
	return true
}

// openDataFile opens v's data file and puts it in the fd cache, returning
// it with a reference for the caller, who holds a reference to v.
func (s *Store) openDataFile(v *version) (*dataFile, error) {
	osf, err := os.Open(s.disk.dataPath(v.id, v.version))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Committed versions keep their data file until released, and the
		// caller's reference prevents that: it was removed under us.
		return nil, s.corrupt(v, 0, err)
	case err != nil: // out of descriptors and the like: not the version's fault
		return nil, fmt.Errorf("cache: opening data file of %q: %w", v.key, err)
	}
	k := verKey{v.id, v.version}
	var c cleanup
	s.mu.Lock()
	switch {
	case v.file != nil: // another request opened it meanwhile
		df := v.file
		df.refs.Add(1)
		s.mu.Unlock()
		osf.Close()
		return df, nil
	case v.dead.Load() || s.closed:
		// Do not cache a file for a version on its way out: the caller's
		// send may go ahead (its reference keeps the file), then it closes.
		s.mu.Unlock()
		return newDataFile(osf, 1), nil
	}
	df := newDataFile(osf, 2) // the fd cache's reference and the caller's
	v.file = df
	s.openFiles.Add(k, v)
	for s.openFiles.Len() > s.opts.OpenFiles {
		_, old, _ := s.openFiles.RemoveOldest()
		c.closeFiles = append(c.closeFiles, old.file)
		old.file = nil
	}
	s.mu.Unlock()
	s.runCleanup(&c)
	return df, nil
}

// verifyChunkBytes is the read size when verifying a chunk: it bounds the
// memory a verification takes whatever the chunk size.
const verifyChunkBytes = 64 << 10

var verifyBufs = sync.Pool{New: func() any { return new([verifyChunkBytes]byte) }}

// verifyRange checks, once per chunk, the chunks of v that [off, off+n)
// covers against their SHA-256. A mismatch drops v and returns ErrCorrupt.
func (s *Store) verifyRange(ctx context.Context, v *version, df *dataFile, off, n int64) error {
	if n == 0 {
		return nil
	}
	cb := int64(v.chunkBytes)
	first, last := int(off/cb), int((off+n-1)/cb)
	for i := first; i <= last; i++ {
		if v.isVerified(i) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.verifyChunk(v, df, i); err != nil {
			return err
		}
	}
	return nil
}

// verifyChunk reads chunk index of v back from its data file and checks it.
// verifyMu makes concurrent first requests for a chunk wait for one check
// instead of each reading it.
func (s *Store) verifyChunk(v *version, df *dataFile, index int) error {
	v.verifyMu.Lock()
	defer v.verifyMu.Unlock()
	if v.isVerified(index) {
		return nil
	}
	n := int64(chunkLen(v.size, v.chunkBytes, index))
	base := int64(index) * int64(v.chunkBytes)
	buf := verifyBufs.Get().(*[verifyChunkBytes]byte)
	defer verifyBufs.Put(buf)
	h := sha256.New()
	for done := int64(0); done < n; {
		p := buf[:min(n-done, verifyChunkBytes)]
		if _, err := df.f.ReadAt(p, base+done); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return s.corrupt(v, index, err)
		}
		h.Write(p)
		done += int64(len(p))
	}
	var sum [32]byte
	if [32]byte(h.Sum(sum[:0])) != v.sums[index] {
		return s.corrupt(v, index, errors.New("SHA-256 mismatch"))
	}
	v.markVerified(index)
	return nil
}

func newVerified(chunks int) []atomic.Uint64 {
	return make([]atomic.Uint64, (chunks+63)/64)
}

// isVerified reports whether chunk index of v (complete) was verified on
// disk by this process.
func (v *version) isVerified(index int) bool {
	return v.verified[index/64].Load()&(1<<(index%64)) != 0
}

func (v *version) markVerified(index int) {
	v.verified[index/64].Or(1 << (index % 64))
}

// Offset is the position in the data file of the next byte to send: the
// data file holds the body at its own offsets (chunk i at i × chunk size).
func (f *File) Offset() int64 { return f.pos }

// Len is the number of bytes of the range not sent or read yet.
func (f *File) Len() int64 { return f.end - f.pos }

// Read reads the range (for writers that cannot take sendfile).
func (f *File) Read(p []byte) (int, error) {
	if f.pos >= f.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), f.end-f.pos)]
	n, err := f.df.f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF {
		if f.pos < f.end {
			// Shorter than its verified length: someone truncated it.
			return n, f.s.corrupt(f.v, int(f.pos/int64(f.v.chunkBytes)), io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// Close releases the File; the version's files may then be deleted if it
// was purged or replaced meanwhile. Close is idempotent.
func (f *File) Close() error {
	if f.s == nil {
		return nil
	}
	s, v := f.s, f.v
	f.df.release()
	*f = File{}
	s.releaseRef(v)
	s.filePool.Put(f)
	return nil
}
