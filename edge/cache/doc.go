// Package cache is the edge's chunk-addressed object store: a memory tier
// (golang-lru/v2, bounded in bytes) over a disk tier (bounded in bytes,
// survives restarts), with in-flight fills that many readers can stream
// from while the first one writes (request collapsing).
//
// The store knows objects, versions and chunks, not HTTP: the HTTP layer
// (package edge) keeps its response metadata in ObjectInfo.HTTP as an opaque
// blob and decides freshness itself.
//
// # Units
//
//   - An object is one cached response body, named by its key string (site,
//     path, normalized query and Vary values, built by the HTTP layer). Its ID
//     is xxhash64(key).
//   - A version is one fill of an object; a refetch that changes the body
//     makes a new version, so readers of the old one are never corrupted.
//     Version numbers grow across restarts (they start from the clock in
//     nanoseconds and above any version found on disk), so the newest
//     version of a key is the one with the highest number.
//   - A chunk is ChunkBytes of a version (the last one may be shorter). Every
//     chunk carries the SHA-256 of its bytes, computed while filling; the
//     list is the peer-assist manifest and the disk tier verifies it on read.
//     A chunk is identified by (ID, version, index).
//
// # Tiers
//
// Every chunk a fill finishes goes to the memory tier and, with a disk tier,
// to the version's data file (write-through), so the disk holds every
// complete object and memory the recently used chunks. Memory evicts single
// chunks, least recently used first; a chunk read back from disk is promoted
// to memory. Disk evicts whole versions, least recently opened first (access
// times are not persisted: after a restart the order starts from the store
// time). Without a disk tier an evicted chunk loses its object, so memory
// eviction skips chunks of versions being filled or read (the bound can be
// exceeded by what is in use) and drops the whole version of a chunk it
// evicts. An object larger than the tier that must hold it (DiskBytes, or
// MemoryBytes without a disk) fails with ErrTooLarge like one over
// MaxObjectBytes. A disk error during a fill does not fail it: that version
// is then kept in memory only, as in a store without disk.
//
// MemoryBytes bounds chunk bytes only. The index of every stored version
// (key, HTTP blob, 32 bytes of digest per chunk and a few hundred bytes of
// bookkeeping) lives in memory too, for objects on disk as well: a disk
// tier of many small objects needs RAM for its index (10 GiB of 1 KiB
// objects would need several GiB).
//
// # On-disk layout
//
//	<DiskPath>/LOCK                        flock'ed while a process has the store open
//	<DiskPath>/objects/<hh>/               256 directories: hh = top byte of the ID
//	    <id>-<version>.data                the body, chunk i at offset i × chunk size
//	    <id>-<version>.meta                committed metadata (meta.go): key, size,
//	                                       chunk size, store time, HTTP blob, the
//	                                       SHA-256 of every chunk, and a SHA-256
//	                                       trailer over the whole file
//	    <id>-<version>.meta.tmp            metadata being written
//
// (<id> and <version> are 16 hex digits.)
//
// # Why it is crash safe
//
// A fill writes only its own new data file (created with O_EXCL; versions
// are unique). Commit then fsyncs the data file, writes the metadata to a
// temporary file, fsyncs it, renames it over its final name and fsyncs the
// directory. The rename is the commit point: a version exists for the next
// Open exactly when its metadata file does. Open reads only metadata files
// (fast: no body is hashed at startup) and deletes
//
//   - data files without metadata: fills that were in flight, versions whose
//     withdrawal was not finished;
//   - temporary metadata files;
//   - metadata that fails its trailer checksum or does not match its file
//     name, and versions whose data file is missing or of the wrong length;
//   - older versions of a key when a newer one was committed (a crash
//     between publishing a version and deleting the one it replaced).
//
// Removing a version removes its metadata first (with a directory fsync for
// purges, so a purge survives a power loss), then its data file once the
// last reader closes; a crash in between leaves an orphan data file that the
// next Open deletes. UpdateHTTP rewrites the metadata the same atomic way.
//
// Nothing on disk is trusted beyond that: every chunk read from disk is
// checked against the SHA-256 in its metadata before it is served or
// promoted to memory. A mismatch, a short read or a missing file drops the
// version (metadata and data), counts a corrupt chunk and returns
// ErrCorrupt; the HTTP layer then refetches. So a torn write that the
// checks at Open miss (a data file of the right length holding stale
// blocks after a power loss) is still never served.
//
// Options.NoFsync skips the fsyncs: a kill -9 loses nothing (the page cache
// survives the process), and after a power loss the checks above still drop
// whatever was not on the platter.
//
// # Concurrency
//
// One mutex guards the index (keys, versions, both LRUs and the counters);
// no I/O or hashing happens under it. A memory hit (Lookup, NewReader,
// NextChunk, Close) takes it four times for map and list operations and
// allocates nothing: readers are pooled and NextChunk returns the stored
// chunk buffer itself, which is never modified once published. Each fill
// has its own mutex for its progress, which readers wait on through a
// channel closed at every write (so a waiting reader honours its context
// without a goroutine). Fill.Wait waits on another channel, closed once when
// the fill commits or fails: a reader reaches the last byte of a body of
// known size before the commit publishes its version and digests.
package cache
