package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild() // never returns
	}
	goleak.VerifyTestMain(m)
}

// content returns n bytes determined by key alone, so that a test (or the
// parent of a crashed child) can check any object it finds.
func content(key string, n int64) []byte {
	seed := sha256.Sum256([]byte(key))
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts, err)
	}
	return s
}

// fillObject stores body under key in pieces of pieceBytes, declaring its
// size or not.
func fillObject(t testing.TB, s *Store, key string, body []byte, knownSize bool, pieceBytes int) ObjectInfo {
	t.Helper()
	size := int64(len(body))
	if !knownSize {
		size = -1
	}
	f, leader := s.StartFill(key, size, 0, []byte("meta:"+key))
	if !leader {
		t.Fatalf("StartFill(%q): leader = false, want true", key)
	}
	if err := writePieces(f, body, pieceBytes); err != nil {
		t.Fatalf("fill %q: Write: %v", key, err)
	}
	if err := f.Commit(); err != nil {
		t.Fatalf("fill %q: Commit: %v", key, err)
	}
	return f.Info()
}

func writePieces(w io.Writer, body []byte, pieceBytes int) error {
	for len(body) > 0 {
		n := min(pieceBytes, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// readRange reads [off, off+n) of a version with NextChunk.
func readRange(s *Store, info ObjectInfo, off, n int64) ([]byte, error) {
	r, err := s.NewReader(context.Background(), info.ID, info.Version, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	for {
		b, err := r.NextChunk()
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		out.Write(b)
	}
}

func chunkSums(body []byte, chunkBytes int) [][32]byte {
	var sums [][32]byte
	for off := 0; off < len(body); off += chunkBytes {
		sums = append(sums, sha256.Sum256(body[off:min(off+chunkBytes, len(body))]))
	}
	return sums
}

// versionFiles lists the files of the disk tier (data and metadata).
func versionFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readFileRange reads [off, off+n) of a version (n < 0: to the end) through
// OpenFile, as the HTTP layer's sendfile path does.
func readFileRange(s *Store, info ObjectInfo, off, n int64) ([]byte, error) {
	if n < 0 {
		n = info.Size - off
	}
	f, err := s.OpenFile(context.Background(), info.ID, info.Version, off, n)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
