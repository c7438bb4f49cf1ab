package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Fill is one in-flight fill: an io.Writer of the body in order, which any
// number of readers (Store.NewReader on Info's ID and Version) follow as it
// is written. Get one from Store.StartFill; the zero value is not usable.
//
// Write, Commit and Abort are safe to call from different goroutines (they
// are serialized), but the body must be written in order, so one goroutine
// (the leader) normally does all three. Every fill must end with Commit or
// Abort, or its readers and waiters (Wait) wait until their context ends.
type Fill struct {
	s        *Store
	v        *version
	declared int64 // size given to StartFill, -1 unknown

	// wmu serializes the writer's operations; the fields below it up to mu
	// are guarded by it.
	wmu      sync.Mutex
	file     *os.File // data file, created at the first chunk written (disk tier)
	onDisk   bool     // writing to the disk tier (false without one, or after a disk error)
	maxBytes int64    // the largest body this fill may store

	// Progress, read by readers (guarded by mu). The bytes of cur below
	// len(cur) and every finished chunk are immutable once published.
	mu      sync.Mutex
	cur     []byte     // chunk nfull, partly written
	nfull   int        // chunks finished (hashed, in memory, on disk)
	written int64      // body bytes written
	sums    [][32]byte // SHA-256 of each finished chunk
	ended   bool       // Commit began: no more bytes (readers may end before the disk commit)
	done    bool       // committed or failed
	err     error      // why it failed (errors.Is ErrFillFailed), nil if committed
	wait    chan struct{}
	// endedCh is closed when done is set (Wait). Made by StartFill: a
	// fill is never copied.
	endedCh chan struct{}
}

// failed marks a fill that was never registered as failed from the start.
func (f *Fill) failed(err error) *Fill {
	f.err = fmt.Errorf("%w: %w", ErrFillFailed, err)
	f.endLocked()
	return f
}

// endLocked marks the fill done (committed, detached by a purge, or
// failed) and wakes its readers and waiters. Called with f.mu held (or
// before the fill is shared).
func (f *Fill) endLocked() {
	if f.done {
		return
	}
	f.done = true
	f.notifyLocked()
	close(f.endedCh)
}

// Wait blocks until the fill ends and returns the version it committed:
// complete, with the SHA-256 of every chunk. The version may have been
// replaced or purged since (Store.Lookup tells what is stored now). If the
// fill did not commit, Wait returns why: ErrFillFailed wrapping the cause
// (the origin's error, ErrTooLarge, ErrClosed...) or ErrPurged (purged
// before it was published). It returns ctx's error if ctx ends first.
//
// A reader reaches the end of a body of known size as soon as its last
// byte is written, before the commit publishes the version and its
// digests: wait for the commit with Wait, not with a reader.
func (f *Fill) Wait(ctx context.Context) (ObjectInfo, error) {
	select {
	case <-f.endedCh:
	case <-ctx.Done():
		return ObjectInfo{}, ctx.Err()
	}
	if err := f.Err(); err != nil {
		return ObjectInfo{}, err
	}
	info := f.Info()
	if !info.Complete {
		return ObjectInfo{}, fmt.Errorf("cache: %q: %w", info.Key, ErrPurged)
	}
	return info, nil
}

// Info describes the fill's version: complete once committed, with the
// chunk digests computed so far.
func (f *Fill) Info() ObjectInfo {
	f.s.mu.Lock()
	v := f.v
	info := ObjectInfo{
		Key: v.key, ID: v.id, Version: v.version, Size: v.size, ChunkBytes: v.chunkBytes,
		Complete: v.complete, StoredAt: v.storedAt, HTTP: v.http[:len(v.http):len(v.http)],
	}
	f.s.mu.Unlock()
	f.mu.Lock()
	info.ChunkSHA256 = append([][32]byte(nil), f.sums...)
	f.mu.Unlock()
	return info
}

// Written returns the body bytes written so far: how far readers of the
// fill can read without waiting. It is safe for concurrent use with the
// writer and cheap (one uncontended lock), so the HTTP layer can judge
// per request whether a range will be reached soon.
func (f *Fill) Written() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// Err returns why the fill failed, or nil while it runs or once committed.
func (f *Fill) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// notifyLocked wakes readers waiting for progress.
func (f *Fill) notifyLocked() {
	if f.wait != nil {
		close(f.wait)
		f.wait = nil
	}
}

// waitLocked returns a channel closed at the next progress.
func (f *Fill) waitLocked() <-chan struct{} {
	if f.wait == nil {
		f.wait = make(chan struct{})
	}
	return f.wait
}

func (f *Fill) lockWriter()   { f.wmu.Lock() }
func (f *Fill) unlockWriter() { f.wmu.Unlock() }

// state returns the error for a writer call on a fill that has ended.
func (f *Fill) state() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return f.err
	case f.done:
		return errors.New("cache: fill already committed")
	}
	return nil
}

// Write appends body bytes. It fails, and fails the fill, if the body grows
// past its declared size or the object size limit (ErrTooLarge). A disk
// error does not fail it: the version then stays in memory only (see
// leaveDisk). After the fill failed, Write returns why.
func (f *Fill) Write(p []byte) (int, error) {
	f.lockWriter()
	defer f.unlockWriter()
	if err := f.state(); err != nil {
		return 0, err
	}
	total := f.written + int64(len(p))
	switch {
	case f.declared >= 0 && total > f.declared:
		return 0, f.failLocked(fmt.Errorf("body longer than its declared %d bytes", f.declared))
	case total > f.maxBytes:
		return 0, f.failLocked(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, f.maxBytes))
	}
	cb := f.v.chunkBytes
	n := 0
	for len(p) > 0 {
		k := min(cb-len(f.cur), len(p))
		cur := f.cur
		if cap(cur)-len(cur) < k {
			cur = f.grow(len(cur) + k)
		}
		// Appending writes only past len(f.cur), which readers never read.
		cur = append(cur, p[:k]...)
		f.mu.Lock()
		f.cur = cur
		f.written += int64(k)
		f.notifyLocked()
		f.mu.Unlock()
		p, n = p[k:], n+k
		if len(cur) == cb {
			if err := f.finishChunk(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// grow returns a copy of the current chunk with room for need bytes. A
// body of known size gets its chunks at their exact length; the first chunk
// of one of unknown size doubles, so a small body does not hold a whole
// chunk of memory.
// Readers keep reading the old buffer: its published bytes do not change.
func (f *Fill) grow(need int) []byte {
	cb := f.v.chunkBytes
	var c int
	switch {
	case f.declared >= 0:
		c = int(min(int64(cb), f.declared-int64(f.nfull)*int64(cb)))
	case f.nfull > 0: // a body of unknown size past its first chunk is not small
		c = cb
	default:
		c = min(cb, max(need, 2*cap(f.cur), 16<<10))
	}
	c = max(c, need)
	buf := make([]byte, len(f.cur), c)
	copy(buf, f.cur)
	return buf
}

// finishChunk hashes the current chunk, writes it to disk and publishes it
// to the memory tier. Called with the writer lock.
func (f *Fill) finishChunk() error {
	buf := f.cur
	if cap(buf)-len(buf) > len(buf)/8 {
		// The last chunk of a body of unknown size: do not keep the slack.
		buf = append(make([]byte, 0, len(buf)), buf...)
	}
	sum := sha256.Sum256(buf)
	index := f.nfull
	s := f.s
	if f.onDisk {
		if err := f.writeChunk(index, buf); err != nil {
			if err := f.leaveDisk(err); err != nil {
				return f.failLocked(err)
			}
		}
	}
	var c cleanup
	s.mu.Lock()
	s.addChunkLocked(f.v, index, buf, &c)
	if f.onDisk && !f.v.dead.Load() {
		s.diskBytes += int64(len(buf))
		f.v.diskBytes += int64(len(buf))
		s.evictDiskLocked(&c)
	}
	s.mu.Unlock()
	s.runCleanup(&c)
	f.mu.Lock()
	f.sums = append(f.sums, sum)
	f.nfull++
	f.cur = nil
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

// writeChunk appends chunk index to the data file.
func (f *Fill) writeChunk(index int, buf []byte) error {
	if f.file == nil {
		file, err := f.s.disk.createData(f.v.id, f.v.version)
		if err != nil {
			return err
		}
		f.file = file
	}
	// Chunks are written in order: the file offset is index × chunkBytes.
	if _, err := f.file.Write(buf); err != nil {
		return fmt.Errorf("cache: writing chunk %d: %w", index, err)
	}
	return nil
}

// leaveDisk keeps a fill going in memory only after a disk error (a full
// or failing disk must not break the responses that follow the fill). The
// version is then not persisted, and memory holds it like a store without
// disk. It fails if a chunk already left memory (it was only on disk) or
// the body cannot fit in memory.
func (f *Fill) leaveDisk(cause error) error {
	s, v := f.s, f.v
	s.log.Warn("cache: disk tier failed; keeping the object in memory only", "key", v.key, "error", cause)
	if f.file != nil {
		f.file.Close()
		f.file = nil
	}
	f.onDisk = false
	f.maxBytes = min(f.maxBytes, s.opts.MemoryBytes)
	v.fileMu.Lock()
	s.disk.removeMeta(v.id, v.version, false)
	s.disk.removeData(v.id, v.version)
	v.fileMu.Unlock()
	s.mu.Lock()
	v.memOnly = true
	if !v.dead.Load() {
		s.diskBytes -= v.diskBytes
		v.diskBytes = 0
	}
	missing := -1
	for i := range f.nfull {
		if !s.mem.Contains(chunkKey{v.id, v.version, i}) {
			missing = i
			break
		}
	}
	s.mu.Unlock()
	switch {
	case missing >= 0:
		return fmt.Errorf("disk tier failed (%w) and chunk %d was only on disk", cause, missing)
	case f.declared > f.maxBytes || f.written > f.maxBytes:
		return fmt.Errorf("%w: disk tier failed (%w) and the object does not fit in memory", ErrTooLarge, cause)
	}
	return nil
}

// Commit publishes the version once every byte is written: it becomes what
// Lookup returns for its key, replacing older versions (their readers
// finish first). A body shorter than its declared size fails the fill. On
// disk the version is durable when Commit returns (unless NoFsync).
func (f *Fill) Commit() error {
	f.lockWriter()
	defer f.unlockWriter()
	if err := f.state(); err != nil {
		return err
	}
	if f.declared >= 0 && f.written != f.declared {
		return f.failLocked(fmt.Errorf("body ended after %d of %d bytes", f.written, f.declared))
	}
	if len(f.cur) > 0 {
		if err := f.finishChunk(); err != nil {
			return err
		}
	}
	s, v := f.s, f.v
	size := f.written
	f.mu.Lock()
	f.ended = true // readers of a body of unknown size need not wait for fsync
	f.notifyLocked()
	f.mu.Unlock()
	var metaBytes int64
	if f.onDisk {
		var err error
		if metaBytes, err = f.persist(size); err != nil && !errors.Is(err, ErrPurged) {
			if err := f.leaveDisk(err); err != nil {
				return f.failLocked(err)
			}
		}
	}

	var c cleanup
	s.mu.Lock()
	v.fill = nil
	if v.dead.Load() {
		// Purged while committing: the metadata may have just been written.
		if f.onDisk {
			c.withdraw = append(c.withdraw, v)
		}
		s.maybeReleaseLocked(v, &c)
		s.mu.Unlock()
		s.runCleanup(&c)
		// Detached: its readers read to the end, but nothing is stored.
		f.mu.Lock()
		f.endLocked()
		f.mu.Unlock()
		return fmt.Errorf("cache: committing %q: %w", v.key, ErrPurged)
	}
	v.complete = true
	v.size = size
	v.sums = f.sums[:len(f.sums):len(f.sums)]
	v.verified = newVerified(len(v.sums))
	s.stats.Objects++
	s.stats.Chunks += int64(len(v.sums))
	o := s.objects[v.key]
	if o.fill == f {
		o.fill = nil
	}
	if old := o.current; old != nil {
		s.dropLocked(old, &c)
		if s.objects[v.key] == nil { // dropLocked removed the emptied entry
			s.objects[v.key] = o
		}
	}
	o.current = v
	if f.onDisk {
		v.diskBytes += metaBytes
		s.diskBytes += metaBytes
		v.diskElem = s.diskLRU.PushFront(v)
		s.evictDiskLocked(&c)
	}
	s.mu.Unlock()
	s.runCleanup(&c)

	f.mu.Lock()
	f.endLocked()
	f.mu.Unlock()
	return nil
}

// persist makes the data file durable and commits the metadata, unless the
// version was purged meanwhile (ErrPurged). It returns the metadata size.
func (f *Fill) persist(size int64) (int64, error) {
	s, v := f.s, f.v
	if f.file == nil { // empty body
		file, err := s.disk.createData(v.id, v.version)
		if err != nil {
			return 0, err
		}
		f.file = file
	}
	err := s.disk.finishData(f.file)
	f.file = nil
	if err != nil {
		return 0, err
	}
	return f.writeMeta(size)
}

// writeMeta commits the version's metadata unless it was purged meanwhile.
func (f *Fill) writeMeta(size int64) (int64, error) {
	s, v := f.s, f.v
	v.fileMu.Lock()
	defer v.fileMu.Unlock()
	s.mu.Lock()
	dead := v.dead.Load()
	m := &meta{id: v.id, version: v.version, size: size, chunkBytes: v.chunkBytes, storedAt: v.storedAt,
		key: v.key, http: v.http, sums: f.sums}
	s.mu.Unlock()
	if dead {
		return 0, ErrPurged
	}
	return s.disk.writeMeta(m)
}

// Abort fails the fill: readers get ErrFillFailed wrapping err, and the
// partial version is deleted. Abort after Commit or a failure does nothing.
func (f *Fill) Abort(err error) {
	if err == nil {
		err = errors.New("aborted")
	}
	f.lockWriter()
	defer f.unlockWriter()
	if f.state() == nil { // still running
		f.failLocked(err)
	}
}

// failLocked ends the fill with err (called with the writer lock) and
// returns the error its caller reports.
func (f *Fill) failLocked(err error) error {
	ferr := fmt.Errorf("%w: %q: %w", ErrFillFailed, f.v.key, err)
	if f.file != nil {
		f.file.Close()
		f.file = nil
	}
	f.mu.Lock()
	f.err = ferr
	f.cur = nil
	f.endLocked()
	f.mu.Unlock()
	s, v := f.s, f.v
	var c cleanup
	s.mu.Lock()
	if s.versions[verKey{v.id, v.version}] == v {
		v.fill = nil
		s.dropLocked(v, &c)
		s.maybeReleaseLocked(v, &c)
	}
	s.mu.Unlock()
	s.runCleanup(&c)
	if errors.Is(err, ErrPurged) || errors.Is(err, ErrClosed) {
		return ferr
	}
	s.log.Debug("cache: fill failed", "key", v.key, "error", err, "after", time.Since(v.storedAt))
	return ferr
}
