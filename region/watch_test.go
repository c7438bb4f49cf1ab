package region

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
)

// rewrite replaces a file's content and moves its mtime forward, as a
// download-and-rename would.
func rewrite(t *testing.T, path, content string, at time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, at, at); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond for up to 10 s (the watcher polls every 100 ms).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.tsv")
	base := time.Now().Add(-time.Hour)
	rewrite(t, path, "1.0.0.0\t1.0.0.255\t100\tZZ\tFIRST\n", base)
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r1", ASNs: []config.ASNDef{{ASN: 100}}}, {Name: "r2", ASNs: []config.ASNDef{{ASN: 200}}}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	ip := netip.MustParseAddr("1.0.0.1")
	region := func() string { return l.Locate(ip).Region }

	// Interval 0: a changed file is not picked up until a reload enables
	// watching.
	rewrite(t, path, "1.0.0.0\t1.0.0.255\t200\tZZ\tSECOND\n", base.Add(time.Second))
	time.Sleep(150 * time.Millisecond)
	if got := region(); got != "r1" {
		t.Fatalf("with watching off, region = %q, want r1 until a reload", got)
	}
	cfg.WatchInterval = config.Duration(100 * time.Millisecond)
	if err := l.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := region(); got != "r2" {
		t.Fatalf("after Reload, region = %q, want r2", got)
	}

	rewrite(t, path, "1.0.0.0\t1.0.0.255\t100\tZZ\tTHIRD\n", base.Add(2*time.Second))
	eventually(t, "the watcher to load the changed file", func() bool { return region() == "r1" })

	failures := l.reloads[1].Load()
	rewrite(t, path, "1.0.0.0\tbroken\n", base.Add(3*time.Second))
	eventually(t, "a failed reload of the malformed file", func() bool { return l.reloads[1].Load() > failures })
	time.Sleep(400 * time.Millisecond) // a failed version is not retried
	if got, n := region(), l.reloads[1].Load(); got != "r1" || n != failures+1 {
		t.Errorf("after a malformed file: region %q, failures %d; want r1 kept, exactly one more failure", got, n-failures)
	}

	os.Remove(path)
	eventually(t, "a failed reload of the missing file", func() bool { return l.reloads[1].Load() > failures+1 })
	if got := region(); got != "r1" {
		t.Errorf("after the file vanished: region %q, want r1 kept", got)
	}

	rewrite(t, path, "1.0.0.0\t1.0.0.255\t200\tZZ\tFOURTH\n", base.Add(4*time.Second))
	eventually(t, "the repaired file to load", func() bool { return region() == "r2" })
}
