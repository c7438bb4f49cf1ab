package coordinator

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerassist/edgebox/region"
)

// npmPackages makes sure testdata/npm/node_modules holds exactly what
// package-lock.json says (npm ci, once per lock file) and returns the node
// binary. Without node it skips, unless CI=true, where it fails.
func npmPackages(t *testing.T, dir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	var npm string
	if err == nil {
		npm, err = exec.LookPath("npm")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but node/npm are missing (%v): the interoperability test with real npm clients must run in CI", err)
		}
		t.Skipf("skipping: node and npm are needed to run the real npm clients (%v)", err)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", ".edgebox-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return node
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// --ignore-scripts: a transitive dependency (node-datachannel) tries to
	// build native code we do not use; @roamhq/wrtc ships its binary as a
	// package.
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
		t.Skipf("skipping: npm ci in %s failed (no registry access?): %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	return node
}

type nodeEvent struct {
	Name       string `json:"name"`
	Event      string `json:"event"`
	Peer       string `json:"peer"`
	Peers      int    `json:"peers"`
	Message    string `json:"message"`
	Complete   *int   `json:"complete"`
	Incomplete *int   `json:"incomplete"`
	Session    string `json:"session"`
}

// nodeClient runs one testdata/npm/interop.mjs process.
type nodeClient struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []nodeEvent
	done   chan struct{}
	err    error
}

func startNode(t *testing.T, node, url, lib, name, swarm string) *nodeClient {
	t.Helper()
	nc := &nodeClient{name: name, done: make(chan struct{})}
	nc.cmd = exec.Command(node, "interop.mjs", url, lib, name, swarm, "1")
	nc.cmd.Dir = "testdata/npm"
	nc.cmd.Stderr = &logWriter{t: t, prefix: name + " stderr: "}
	stdin, err := nc.cmd.StdinPipe() // closed at cleanup: the client leaves
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := nc.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev nodeEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				nc.mu.Lock()
				nc.events = append(nc.events, ev)
				nc.mu.Unlock()
			}
		}
		nc.err = nc.cmd.Wait()
		close(nc.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-nc.done:
		case <-time.After(5 * time.Second):
			nc.cmd.Process.Kill()
			<-nc.done
		}
	})
	return nc
}

func (nc *nodeClient) waitEvent(t *testing.T, event string, timeout time.Duration) nodeEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		nc.mu.Lock()
		for _, ev := range nc.events {
			if ev.Event == event {
				nc.mu.Unlock()
				return ev
			}
		}
		nc.mu.Unlock()
		select {
		case <-nc.done:
			// Look once more, then give up.
			nc.mu.Lock()
			for _, ev := range nc.events {
				if ev.Event == event {
					nc.mu.Unlock()
					return ev
				}
			}
			nc.mu.Unlock()
			t.Fatalf("%s exited (%v) without %q; events: %+v", nc.name, nc.err, event, nc.events)
		case <-time.After(20 * time.Millisecond):
		}
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	t.Fatalf("%s: no %q within %v; events: %+v", nc.name, event, timeout, nc.events)
	return nodeEvent{}
}

type logWriter struct {
	t      *testing.T
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimSpace(string(p)))
	return len(p), nil
}

// p2pmlInfoHash is p2p-media-loader-core's info_hash for a stream swarm ID:
// base64 of the first 15 bytes of its SHA-1 (20 ASCII characters).
func p2pmlInfoHash(streamSwarmID string) []byte {
	sum := sha1.Sum([]byte(streamSwarmID))
	return []byte(base64.StdEncoding.EncodeToString(sum[:15]))
}

// TestNPMClientsInteroperate runs real clients from npm against the edge:
// two bittorrent-tracker clients and one p2p-media-loader-core tracker
// client join one swarm, get each other's offers and answers through the
// coordinator, and open real WebRTC data channels (libwebrtc via
// @roamhq/wrtc) over loopback.
func TestNPMClientsInteroperate(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the npm interoperability test in -short mode")
	}
	node := npmPackages(t, "testdata/npm")
	loopback := func(a netip.Addr) region.Locality {
		if !a.Is4() || a.As4()[0] != 127 {
			return region.Locality{}
		}
		return region.Locality{Known: true, Region: "paris", ISP: "orange", ASN: 1,
			Subnet: netip.PrefixFrom(a, 24).Masked()}
	}
	e := startEdge(t, testConfig(), func(o *Options) { o.Locator = LocatorFunc(loopback) })

	stream := "https://video.example/live/master.m3u8-main-0"
	swarmHex := hex.EncodeToString(p2pmlInfoHash(stream))

	var all []*nodeClient
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, nc := range all {
			nc.mu.Lock()
			for _, ev := range nc.events {
				t.Logf("%s: %+v (complete %v incomplete %v)", nc.name, ev, deref(ev.Complete), deref(ev.Incomplete))
			}
			nc.mu.Unlock()
		}
		t.Logf("coordinator: swarms %+v, offers relayed %d, answers relayed %d, rejected %v", e.co.Swarms(),
			e.co.tel.offers.Load(), e.co.tel.answers.Load(), rejectedCounts(e.co))
	})
	a := startNode(t, node, e.url, "bittorrent-tracker", "A", swarmHex)
	all = append(all, a)
	if ev := a.waitEvent(t, "announced", 20*time.Second); ev.Session == "" {
		t.Errorf("A's announce reply carried no x_session: %+v", ev)
	}
	b := startNode(t, node, e.url, "bittorrent-tracker", "B", swarmHex)
	all = append(all, b)
	b.waitEvent(t, "announced", 20*time.Second)
	c := startNode(t, node, e.url, "p2p-media-loader", "C", stream)
	all = append(all, c)
	if ev := c.waitEvent(t, "announced", 20*time.Second); ev.Incomplete == nil || *ev.Incomplete != 3 {
		t.Errorf("C's announce reply: incomplete %v, want 3", deref(ev.Incomplete))
	}
	for _, nc := range []*nodeClient{a, b, c} {
		nc.waitEvent(t, "connected", 40*time.Second)
	}
	if ev := a.waitEvent(t, "scrape", 10*time.Second); ev.Incomplete == nil || *ev.Incomplete < 1 {
		t.Errorf("A's scrape: %+v", ev)
	}
	for _, nc := range []*nodeClient{a, b, c} {
		nc.waitEvent(t, "done", 10*time.Second)
		nc.mu.Lock()
		for _, ev := range nc.events {
			if ev.Event == "warning" || ev.Event == "error" {
				t.Logf("%s %s: %s", nc.name, ev.Event, ev.Message)
			}
		}
		nc.mu.Unlock()
	}
	if o, an := e.co.tel.offers.Load(), e.co.tel.answers.Load(); o < 2 || an < 2 {
		t.Errorf("relayed %d offers and %d answers, want at least 2 each", o, an)
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func rejectedCounts(co *Coordinator) map[string]int64 {
	out := map[string]int64{}
	for i := range co.tel.rejected {
		if n := co.tel.rejected[i].Load(); n > 0 {
			out[reasonNames[i]] = n
		}
	}
	return out
}
