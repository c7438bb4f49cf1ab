package cache

// This file is the contract between the store and its users (package edge,
// the manifest endpoint). Keep it small; change it only with its users.

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotFound: no complete version of the object is stored.
	ErrNotFound = errors.New("cache: object not found")
	// ErrFillFailed: the fill a reader was following was aborted (origin
	// error, size limit, purge); the reader got only a prefix.
	ErrFillFailed = errors.New("cache: fill aborted")
	// ErrCorrupt: stored bytes failed verification; the object was dropped.
	ErrCorrupt = errors.New("cache: stored chunk failed verification")
	// ErrTooLarge: the object exceeds Options.MaxObjectBytes (or the
	// capacity of the tier that must hold it).
	ErrTooLarge = errors.New("cache: object too large")
	// ErrRange: a read range outside the object, or a bad argument.
	ErrRange = errors.New("cache: range not satisfiable")
	// ErrPurged: the object was purged while it was being filled; the
	// fill's readers may finish, but the version is not stored.
	ErrPurged = errors.New("cache: purged during fill")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("cache: store closed")
	// ErrNotOnDisk: OpenFile was asked for a version kept in memory only
	// (no disk tier, or its disk writes failed); read it with NewReader.
	ErrNotOnDisk = errors.New("cache: version not on disk")
)

// Options configure Open. Zero values take the documented defaults.
type Options struct {
	ChunkBytes     int    // default chunk size for fills. Default 256 KiB.
	MemoryBytes    int64  // memory tier bound. Default 512 MiB.
	DiskPath       string // disk tier directory; "" = memory only.
	DiskBytes      int64  // disk tier bound. Default 10 GiB.
	MaxObjectBytes int64  // larger fills fail with ErrTooLarge. Default 8 GiB.
	// NoFsync skips fsync at commit. A kill -9 still never serves a
	// partial object (the page cache survives it and every chunk is
	// verified on read); after a power loss, objects committed in the last
	// seconds may be lost (detected and dropped, never served). Default
	// false: fsync data file, metadata file and directory at each commit.
	NoFsync bool
	// OpenFiles bounds the data files kept open for OpenFile (least
	// recently used closed first; a file in use closes when its send
	// ends). Default 1024.
	OpenFiles int
	// Logger receives warnings (corrupt chunks, disk errors). nil means
	// slog.Default().
	Logger *slog.Logger
}

// ObjectInfo describes one stored version of an object. The struct is a
// copy, but ChunkSHA256 and HTTP of a complete version share the store's
// immutable buffers so that a hit allocates nothing: read them, never write
// into them (append is safe: their capacity is clipped).
type ObjectInfo struct {
	Key        string    // the object's key string
	ID         uint64    // xxhash64(Key)
	Version    uint64    // unique per fill of this key
	Size       int64     // body size in bytes; -1 while a fill of unknown length runs
	ChunkBytes int       // chunk size of this version
	Complete   bool      // every byte written and committed
	StoredAt   time.Time // when the fill began
	// ChunkSHA256 holds the SHA-256 of each chunk written so far, in order.
	ChunkSHA256 [][32]byte
	// HTTP is the HTTP layer's metadata (status, headers, validators,
	// freshness), opaque to the store.
	HTTP []byte
}

// NumChunks is the number of chunks of a complete version.
func (o *ObjectInfo) NumChunks() int {
	if o.Size <= 0 || o.ChunkBytes <= 0 {
		return 0
	}
	return int((o.Size + int64(o.ChunkBytes) - 1) / int64(o.ChunkBytes))
}

// Stats are counters for the admin listener and metrics.
type Stats struct {
	Objects, Chunks                 int64 // complete objects, chunks stored
	MemoryBytes, DiskBytes          int64 // bytes used per tier
	MemoryHits, DiskHits, Misses    int64 // chunk reads by tier; object lookups that missed
	Evictions, CorruptChunks, Fills int64 // chunks evicted, chunks failing verification, fills started
}

// The store's methods, implemented by *Store (see store.go):
//
//	func Open(opts Options) (*Store, error)
//	func (s *Store) Close() error
//
//	// Lookup returns the newest complete version of key, or ErrNotFound.
//	func (s *Store) Lookup(key string) (ObjectInfo, error)
//	// LookupOrInFlight is Lookup that, on ErrNotFound, also returns the
//	// fill in flight for key if any, read under the same lock as the lookup.
//	func (s *Store) LookupOrInFlight(key string) (ObjectInfo, *Fill, error)
//	// Open a reader of bytes [off, off+n) of a version (complete or being
//	// filled). Reads block until the bytes are written, the fill fails
//	// (ErrFillFailed) or ctx ends. n < 0 reads to the end.
//	func (s *Store) NewReader(ctx context.Context, id, version uint64, off, n int64) (Reader, error)
//	// ReadChunk returns one chunk of a complete version, verified.
//	func (s *Store) ReadChunk(ctx context.Context, id, version uint64, index int) ([]byte, error)
//	// OpenFile returns a byte range of a complete version's data file, its
//	// chunks verified, to send with sendfile(2) (File.SendTo) or read
//	// (file.go); ErrNotOnDisk for a version kept in memory only.
//	func (s *Store) OpenFile(ctx context.Context, id, version uint64, off, n int64) (*File, error)
//	// ResidentChunk returns a chunk only if it is in the memory tier.
//	func (s *Store) ResidentChunk(id, version uint64, index int) ([]byte, bool)
//	// Resident reports whether a range's chunks are all in the memory tier.
//	func (s *Store) Resident(id, version uint64, off, n int64) bool
//	func (f *File) SendTo(dst syscall.RawConn) (int64, error)
//	func (f *File) Read(p []byte) (int, error)
//	func (f *File) Close() error
//
//	// StartFill begins a fill of key, or joins the one in flight: leader is
//	// true for the caller that must write it. Followers read with NewReader
//	// from the returned Fill's Info().
//	func (s *Store) StartFill(key string, size int64, chunkBytes int, httpMeta []byte) (f *Fill, leader bool)
//	// InFlight returns the fill in progress for key, if any.
//	func (s *Store) InFlight(key string) (*Fill, bool)
//
//	// UpdateHTTP replaces the HTTP metadata of a stored version (after a 304
//	// revalidation) atomically, without touching its chunks.
//	func (s *Store) UpdateHTTP(id, version uint64, httpMeta []byte) error
//	// Purge removes every version of key; PurgePrefix every key with the prefix.
//	func (s *Store) Purge(key string) bool
//	func (s *Store) PurgePrefix(prefix string) int
//	func (s *Store) Stats() Stats
//
//	// Fill is one in-flight fill: an io.Writer of the body in order.
//	func (f *Fill) Info() ObjectInfo
//	func (f *Fill) Write(p []byte) (int, error)
//	func (f *Fill) Commit() error      // all bytes written: publish the version
//	func (f *Fill) Abort(err error)    // readers get ErrFillFailed (wrapping err)
//	func (f *Fill) Err() error         // why the fill failed; nil while running or committed
//	func (f *Fill) Written() int64     // body bytes written so far (readers need not wait for them)
//	// Wait blocks until the fill ends: the committed version (complete,
//	// every digest), or why it did not commit (ErrFillFailed, ErrPurged),
//	// or ctx's error.
//	func (f *Fill) Wait(ctx context.Context) (ObjectInfo, error)

// Reader reads a byte range of one version. Chunks (the store's own
// immutable buffers) let the HTTP layer write without copying.
type Reader interface {
	io.Reader
	io.Closer
	// NextChunk returns the next slice of the range, backed by the store's
	// immutable chunk buffer (do not modify it), or io.EOF after the last.
	NextChunk() ([]byte, error)
}

var (
	_ Reader    = (*reader)(nil)
	_ io.Writer = (*Fill)(nil)
)
