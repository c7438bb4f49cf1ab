package cache

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of Options (documented there).
const (
	DefaultChunkBytes     = 256 << 10
	DefaultMemoryBytes    = 512 << 20
	DefaultDiskBytes      = 10 << 30
	DefaultMaxObjectBytes = 8 << 30
	DefaultOpenFiles      = 1024

	// maxFillChunkBytes bounds a fill's chunk size: a chunk is held whole in
	// memory and hashed as one piece.
	maxFillChunkBytes = 64 << 20
)

// Store is the chunk-addressed object store. Create it with Open; the zero
// value is not usable. It is safe for concurrent use.
//
// One mutex guards the index (objects, versions, the memory LRU and the disk
// LRU); it is held only for map and list operations, never for I/O or
// hashing, so a memory hit costs a few short critical sections.
type Store struct {
	opts           Options
	log            *slog.Logger
	disk           *disk // nil: memory only
	maxObjectBytes int64 // MaxObjectBytes bounded by the capacity of the storing tier
	nextVersion    atomic.Uint64
	readers        sync.Pool // of *reader
	filePool       sync.Pool // of *File
	metricsReg     metric.Registration

	mu        sync.Mutex
	closed    bool
	objects   map[string]*object
	versions  map[verKey]*version
	mem       *simplelru.LRU[chunkKey, []byte] // chunk buffers, oldest first out
	memBytes  int64
	diskLRU   list.List                        // of *version with committed metadata, most recent first
	openFiles *simplelru.LRU[verKey, *version] // versions whose data file is open (version.file)
	diskBytes int64                            // data and metadata bytes of live versions and fills
	stats     Stats                            // counters; tier bytes are filled in by Stats
}

// object is one key: its newest complete version and its fill in flight.
type object struct {
	current *version
	fill    *Fill
}

type verKey struct{ id, version uint64 }

type chunkKey struct {
	id, version uint64
	index       int
}

// version is one fill of a key. Fields are guarded by Store.mu except where
// noted; key, id, version, chunkBytes and storedAt never change.
type version struct {
	key         string
	id, version uint64
	chunkBytes  int
	storedAt    time.Time

	size     int64      // declared size while filling (-1 unknown), final once complete
	sums     [][32]byte // set once complete, then immutable
	http     []byte     // replaced whole, never modified in place
	complete bool       // committed and published
	fill     *Fill      // non-nil until the fill commits or fails
	// refs counts open readers and ReadChunk calls in progress. It grows
	// under Store.mu but drops without it, so that closing a reader of a
	// live version takes no lock. dead (out of the index: purged, replaced,
	// evicted, corrupt or failed) is set under Store.mu and read by Close:
	// whichever of the two sees the other's change frees the version.
	refs     atomic.Int32
	dead     atomic.Bool
	released bool // memory chunks removed, files deleted (or being deleted)
	memOnly  bool // not on disk (no disk tier, or it failed during the fill)
	nChunks  int  // chunks ever added to the memory tier: bound for removal

	diskElem  *list.Element // in Store.diskLRU while complete and live
	diskBytes int64         // counted in Store.diskBytes while live
	file      *dataFile     // open data file, while in Store.openFiles (file.go)

	// verified has one bit per chunk, set once the chunk was read back from
	// the data file and matched its SHA-256 (file.go). Allocated when the
	// version is published (complete), then only bits are set.
	verified []atomic.Uint64
	verifyMu sync.Mutex // serializes verifications of the version's chunks

	// fileMu orders metadata writes (Commit, UpdateHTTP) against deletion,
	// so that a rewrite never resurrects a withdrawn version. filesGone is
	// guarded by it.
	fileMu    sync.Mutex
	filesGone bool
}

// Open opens (and on disk, recovers) a store. Options are checked: a bad
// value is an error, not silently replaced.
func Open(opts Options) (*Store, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:     opts,
		log:      opts.Logger,
		objects:  make(map[string]*object),
		versions: make(map[verKey]*version),
	}
	s.readers.New = func() any { return new(reader) }
	s.filePool.New = func() any { return new(File) }
	s.openFiles, _ = simplelru.NewLRU[verKey, *version](math.MaxInt, nil) // bounded by OpenFiles in openDataFile
	// The LRU's own bound counts entries; ours is in bytes (evictMemLocked).
	s.mem, _ = simplelru.NewLRU[chunkKey, []byte](math.MaxInt, nil)
	s.maxObjectBytes = opts.MaxObjectBytes
	if opts.DiskPath == "" {
		s.maxObjectBytes = min(s.maxObjectBytes, opts.MemoryBytes)
	} else {
		s.maxObjectBytes = min(s.maxObjectBytes, opts.DiskBytes)
	}
	// Versions only grow, across restarts too (the clock is the floor and
	// recovered versions raise it), so the newest version of a key is the
	// highest number.
	s.nextVersion.Store(uint64(time.Now().UnixNano()))
	if opts.DiskPath != "" {
		d, err := openDisk(opts.DiskPath, !opts.NoFsync, s.log)
		if err != nil {
			return nil, err
		}
		found, err := d.scan()
		if err != nil {
			d.close()
			return nil, err
		}
		s.disk = d
		s.recover(found)
	}
	if err := s.registerMetrics(); err != nil {
		s.log.Warn("cache: metrics not registered", "error", err)
	}
	return s, nil
}

func (o *Options) fillDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(v *int64, d int64, name string) error {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			return fmt.Errorf("cache: Options.%s %d must not be negative", name, *v)
		}
		return nil
	}
	if err := def(&o.MemoryBytes, DefaultMemoryBytes, "MemoryBytes"); err != nil {
		return err
	}
	if err := def(&o.DiskBytes, DefaultDiskBytes, "DiskBytes"); err != nil {
		return err
	}
	if err := def(&o.MaxObjectBytes, DefaultMaxObjectBytes, "MaxObjectBytes"); err != nil {
		return err
	}
	switch {
	case o.OpenFiles == 0:
		o.OpenFiles = DefaultOpenFiles
	case o.OpenFiles < 0:
		return fmt.Errorf("cache: Options.OpenFiles %d must not be negative", o.OpenFiles)
	}
	switch {
	case o.ChunkBytes == 0:
		o.ChunkBytes = DefaultChunkBytes
	case o.ChunkBytes < 0 || o.ChunkBytes > maxFillChunkBytes:
		return fmt.Errorf("cache: Options.ChunkBytes %d out of range 1..%d", o.ChunkBytes, maxFillChunkBytes)
	}
	return nil
}

// recover indexes the versions found on disk, least recently stored at the
// back of the disk LRU (access times are not persisted), then trims to the
// bound in case it shrank.
func (s *Store) recover(found []recovered) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maxVersion := uint64(0)
	for _, r := range found {
		m := r.m
		v := &version{
			key: m.key, id: m.id, version: m.version, chunkBytes: m.chunkBytes, storedAt: m.storedAt,
			size: m.size, sums: m.sums, http: m.http, complete: true,
			diskBytes: r.dataBytes + r.metaBytes, verified: newVerified(len(m.sums)),
		}
		s.versions[verKey{m.id, m.version}] = v
		s.objects[m.key] = &object{current: v}
		s.diskBytes += v.diskBytes
		s.stats.Objects++
		s.stats.Chunks += int64(len(m.sums))
		maxVersion = max(maxVersion, m.version)
	}
	// Insert oldest first so the newest end up at the front.
	vs := make([]*version, 0, len(s.versions))
	for _, v := range s.versions {
		vs = append(vs, v)
	}
	sortByStoredAt(vs)
	for _, v := range vs {
		v.diskElem = s.diskLRU.PushFront(v)
	}
	if maxVersion >= s.nextVersion.Load() {
		s.nextVersion.Store(maxVersion)
	}
	var c cleanup
	s.evictDiskLocked(&c)
	// Deleting files under s.mu is acceptable here: Open has not returned.
	s.runCleanup(&c)
}

func sortByStoredAt(vs []*version) {
	slices.SortFunc(vs, func(a, b *version) int { return a.storedAt.Compare(b.storedAt) })
}

// Close aborts fills in flight (their readers get ErrFillFailed) and
// releases the disk tier. Open readers may finish reading. Close is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var fills []*Fill
	for _, o := range s.objects {
		if o.fill != nil {
			fills = append(fills, o.fill)
		}
	}
	var c cleanup
	for _, v := range s.openFiles.Values() {
		c.closeFiles = append(c.closeFiles, v.file)
		v.file = nil
	}
	s.openFiles.Purge()
	s.mu.Unlock()
	s.runCleanup(&c)
	for _, f := range fills {
		f.Abort(ErrClosed)
	}
	if s.metricsReg != nil {
		s.metricsReg.Unregister()
	}
	if s.disk != nil {
		return s.disk.close()
	}
	return nil
}

// Lookup returns the newest complete version of key, or ErrNotFound.
func (s *Store) Lookup(key string) (ObjectInfo, error) {
	info, _, err := s.LookupOrInFlight(key)
	return info, err
}

// LookupOrInFlight is Lookup that also returns, when no complete version of
// key is stored (ErrNotFound), the fill in flight for it, if any. Both are
// read under one lock: a fill that commits meanwhile is seen either as the
// stored version or as the fill in flight. (Lookup then InFlight misses
// both when the commit falls between them: a request would refetch an
// object whose bytes its previous request has just read.)
func (s *Store) LookupOrInFlight(key string) (ObjectInfo, *Fill, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ObjectInfo{}, nil, ErrClosed
	}
	o := s.objects[key]
	if o == nil || o.current == nil {
		s.stats.Misses++
		var f *Fill
		if o != nil {
			f = o.fill
		}
		s.mu.Unlock()
		return ObjectInfo{}, f, ErrNotFound
	}
	info := o.current.infoLocked()
	s.mu.Unlock()
	return info, nil, nil
}

// infoLocked describes a complete version without allocating.
func (v *version) infoLocked() ObjectInfo {
	return ObjectInfo{
		Key: v.key, ID: v.id, Version: v.version, Size: v.size, ChunkBytes: v.chunkBytes,
		Complete: v.complete, StoredAt: v.storedAt,
		ChunkSHA256: v.sums[:len(v.sums):len(v.sums)],
		HTTP:        v.http[:len(v.http):len(v.http)],
	}
}

// StartFill begins a fill of key, or joins the one in flight: leader is
// true for the caller that must write it. size is the body length, or -1 if
// unknown; chunkBytes 0 takes Options.ChunkBytes.
//
// A fill that cannot be stored (size over the limit, bad arguments, store
// closed) is returned already failed, with leader true and not registered:
// its Write and Commit return the reason (errors.Is ErrTooLarge, ErrRange
// or ErrClosed), so the caller passes the body through uncached.
func (s *Store) StartFill(key string, size int64, chunkBytes int, httpMeta []byte) (f *Fill, leader bool) {
	if chunkBytes == 0 {
		chunkBytes = s.opts.ChunkBytes
	}
	v := &version{
		key: key, id: xxhash.Sum64String(key), chunkBytes: chunkBytes, storedAt: time.Now(),
		size: size, http: bytes.Clone(httpMeta),
	}
	f = &Fill{s: s, v: v, declared: size, onDisk: s.disk != nil, maxBytes: s.maxObjectBytes, endedCh: make(chan struct{})}
	v.memOnly = s.disk == nil
	switch {
	case chunkBytes < 0 || chunkBytes > maxFillChunkBytes:
		return f.failed(fmt.Errorf("%w: chunk size %d out of range 1..%d", ErrRange, chunkBytes, maxFillChunkBytes)), true
	case size < -1:
		return f.failed(fmt.Errorf("%w: size %d", ErrRange, size)), true
	case size > s.maxObjectBytes:
		return f.failed(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, s.maxObjectBytes)), true
	case len(key) > maxKeyBytes:
		return f.failed(fmt.Errorf("%w: key of %d bytes, limit %d", ErrRange, len(key), maxKeyBytes)), true
	case len(httpMeta) > maxHTTPBytes:
		return f.failed(fmt.Errorf("%w: HTTP metadata of %d bytes, limit %d", ErrRange, len(httpMeta), maxHTTPBytes)), true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return f.failed(ErrClosed), true
	}
	o := s.objects[key]
	if o == nil {
		o = &object{}
		s.objects[key] = o
	} else if o.fill != nil {
		return o.fill, false
	}
	v.version = s.nextVersion.Add(1)
	v.fill = f
	o.fill = f
	s.versions[verKey{v.id, v.version}] = v
	s.stats.Fills++
	return f, true
}

// InFlight returns the fill in progress for key, if any.
func (s *Store) InFlight(key string) (*Fill, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.objects[key]; o != nil && o.fill != nil {
		return o.fill, true
	}
	return nil, false
}

// UpdateHTTP replaces the HTTP metadata of a complete version atomically
// (on disk: a new metadata file renamed over the old one), without touching
// its chunks. ErrNotFound if the version is not (or no longer) stored.
func (s *Store) UpdateHTTP(id, version uint64, httpMeta []byte) error {
	if len(httpMeta) > maxHTTPBytes {
		return fmt.Errorf("%w: HTTP metadata of %d bytes, limit %d", ErrRange, len(httpMeta), maxHTTPBytes)
	}
	httpMeta = bytes.Clone(httpMeta)
	s.mu.Lock()
	v := s.versions[verKey{id, version}]
	if v == nil || !v.complete || v.dead.Load() {
		s.mu.Unlock()
		return fmt.Errorf("cache: updating %016x-%016x: %w", id, version, ErrNotFound)
	}
	if v.memOnly {
		v.http = httpMeta
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	v.fileMu.Lock()
	defer v.fileMu.Unlock()
	s.mu.Lock()
	if v.dead.Load() || v.filesGone {
		s.mu.Unlock()
		return fmt.Errorf("cache: updating %016x-%016x: %w", id, version, ErrNotFound)
	}
	m := &meta{id: v.id, version: v.version, size: v.size, chunkBytes: v.chunkBytes, storedAt: v.storedAt,
		key: v.key, http: httpMeta, sums: v.sums}
	s.mu.Unlock()
	metaBytes, err := s.disk.writeMeta(m)
	if err != nil {
		return fmt.Errorf("cache: updating HTTP metadata of %q: %w", v.key, err)
	}
	s.mu.Lock()
	v.http = httpMeta
	if !v.dead.Load() {
		// Only the metadata size changed; data bytes are diskBytes minus the old metadata.
		old := v.diskBytes - v.size
		s.diskBytes += metaBytes - old
		v.diskBytes = v.size + metaBytes
	}
	s.mu.Unlock()
	return nil
}

// Purge removes every version of key and detaches its fill in flight: the
// fill's readers finish, but its result is not stored (Commit returns
// ErrPurged) and a new StartFill begins a fresh fill. It reports whether
// anything was removed. On disk, the removal is durable when Purge returns.
func (s *Store) Purge(key string) bool {
	var c cleanup
	c.durable = true
	s.mu.Lock()
	found := s.purgeLocked(key, &c)
	s.mu.Unlock()
	s.runCleanup(&c)
	return found
}

// PurgePrefix purges every key that starts with prefix (the empty prefix:
// every key) and returns how many keys it removed. It scans every key under
// the store's lock (an admin operation, not a hot path).
func (s *Store) PurgePrefix(prefix string) int {
	var c cleanup
	c.durable = true
	n := 0
	s.mu.Lock()
	for key := range s.objects {
		if strings.HasPrefix(key, prefix) && s.purgeLocked(key, &c) {
			n++
		}
	}
	s.mu.Unlock()
	s.runCleanup(&c)
	return n
}

func (s *Store) purgeLocked(key string, c *cleanup) bool {
	o := s.objects[key]
	if o == nil {
		return false
	}
	found := false
	if v := o.current; v != nil {
		s.dropLocked(v, c)
		found = true
	}
	if f := o.fill; f != nil {
		s.dropLocked(f.v, c)
		found = true
	}
	delete(s.objects, key)
	return found
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.MemoryBytes = s.memBytes
	st.DiskBytes = s.diskBytes
	return st
}

// cleanup collects file work decided under Store.mu, done after unlocking.
type cleanup struct {
	withdraw []*version // remove metadata now; data when released
	release  []*version // delete all files
	durable  bool       // fsync the directory after withdrawing (purges)
	// closeFiles lost their place in the fd cache: drop its reference
	// (the file closes when no send uses it).
	closeFiles []*dataFile
}

func (s *Store) runCleanup(c *cleanup) {
	for _, df := range c.closeFiles {
		df.release()
	}
	if s.disk == nil {
		return
	}
	for _, v := range c.withdraw {
		v.fileMu.Lock()
		if !v.filesGone {
			if err := s.disk.removeMeta(v.id, v.version, c.durable); err != nil {
				s.log.Warn("cache: withdrawing version", "key", v.key, "error", err)
			}
		}
		v.fileMu.Unlock()
	}
	for _, v := range c.release {
		v.fileMu.Lock()
		v.filesGone = true
		if err := s.disk.removeMeta(v.id, v.version, false); err != nil {
			s.log.Warn("cache: deleting version", "key", v.key, "error", err)
		}
		if err := s.disk.removeData(v.id, v.version); err != nil {
			s.log.Warn("cache: deleting version", "key", v.key, "error", err)
		}
		v.fileMu.Unlock()
	}
}

// dropLocked takes v out of the index (purge, replacement, eviction,
// corruption, failed fill). Its files are withdrawn at once and deleted,
// with its memory chunks, when the last reader closes and its fill ends.
func (s *Store) dropLocked(v *version, c *cleanup) {
	if v.dead.Load() {
		return
	}
	v.dead.Store(true)
	if o := s.objects[v.key]; o != nil {
		if o.current == v {
			o.current = nil
		}
		if o.fill != nil && o.fill.v == v {
			o.fill = nil
		}
		if o.current == nil && o.fill == nil {
			delete(s.objects, v.key)
		}
	}
	if v.complete {
		s.stats.Objects--
		s.stats.Chunks -= int64(len(v.sums))
	}
	if v.diskElem != nil {
		s.diskLRU.Remove(v.diskElem)
		v.diskElem = nil
	}
	s.diskBytes -= v.diskBytes
	v.diskBytes = 0
	if v.complete && !v.memOnly {
		c.withdraw = append(c.withdraw, v)
	}
	s.maybeReleaseLocked(v, c)
}

// maybeReleaseLocked frees a dropped version once nobody can read it.
func (s *Store) maybeReleaseLocked(v *version, c *cleanup) {
	if !v.dead.Load() || v.released || v.refs.Load() > 0 || v.fill != nil {
		return
	}
	v.released = true
	if v.file != nil { // no send uses it (refs is 0): it closes now
		s.openFiles.Remove(verKey{v.id, v.version})
		c.closeFiles = append(c.closeFiles, v.file)
		v.file = nil
	}
	for i := range v.nChunks {
		k := chunkKey{v.id, v.version, i}
		if buf, ok := s.mem.Peek(k); ok {
			s.mem.Remove(k)
			s.memBytes -= int64(len(buf))
		}
	}
	delete(s.versions, verKey{v.id, v.version})
	if s.disk != nil { // also for memOnly versions: a failed fill may have left files
		c.release = append(c.release, v)
	}
}

// addChunkLocked puts a chunk buffer in the memory tier.
func (s *Store) addChunkLocked(v *version, index int, buf []byte, c *cleanup) {
	k := chunkKey{v.id, v.version, index}
	if old, ok := s.mem.Peek(k); ok {
		s.memBytes -= int64(len(old))
	}
	s.mem.Add(k, buf)
	s.memBytes += int64(len(buf))
	v.nChunks = max(v.nChunks, index+1)
	s.evictMemLocked(c)
}

// evictMemLocked evicts the least recently used chunks until the memory
// tier fits its bound. With a disk tier the chunk stays on disk. Without
// one (or for a version whose disk writes failed), evicting a chunk loses
// its version, so chunks of versions being
// filled or read are skipped (they are needed now; the bound may be
// exceeded by what is in use) and the whole version of an evicted chunk is
// dropped.
func (s *Store) evictMemLocked(c *cleanup) {
	skipped := 0
	for s.memBytes > s.opts.MemoryBytes && skipped < s.mem.Len() {
		k, buf, ok := s.mem.GetOldest()
		if !ok {
			return
		}
		if v := s.versions[verKey{k.id, k.version}]; v != nil && v.memOnly {
			if v.refs.Load() > 0 || v.fill != nil {
				s.mem.Get(k) // to the front: look further
				skipped++
				continue
			}
			s.mem.RemoveOldest()
			s.memBytes -= int64(len(buf))
			s.stats.Evictions++
			s.dropLocked(v, c)
			continue
		}
		s.mem.RemoveOldest()
		s.memBytes -= int64(len(buf))
		s.stats.Evictions++
	}
}

// evictDiskLocked evicts least recently used complete versions until the
// disk tier fits its bound. Fills in flight are not evictable; they are
// bounded by the object size limit.
func (s *Store) evictDiskLocked(c *cleanup) {
	for s.diskBytes > s.opts.DiskBytes {
		e := s.diskLRU.Back()
		if e == nil {
			return
		}
		v := e.Value.(*version)
		s.stats.Evictions += int64(len(v.sums))
		s.dropLocked(v, c)
	}
}

// touchLocked marks a version recently used for disk eviction.
func (s *Store) touchLocked(v *version) {
	if v.diskElem != nil {
		s.diskLRU.MoveToFront(v.diskElem)
	}
}

// releaseRef ends one reference to v taken under s.mu.
func (s *Store) releaseRef(v *version) {
	if v.refs.Add(-1) > 0 || !v.dead.Load() {
		return // still read, or live: nothing to free
	}
	s.mu.Lock()
	var c cleanup
	s.maybeReleaseLocked(v, &c)
	s.mu.Unlock()
	s.runCleanup(&c)
}

// corrupt drops a version whose stored chunk failed verification and
// returns the error for the reader.
func (s *Store) corrupt(v *version, index int, cause error) error {
	s.mu.Lock()
	s.stats.CorruptChunks++
	var c cleanup
	s.dropLocked(v, &c)
	s.mu.Unlock()
	s.runCleanup(&c)
	s.log.Error("cache: stored chunk failed verification; object dropped",
		"key", v.key, "version", v.version, "chunk", index, "error", cause)
	return fmt.Errorf("%w: chunk %d of %q: %v", ErrCorrupt, index, v.key, cause)
}

var errNoDisk = errors.New("chunk no longer in memory and no disk tier")
