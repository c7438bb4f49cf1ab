package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/policy"
	"github.com/peerassist/edgebox/peerassist/signal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"), // http.Client keep-alives closed below
	)
}

// TestDemo runs what `edge --demo` runs and checks it as a newcomer would.
func TestDemo(t *testing.T) {
	o, err := StartDemoOrigin(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	cfg := DemoConfig(o.URL(), "127.0.0.1:0")
	cfg.AdminListen = "127.0.0.1:0"
	a, err := Start(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	get := func(url string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i] == "Host" {
				req.Host = hdr[i+1]
				continue
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	u := a.URL()
	tests := []struct {
		name, path string
		hdr        []string
		status     int
		want       string // in Cache-Status, or in the body
	}{
		{"miss", "/bytes/65536", nil, 200, "fwd=uri-miss"},
		{"hit", "/bytes/65536", nil, 200, "hit"},
		{"range hit", "/bytes/65536", []string{"Range", "bytes=10-19"}, 206, "hit"},
		{"player page", "/", nil, 200, "<video"},
		{"bundle", "/pa/v1/peerassist.js", nil, 200, "PeerAssist"},
		{"whoami", "/pa/v1/whoami", nil, 200, `"region":"demo"`},
		{"manifest", "/pa/v1/manifest?url=/bytes/65536", nil, 200, `"sha256":["`},
		{"playlist", "/vod/sample/master.m3u8", nil, 200, "#EXTM3U"},
		{"unknown host refused", "/bytes/10", []string{"Host", "evil.example"}, 421, "no site"},
	}
	for _, tt := range tests {
		resp, body := get(u+tt.path, tt.hdr...)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, resp.StatusCode, tt.status, body)
			continue
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs+body, tt.want) {
			t.Errorf("%s: Cache-Status %q and body lack %q", tt.name, cs, tt.want)
		}
	}
	if resp, body := get("http://" + a.AdminAddr + "/metrics"); resp.StatusCode != 404 {
		t.Errorf("admin /metrics without a handler: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("http://" + a.AdminAddr + "/healthz"); resp.StatusCode != 200 {
		t.Errorf("admin /healthz: %d", resp.StatusCode)
	}
	if a.Coordinator == nil || a.Policy == nil {
		t.Error("the demo runs without the coordinator or the policy loop")
	}
}

func TestReloadKeepsServing(t *testing.T) {
	o, err := StartDemoOrigin(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	cfg := DemoConfig(o.URL(), "127.0.0.1:0")
	cfg.AdminListen = ""
	a, err := Start(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	next := DemoConfig(o.URL(), "127.0.0.1:0")
	next.AdminListen = ""
	next.Sites[0].Hosts = []string{"only.example"}
	if err := a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(a.URL() + "/bytes/10")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 421 {
		t.Errorf("after reload to other hosts: %d, want 421", resp.StatusCode)
	}
	if a.Config() != &next {
		t.Error("Config() is not the reloaded configuration")
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestReloadLogsWhatChanged: the reload's info line names the settings
// that changed, and says so when none did (the region tables are read
// again all the same).
func TestReloadLogsWhatChanged(t *testing.T) {
	o := startTestOrigin(t)
	var logs syncBuffer
	cfg := testConfig(o)
	a, err := Start(&cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	same := testConfig(o)
	if err := a.Reload(&same); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="edge: reload complete" file="" changed="no setting; region tables re-read"`) {
		t.Errorf("reload of the same configuration logged:\n%s", logs.String())
	}
	other := testConfig(o)
	other.Sites[0].Hosts = []string{"only.example"}
	if err := a.Reload(&other); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `changed=sites`) {
		t.Errorf("reload with other hosts logged:\n%s", logs.String())
	}
}

func TestStartFailsCleanly(t *testing.T) {
	cfg := DemoConfig("http://127.0.0.1:1", "127.0.0.1:0")
	cfg.AdminListen = "256.0.0.1:1" // cannot listen
	if a, err := Start(&cfg, Options{}); err == nil || a != nil {
		t.Fatalf("Start = %v, %v; want an error", a, err)
	} else if !strings.Contains(err.Error(), "admin_listen") {
		t.Errorf("error %q does not name admin_listen", err)
	}
}

// TestReloadPolicyAndPeerAssist is what an operator does on a running box:
// a SIGHUP-style Reload with a lower policy.ebu_cap and a lower
// peer_assist rate limit. The next policy tick stops the viewer drawing
// from the edge (429 with X-PA-Use-Peers, an x_policy on its socket), the
// live signaling socket is held to the new rate, and no socket or HTTP
// connection was closed by the reload.
func TestReloadPolicyAndPeerAssist(t *testing.T) {
	o := startTestOrigin(t)
	var logs syncBuffer
	cfg := testConfig(o)
	cfg.Sites[0].PeerAssist.BitrateBps = 0 // the basic floor: 30 KB/s
	cfg.Policy.EdgeCapacityBps = 1_000_000_000
	cfg.Policy.EBUCap = 1
	// The test ticks the loop itself: the running one only takes its
	// baseline.
	cfg.Policy.Tick, cfg.Policy.StopHold = config.Duration(time.Hour), config.Duration(time.Hour)
	a, err := Start(&cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())

	// A viewer: a signaling socket in a swarm, and its session's HTTP
	// requests on one keep-alive connection.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.Addr+"/pa/v1/announce", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	msgs := make(chan *signal.Response, 64)
	go func() {
		defer close(msgs)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var r signal.Response
			if signal.ParseResponse(data, &r) == nil {
				msgs <- &r
			}
		}
	}()
	next := func(kind signal.Kind) *signal.Response {
		t.Helper()
		for {
			select {
			case r, ok := <-msgs:
				if !ok {
					t.Fatalf("the signaling socket closed, waiting for %v", kind)
				}
				if r.Kind == kind {
					return r
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %v message", kind)
			}
		}
	}
	var peerID, infoHash signal.ID
	copy(peerID[:], "-GO0001-reloadtest01")
	copy(infoHash[:], "reload-test-swarm-01")
	join := signal.Request{Action: signal.ActionAnnounce, InfoHash: infoHash, PeerID: peerID, Event: signal.EventStarted,
		NumWant: 0, Left: -1, Uploaded: 0, Downloaded: 0, Have: -1, Offers: []signal.Offer{}}
	if err := ws.WriteMessage(websocket.TextMessage, join.AppendJSON(nil)); err != nil {
		t.Fatal(err)
	}
	session := next(signal.KindAnnounce).Session
	if session == "" {
		t.Fatal("no x_session")
	}
	var dials atomic.Int32
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	defer client.CloseIdleConnections()
	fetch := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", a.URL()+"/bytes/4194304", nil)
		req.Header.Set(edge.SessionHeader, session)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// tick runs a policy tick at least 100 ms after the last one: 4 MiB in
	// 100 ms is 0.34 of the 1 Gbit/s capacity, in 30 s still 0.001.
	last := time.Now()
	tick := func() *policy.Decision {
		t.Helper()
		time.Sleep(time.Until(last.Add(100 * time.Millisecond)))
		last = time.Now()
		for {
			if d := a.Policy.Tick(last); d != nil {
				return d
			}
			// That was the baseline (the loop's own had not run yet).
		}
	}
	tick()
	if resp := fetch(); resp.StatusCode != 200 {
		t.Fatalf("before the reload: %d", resp.StatusCode)
	}
	if d := tick(); d.StopK != 0 || d.Cap != 1 || !(d.EBU > 0.001) {
		t.Fatalf("before the reload: EBU %g, cap %g, %d stopped; want EBU over 0.001 under the cap 1, no stop", d.EBU, d.Cap, d.StopK)
	}
	if resp := fetch(); resp.StatusCode != 200 {
		t.Fatalf("before the reload: %d", resp.StatusCode)
	}

	// The operator edits the file and sends SIGHUP.
	reloaded := cfg
	reloaded.Sites = slices.Clone(cfg.Sites)
	reloaded.Policy.EBUCap = 0.001
	reloaded.PeerAssist.MessagesPerSecond = 0.5
	reloaded.PeerAssist.MessageBurst = 2
	reloaded.Listen = "127.0.0.1:1" // changes only on restart
	if err := a.Reload(&reloaded); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for _, want := range []string{"setting=listen", "policy.ebu_cap", "peer_assist.messages_per_second", "peer_assist.message_burst"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the reload's log lacks %q:\n%s", want, logs.String())
		}
	}
	if d := tick(); d.Cap != 0.001 || d.StopK != 1 || !d.Sessions[0].Stopped {
		t.Fatalf("after the reload: cap %g, %d stopped (%+v); want the session stopped under the cap 0.001", d.Cap, d.StopK, d.Sessions)
	}
	for p := next(signal.KindPolicy); p.Policy == nil || !p.Policy.UsePeers; p = next(signal.KindPolicy) {
		// Earlier ticks' pushes: the stop's comes next.
	}
	// A stopped viewer keeps its floor (30 KB/s, saved up for a second):
	// one response, then 429s.
	fetch()
	if resp := fetch(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(edge.UsePeersHeader) != "1" {
		t.Errorf("after the reload: %d %q, want 429 with %s: 1", resp.StatusCode, resp.Header.Get(edge.UsePeersHeader), edge.UsePeersHeader)
	}

	// The same socket, held to the new rate limit: a burst of 2, then
	// refusals naming the new rate.
	scrape := []byte(`{"action":"scrape","info_hash":"reload-test-swarm-01"}`)
	for range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, scrape); err != nil {
			t.Fatal(err)
		}
	}
	next(signal.KindScrape)
	next(signal.KindScrape)
	if r := next(signal.KindFailure); !strings.Contains(r.Failure, "at most 0.5 messages per second") {
		t.Errorf("third message after the reload: %q, want the new rate limit", r.Failure)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d HTTP connections, want the one kept alive across the reload", n)
	}
	if a.Addr == "127.0.0.1:1" || a.Config() != &reloaded {
		t.Errorf("Addr %s, Config() reloaded %v", a.Addr, a.Config() == &reloaded)
	}
}

// TestReloadInvalidKeepsRunning: a configuration with problems changes
// nothing, and the error names every problem.
func TestReloadInvalidKeepsRunning(t *testing.T) {
	o, err := StartDemoOrigin(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	cfg := DemoConfig(o.URL(), "127.0.0.1:0")
	cfg.AdminListen = ""
	a, err := Start(&cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	tests := []struct {
		name  string
		mod   func(*config.Config)
		wants []string
	}{
		{"policy and peer_assist", func(c *config.Config) { c.Policy.EBUCap = 0; c.PeerAssist.MaxOffers = 0 },
			[]string{"policy.ebu_cap", "peer_assist.max_offers"}},
		{"a site", func(c *config.Config) { c.Sites[0].PeerAssist.UploadFraction = 2 },
			[]string{"sites[0].peer_assist.upload_fraction"}},
		{"a region file that cannot be read", func(c *config.Config) {
			c.Region.Sources = []config.RegionSource{{Path: "/nonexistent/edgebox-test.tsv", Format: "tsv"}}
		}, []string{"/nonexistent/edgebox-test.tsv"}},
	}
	for _, tt := range tests {
		next := DemoConfig(o.URL(), "127.0.0.1:0")
		next.AdminListen = ""
		next.Sites[0].Hosts = []string{"only.example"}
		next.Policy.EBUCap = 0.5
		tt.mod(&next)
		err := a.Reload(&next)
		for _, want := range tt.wants {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Reload = %v, want an error naming %s", tt.name, err, want)
			}
		}
		if a.Config() != &cfg {
			t.Errorf("%s: Config() changed after a failed reload", tt.name)
		}
		resp, err := http.Get(a.URL() + "/bytes/10")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: the running site answers %d after a failed reload, want 200", tt.name, resp.StatusCode)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// startTestOrigin starts the demo origin for one test, quiet.
func startTestOrigin(t *testing.T) *demo.Server {
	t.Helper()
	o, err := StartDemoOrigin(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// testConfig is the demo configuration in front of o on a free port,
// without the admin listener.
func testConfig(o *demo.Server) config.Config {
	cfg := DemoConfig(o.URL(), "127.0.0.1:0")
	cfg.AdminListen = ""
	return cfg
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (slog
// handlers write from every goroutine).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestChangedSettings(t *testing.T) {
	tests := []struct {
		name             string
		mod              func(*config.Config)
		changed, restart string
	}{
		{"nothing", func(*config.Config) {}, "", ""},
		{"policy and peer_assist leaves", func(c *config.Config) {
			c.Policy.EBUCap, c.PeerAssist.MessageBurst = 0.2, 5
		}, "peer_assist.message_burst policy.ebu_cap", ""},
		{"lists as a whole", func(c *config.Config) {
			c.PeerAssist.AllowedOrigins = []string{"https://a.example"}
			c.Sites[0].PeerAssist.BitrateBps = 1
		}, "sites peer_assist.allowed_origins", ""},
		{"restart only", func(c *config.Config) {
			c.Listen, c.Cache.MemoryBytes, c.Telemetry.LogLevel, c.PeerAssist.Enabled = ":1", 1, "debug", false
		}, "listen cache.memory_bytes peer_assist.enabled telemetry.log_level",
			"listen cache.memory_bytes telemetry.log_level peer_assist.enabled"},
		{"event loops", func(c *config.Config) { c.EventLoops = 3 }, "event_loops", "event_loops"},
		{"reloadable cache and telemetry settings", func(c *config.Config) {
			c.Cache.DefaultTTL, c.Telemetry.AccessLog = config.Duration(time.Minute), true
		}, "cache.default_ttl telemetry.access_log", ""},
	}
	for _, tt := range tests {
		cur := DemoConfig("http://127.0.0.1:1", "127.0.0.1:0")
		next := DemoConfig("http://127.0.0.1:1", "127.0.0.1:0")
		next.Sites = slices.Clone(cur.Sites)
		tt.mod(&next)
		if got := strings.Join(changedSettings(&cur, &next), " "); got != tt.changed {
			t.Errorf("%s: changedSettings = %q, want %q", tt.name, got, tt.changed)
		}
		if got := strings.Join(restartOnly(&cur, &next), " "); got != tt.restart {
			t.Errorf("%s: restartOnly = %q, want %q", tt.name, got, tt.restart)
		}
	}
}
