package browsertest

import (
	"context"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/app"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/coordinator"
)

// AnnouncePath is the coordinator's signaling endpoint on the edge.
const AnnouncePath = "/pa/v1/announce"

// Edge is what `edge --demo` runs, in this process: the demo origin (with
// the player page at /) behind the edge cache, the coordinator at
// AnnouncePath with the policy loop, the web client's bundle, on
// 127.0.0.1. The demo's region table places loopback and private addresses
// (the namespace's veth 10.77.0.x included) in one region and ISP, so all
// pages form one swarm.
type Edge struct {
	URL         string // http://127.0.0.1:PORT
	Origin      *demo.Server
	Coordinator *coordinator.Coordinator
	App         *app.App
}

// StartEdge starts an Edge that stops when the test ends. Tweaks change
// the demo's configuration before it starts (a test of the policy under
// load sets the edge's capacity); without any it is exactly the demo's.
func StartEdge(t testing.TB, tweaks ...func(*config.Config)) *Edge {
	t.Helper()
	o, err := app.StartDemoOrigin(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	cfg := app.DemoConfig(o.URL(), "127.0.0.1:0")
	cfg.AdminListen = ""
	for _, f := range tweaks {
		f(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("edge config: %v", err)
	}
	a, err := app.Start(&cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &Edge{URL: a.URL(), Origin: o, Coordinator: a.Coordinator, App: a}
}
