package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
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

func TestStartFailsCleanly(t *testing.T) {
	cfg := DemoConfig("http://127.0.0.1:1", "127.0.0.1:0")
	cfg.AdminListen = "256.0.0.1:1" // cannot listen
	if a, err := Start(&cfg, Options{}); err == nil || a != nil {
		t.Fatalf("Start = %v, %v; want an error", a, err)
	} else if !strings.Contains(err.Error(), "admin_listen") {
		t.Errorf("error %q does not name admin_listen", err)
	}
}
