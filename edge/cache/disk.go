package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// disk is the file layout of the disk tier (see doc.go for why it is crash
// safe). It knows paths and files, not the index: the Store decides what to
// write and delete. Create it with openDisk (the zero value is not
// usable). Its methods are safe for concurrent use on different versions;
// the Store serializes operations on one version (version.fileMu).
type disk struct {
	root    string   // Options.DiskPath
	objects string   // root/objects: 256 fan-out directories of version files
	lock    *os.File // root/LOCK, flock'ed while the store is open
	fsync   bool     // fsync data, metadata and directories at commit
	log     *slog.Logger
}

const (
	dataSuffix = ".data"
	metaSuffix = ".meta"
	tmpSuffix  = ".tmp"
)

// openDisk creates the layout under root if needed and takes its lock, so
// that two processes never share one cache directory.
func openDisk(root string, fsync bool, log *slog.Logger) (*disk, error) {
	d := &disk{root: root, objects: filepath.Join(root, "objects"), fsync: fsync, log: log}
	if err := os.MkdirAll(d.objects, 0o750); err != nil {
		return nil, fmt.Errorf("cache: creating disk tier %s: %w", root, err)
	}
	lock, err := os.OpenFile(filepath.Join(root, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cache: opening lock file in %s: %w", root, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("cache: disk tier %s is in use by another process: %w", root, err)
	}
	d.lock = lock
	for i := range 256 {
		if err := os.MkdirAll(d.fanDir(uint64(i)<<56), 0o750); err != nil {
			d.close()
			return nil, fmt.Errorf("cache: creating disk tier %s: %w", root, err)
		}
	}
	return d, nil
}

func (d *disk) close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing releases the flock
	d.lock = nil
	return err
}

// fanDir spreads versions over 256 directories by the top byte of the ID
// (xxhash is uniform) so no directory grows huge.
func (d *disk) fanDir(id uint64) string {
	return filepath.Join(d.objects, fmt.Sprintf("%02x", id>>56))
}

func (d *disk) base(id, version uint64) string {
	return filepath.Join(d.fanDir(id), fmt.Sprintf("%016x-%016x", id, version))
}

func (d *disk) dataPath(id, version uint64) string { return d.base(id, version) + dataSuffix }
func (d *disk) metaPath(id, version uint64) string { return d.base(id, version) + metaSuffix }

// createData creates the data file of a new version. O_EXCL: versions are
// unique, so an existing file is a bug or a foreign file, never ours to reuse.
func (d *disk) createData(id, version uint64) (*os.File, error) {
	f, err := os.OpenFile(d.dataPath(id, version), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cache: creating data file: %w", err)
	}
	return f, nil
}

// finishData makes the data file durable before its metadata can name it.
func (d *disk) finishData(f *os.File) error {
	if d.fsync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("cache: syncing %s: %w", f.Name(), err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cache: closing %s: %w", f.Name(), err)
	}
	return nil
}

// writeMeta publishes metadata atomically: a reader of the directory (the
// next Open, after any crash) sees the old file, the new file or none, never
// a mix. It returns the file's size.
func (d *disk) writeMeta(m *meta) (int64, error) {
	b := encodeMeta(m)
	final := d.metaPath(m.id, m.version)
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, fmt.Errorf("cache: writing metadata: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && d.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil && d.fsync {
		err = syncDir(filepath.Dir(final))
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("cache: writing metadata %s: %w", final, err)
	}
	return int64(len(b)), nil
}

// removeMeta withdraws a version: once its metadata is gone it is never
// served again, even after a crash (Open deletes data files without one).
// sync makes the withdrawal durable across a power loss (purges).
func (d *disk) removeMeta(id, version uint64, sync bool) error {
	p := d.metaPath(id, version)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: removing %s: %w", p, err)
	}
	if sync && d.fsync {
		return syncDir(filepath.Dir(p))
	}
	return nil
}

func (d *disk) removeData(id, version uint64) error {
	p := d.dataPath(id, version)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: removing %s: %w", p, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// recovered is one committed version found on disk by scan.
type recovered struct {
	m                    *meta
	dataBytes, metaBytes int64
}

// scan rebuilds the index from the directory after a restart or a crash.
// It reads only metadata files (chunks are verified lazily on read) and
// deletes whatever a crash can leave behind: data files without committed
// metadata (fills in flight, purges not finished), temporary metadata files,
// metadata that fails its checksum or does not match its data file, and
// older versions of a key whose newer version was committed.
func (d *disk) scan() ([]recovered, error) {
	byKey := make(map[string]recovered)
	for i := range 256 {
		dir := d.fanDir(uint64(i) << 56)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("cache: scanning %s: %w", dir, err)
		}
		datas := make(map[string]bool) // base names of data files
		metas := make(map[string]bool)
		for _, e := range entries {
			name := e.Name()
			switch {
			case strings.HasSuffix(name, tmpSuffix):
				d.remove(filepath.Join(dir, name), "unfinished metadata")
			case strings.HasSuffix(name, dataSuffix):
				datas[strings.TrimSuffix(name, dataSuffix)] = true
			case strings.HasSuffix(name, metaSuffix):
				metas[strings.TrimSuffix(name, metaSuffix)] = true
			default:
				d.log.Warn("cache: ignoring unknown file in disk tier", "path", filepath.Join(dir, name))
			}
		}
		for base := range metas {
			r, err := d.load(dir, base, datas[base])
			if err != nil {
				d.log.Warn("cache: dropping stored version", "path", filepath.Join(dir, base), "error", err)
				d.remove(filepath.Join(dir, base+metaSuffix), "bad metadata")
				continue
			}
			delete(datas, base)
			if old, ok := byKey[r.m.key]; ok {
				if old.m.version > r.m.version {
					old, r = r, old
				}
				d.dropVersion(old.m.id, old.m.version, "replaced by a newer version")
			}
			byKey[r.m.key] = r
		}
		for base := range datas {
			d.remove(filepath.Join(dir, base+dataSuffix), "uncommitted data")
		}
	}
	out := make([]recovered, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, r)
	}
	return out, nil
}

// load reads and checks one version's metadata against its file name and
// its data file's length.
func (d *disk) load(dir, base string, hasData bool) (recovered, error) {
	id, version, ok := parseBase(base)
	if !ok {
		return recovered{}, fmt.Errorf("%w: file name is not <id>-<version>", errMeta)
	}
	b, err := os.ReadFile(filepath.Join(dir, base+metaSuffix))
	if err != nil {
		return recovered{}, err
	}
	m, err := decodeMeta(b)
	if err != nil {
		return recovered{}, err
	}
	if m.id != id || m.version != version || d.fanDir(id) != dir {
		return recovered{}, fmt.Errorf("%w: content names %016x-%016x", errMeta, m.id, m.version)
	}
	if !hasData {
		return recovered{}, errors.New("data file missing")
	}
	st, err := os.Stat(filepath.Join(dir, base+dataSuffix))
	if err != nil {
		return recovered{}, err
	}
	if st.Size() != m.size {
		d.remove(filepath.Join(dir, base+dataSuffix), "data length does not match metadata")
		return recovered{}, fmt.Errorf("data file holds %d bytes, metadata says %d", st.Size(), m.size)
	}
	return recovered{m: m, dataBytes: st.Size(), metaBytes: int64(len(b))}, nil
}

func parseBase(base string) (id, version uint64, ok bool) {
	a, b, found := strings.Cut(base, "-")
	if !found || len(a) != 16 || len(b) != 16 {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 16, 64)
	version, err2 := strconv.ParseUint(b, 16, 64)
	return id, version, err1 == nil && err2 == nil
}

// dropVersion deletes a version's files, metadata first so that a crash in
// between leaves only an orphan data file, which the next scan deletes.
func (d *disk) dropVersion(id, version uint64, why string) {
	if err := d.removeMeta(id, version, false); err != nil {
		d.log.Warn("cache: dropping version", "reason", why, "error", err)
		return
	}
	if err := d.removeData(id, version); err != nil {
		d.log.Warn("cache: dropping version", "reason", why, "error", err)
	}
}

func (d *disk) remove(path, why string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("cache: cleaning disk tier", "path", path, "reason", why, "error", err)
		return
	}
	d.log.Debug("cache: cleaned disk tier", "path", path, "reason", why)
}
