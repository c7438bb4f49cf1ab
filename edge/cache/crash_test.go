package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The crash test re-executes the test binary as a child that fills objects
// without pause; the parent kills it with SIGKILL at a random moment,
// reopens the store and checks that everything it serves is exactly right.

const (
	crashChildEnv  = "EDGEBOX_CACHE_CRASH_CHILD" // the store directory
	crashSeedEnv   = "EDGEBOX_CACHE_CRASH_SEED"
	crashBigEnv    = "EDGEBOX_CACHE_CRASH_BIG_FIRST" // begin with a 64 MiB fill
	crashBigBytes  = 64 << 20
	crashSmallKeys = 120
	crashMemBytes  = 16 << 20
	crashDiskBytes = 1 << 30 // nothing is evicted: every commit must survive
)

// crashSize is the size of a key's object: fixed by the key, so that a
// truncated object can never pass for a complete one.
func crashSize(key string) int64 {
	if strings.HasPrefix(key, "big-") {
		return crashBigBytes
	}
	return int64(xxhash.Sum64String(key) % (700 << 10))
}

func crashOptions(dir string) Options {
	return Options{ChunkBytes: 64 << 10, MemoryBytes: crashMemBytes, DiskPath: dir, DiskBytes: crashDiskBytes, Logger: quietLogger()}
}

// crashChild runs in the child process: it fills, refills and purges
// objects until it is killed, reporting each completed step on stdout.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	s, err := Open(crashOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	report := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	report("ready")
	rng := rand.New(rand.NewPCG(seed, 7))
	deadline := time.Now().Add(time.Minute) // the parent is gone: stop
	for i := 0; time.Now().Before(deadline); i++ {
		var key string
		switch p := rng.IntN(100); {
		case p < 8 || (i == 0 && os.Getenv(crashBigEnv) != ""):
			key = fmt.Sprintf("big-%d", rng.IntN(2))
		case p < 15:
			key = fmt.Sprintf("small-%d", rng.IntN(crashSmallKeys))
			s.Purge(key)
			report("purged %s", key)
			continue
		default:
			key = fmt.Sprintf("small-%d", rng.IntN(crashSmallKeys))
		}
		size := crashSize(key)
		body := content(key, size)
		declared := size
		if rng.IntN(2) == 0 {
			declared = -1
		}
		report("start %s", key)
		f, leader := s.StartFill(key, declared, 0, []byte(key))
		if !leader {
			continue
		}
		if err := writePieces(f, body, 1+rng.IntN(100<<10)); err != nil {
			fmt.Fprintln(os.Stderr, "child: write:", err)
			os.Exit(2)
		}
		if err := f.Commit(); err != nil {
			fmt.Fprintln(os.Stderr, "child: commit:", err)
			os.Exit(2)
		}
		report("committed %s", key)
	}
	os.Exit(0)
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	rounds := 6
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	// state holds what the child reported before it died: "committed" keys
	// must be served, "purged" ones must not.
	state := map[string]string{}
	served := 0
	for round := range rounds {
		// Kill at any moment, or just after the child began its first
		// (64 MiB) fill, or soon after it committed it.
		trigger, bigFirst := "ready", false
		killAfter := time.Duration(rng.IntN(1000)) * time.Millisecond
		switch round % 3 {
		case 1:
			trigger, bigFirst = "start big-", true
			killAfter = time.Duration(rng.IntN(150)) * time.Millisecond
		case 2:
			trigger, bigFirst = "committed big-", true
			killAfter = time.Duration(rng.IntN(300)) * time.Millisecond
		}
		lines := runAndKill(t, dir, round, bigFirst, trigger, killAfter)
		inFlight := ""
		for _, l := range lines {
			op, key, _ := strings.Cut(l, " ")
			switch op {
			case "start":
				inFlight = key
			case "committed", "purged":
				state[key] = op
				inFlight = ""
			}
		}
		n := checkAfterCrash(t, dir, state)
		served += n
		t.Logf("round %d: killed %v after %q, in the fill of %q; %d steps reported; %d objects verified",
			round, killAfter, trigger, inFlight, len(lines), n)
		if t.Failed() {
			return
		}
	}
	if served == 0 {
		t.Error("no object survived any round: the child never committed anything")
	}
}

// runAndKill starts a child filling the store in dir and SIGKILLs it
// killAfter after it reported a line starting with trigger ("ready": the
// store is open). bigFirst makes its first fill a 64 MiB one. It returns
// the child's report lines.
func runAndKill(t *testing.T, dir string, round int, bigFirst bool, trigger string, killAfter time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashSeedEnv+"="+strconv.Itoa(round))
	if bigFirst {
		cmd.Env = append(cmd.Env, crashBigEnv+"=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	linesc := make(chan []string)
	ready := make(chan struct{})
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		signaled := false
		for sc.Scan() {
			if sc.Text() != "ready" {
				lines = append(lines, sc.Text())
			}
			if !signaled && strings.HasPrefix(sc.Text(), trigger) {
				close(ready)
				signaled = true
			}
		}
		io.Copy(io.Discard, stdout)
		linesc <- lines
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Errorf("round %d: the child never reported %q", round, trigger)
	}
	time.Sleep(killAfter)
	cmd.Process.Signal(syscall.SIGKILL)
	lines := <-linesc
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child exited on its own (%v) instead of being killed; stderr:\n%s", err, stderr.String())
	}
	return lines
}

// checkAfterCrash reopens the store and checks every object it serves.
func checkAfterCrash(t *testing.T, dir string, state map[string]string) int {
	t.Helper()
	s, err := Open(crashOptions(dir))
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	defer s.Close()
	keys := []string{"big-0", "big-1"}
	for i := range crashSmallKeys {
		keys = append(keys, fmt.Sprintf("small-%d", i))
	}
	found := 0
	for _, key := range keys {
		info, err := s.Lookup(key)
		switch {
		case err != nil && state[key] == "committed":
			t.Errorf("%s: reported committed before the kill, Lookup after restart: %v", key, err)
			continue
		case err != nil:
			continue
		case state[key] == "purged":
			t.Errorf("%s: reported purged before the kill, but served after restart", key)
		}
		found++
		want := content(key, crashSize(key))
		if info.Size != int64(len(want)) || !info.Complete || string(info.HTTP) != key {
			t.Errorf("%s: Lookup = size %d complete %v http %q, want %d true %q", key, info.Size, info.Complete, info.HTTP, len(want), key)
			continue
		}
		r, err := s.NewReader(context.Background(), info.ID, info.Version, 0, -1)
		if err != nil {
			t.Errorf("%s: NewReader: %v", key, err)
			continue
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes, err %v; want the %d bytes written", key, len(got), err, len(want))
		}
		// The sendfile path verifies the chunks on disk on its own (the ends
		// of a big object only: hashing 64 MiB under -race is slow).
		for _, r := range [][2]int64{{0, min(info.Size, 1<<20)}, {max(0, info.Size-1<<20), info.Size}} {
			got, err = readFileRange(s, info, r[0], r[1]-r[0])
			if err != nil || !bytes.Equal(got, want[r[0]:r[1]]) {
				t.Errorf("%s: read [%d,%d) through OpenFile: %d bytes, %v; want the bytes written", key, r[0], r[1], len(got), err)
			}
		}
	}
	if st := s.Stats(); st.Objects != int64(found) || st.CorruptChunks != 0 {
		t.Errorf("Stats() = %+v, want %d objects and no corrupt chunk", st, found)
	}
	// Recovery left only committed versions: one data and one metadata file each.
	if files := versionFiles(t, dir); len(files) != 2*found {
		t.Errorf("%d files on disk after recovery, want %d", len(files), 2*found)
	}
	return found
}
