package edge

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
)

func TestPurge(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config, _ *Options) {
		c.Sites[0].Hosts = []string{"video.example"}
	})
	get := func(path string) *response { return e.get(path, "Host", "video.example") }
	for _, p := range []string{"/bytes/100", "/bytes/101", "/bytes/102?b=2&a=1"} {
		get(p)
	}
	tests := []struct {
		name   string
		req    string
		status int
		purged int
	}{
		{"absolute url", "/purge?url=" + url.QueryEscape("http://video.example/bytes/100"), 200, 1},
		{"path with site", "/purge?site=demo&url=" + url.QueryEscape("/bytes/102?a=1&b=2"), 200, 1},
		{"path, one site", "/purge?url=/bytes/nothing", 200, 0},
		{"prefix", "/purge?prefix=" + url.QueryEscape("http://video.example/bytes/"), 200, 1},
		{"unknown host", "/purge?url=" + url.QueryEscape("http://other.example/bytes/1"), 400, 0},
		{"unknown site", "/purge?site=nope&url=/bytes/1", 400, 0},
		{"nothing", "/purge", 400, 0},
		{"both", "/purge?url=/a&prefix=/b", 400, 0},
		{"bad url", "/purge?url=ftp%3A%2F%2Fx%2F", 400, 0},
	}
	for _, tt := range tests {
		r := e.adminDo("POST", tt.req)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.status, r.body)
			continue
		}
		if tt.status != 200 {
			var fail struct{ Error string }
			if json.Unmarshal(r.body, &fail) != nil || fail.Error == "" {
				t.Errorf("%s: error body %q is not a JSON error", tt.name, r.body)
			}
			continue
		}
		var res PurgeResult
		if err := json.Unmarshal(r.body, &res); err != nil || res.Purged != tt.purged {
			t.Errorf("%s: %s, want purged %d", tt.name, r.body, tt.purged)
		}
	}
	for _, p := range []string{"/bytes/100", "/bytes/101", "/bytes/102?b=2&a=1"} {
		if r := get(p); strings.Contains(r.get("Cache-Status"), "hit") {
			t.Errorf("%s after purge: %q", p, r.get("Cache-Status"))
		}
	}
	if r := e.adminDo("GET", "/purge?url=/bytes/100"); r.status != 405 || r.get("Allow") == "" {
		t.Errorf("GET /purge: %d Allow %q, want 405", r.status, r.get("Allow"))
	}
	if r := e.adminDo("PURGE", "/purge?url=/bytes/100"); r.status != 200 {
		t.Errorf("PURGE method: %d", r.status)
	}
}

func TestAdminEndpoints(t *testing.T) {
	metricsCalled := false
	e := newEnv(t, nil, func(_ *config.Config, o *Options) {
		o.Metrics = func(ctx *fasthttp.RequestCtx) {
			metricsCalled = true
			ctx.SetBodyString("# metrics\n")
		}
	})
	e.get("/bytes/10")
	e.get("/bytes/10")
	if r := e.adminDo("GET", "/healthz"); r.status != 200 {
		t.Errorf("/healthz: %d", r.status)
	}
	waitFor(t, "readiness", func() bool { return e.adminDo("GET", "/readyz").status == 200 })
	r := e.adminDo("GET", "/stats")
	var st Stats
	if err := json.Unmarshal(r.body, &st); err != nil || r.status != 200 {
		t.Fatalf("/stats: %d %v\n%s", r.status, err, r.body)
	}
	if st.Hits != 1 || st.Misses != 1 || st.HitRatio != 0.5 || st.Cache.Objects != 1 || len(st.Origins) != 1 || !st.Origins[0].Up ||
		st.Connections.Accepted == 0 || st.BytesServed != 20 || len(st.Sites) != 1 {
		t.Errorf("/stats = %+v", st)
	}
	if r := e.adminDo("GET", "/metrics"); r.status != 200 || !metricsCalled {
		t.Errorf("/metrics: %d, handler called %v", r.status, metricsCalled)
	}
	if r := e.adminDo("GET", "/nope"); r.status != 404 {
		t.Errorf("/nope: %d", r.status)
	}
	if r := e.adminDo("POST", "/stats"); r.status != 405 {
		t.Errorf("POST /stats: %d", r.status)
	}

	// Not ready once the origin is down (health checks off: a failed
	// request marks it down after fail_threshold failures).
	e.origin.Kill()
	for range e.cfg.Origin.FailThreshold {
		e.get("/bytes/11")
	}
	r = e.adminDo("GET", "/readyz")
	if r.status != 503 || !strings.Contains(string(r.body), "no healthy origin") {
		t.Errorf("/readyz with the origin down: %d %s", r.status, r.body)
	}
}
