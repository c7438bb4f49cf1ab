// Package peertest runs the real edge in-process for tests of peers and
// swarms: the demo origin behind the whole edge box as the edge binary
// assembles it (edge/app: chunk store, origin pool, region table,
// coordinator, the policy loop and the edge HTTP server) on loopback, so
// that peer tests see what users see, 429s and x_policy pushes included.
// It is for tests only (it imports the whole edge).
package peertest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/app"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/enforce"
	"github.com/peerassist/edgebox/region"
)

// Edge is a running edge. Its fields are read-only.
type Edge struct {
	URL   string
	Coord *coordinator.Coordinator
	// Policy is the edge's policy loop, running as in the edge binary
	// (every policy.tick); nil once StopPolicy stopped it.
	Policy *enforce.Loop
	Loc    *region.Locator
	Cfg    *config.Config
	App    *app.App
}

// Regions is the test region table: region r1 with ISPs isp-a
// (127.0.10.0/24) and isp-b (127.0.11.0/24); region r2 with isp-c
// (127.0.20.0/24); the rest of 127/8 is ISP lo of r1.
func Regions() config.Region {
	r := config.DefaultRegion()
	r.Regions = []config.RegionDef{
		{Name: "r1", ISPs: []config.ISPDef{
			{Name: "isp-a", ASN: 64601, Prefixes: []string{"127.0.10.0/24"}},
			{Name: "isp-b", ASN: 64602, Prefixes: []string{"127.0.11.0/24"}},
			{Name: "lo", ASN: 64600, Prefixes: []string{"127.0.0.0/8"}},
		}},
		{Name: "r2", ISPs: []config.ISPDef{
			{Name: "isp-c", ASN: 64603, Prefixes: []string{"127.0.20.0/24"}},
		}},
	}
	return r
}

// Start starts the edge with the demo origin as site "demo", chunks of
// chunkBytes, and Regions; mod may change the config before it starts
// (policy section included: the policy loop runs as configured).
// Everything stops at the end of the test. Logs go nowhere.
func Start(t testing.TB, chunkBytes int, mod func(*config.Config)) *Edge {
	t.Helper()
	log := slog.New(slog.DiscardHandler)

	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := demo.Serve(oln, demo.New(demo.Options{Logger: log}))
	// Cleanups run last-registered first: the origin stops after the edge.
	t.Cleanup(func() { _ = ds.Shutdown(context.Background()) })

	c := config.Default()
	c.Listen = "127.0.0.1:0"
	c.AdminListen = ""
	c.Cache.ChunkBytes = config.ByteSize(chunkBytes)
	c.Sites = []config.Site{config.NewSite("demo", ds.URL())}
	c.Region = Regions()
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	a, err := app.Start(&c, app.Options{Logger: log})
	if err != nil {
		t.Fatalf("starting the edge: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &Edge{URL: a.URL(), Coord: a.Coordinator, Policy: a.Policy, Loc: a.Locator, Cfg: &c, App: a}
}

// StopPolicy stops the edge's policy loop, for tests that drive their own
// loop or install their own admission hook: its limiters are taken out of
// the sessions, which are then admitted without limit, and nothing is
// pushed to the peers any more.
func (e *Edge) StopPolicy() {
	if e.Policy != nil {
		_ = e.Policy.Close()
		e.Policy = nil
	}
}

// EdgeBytesByISP sums what the edge served (its own SessionGate
// attribution) to the sessions of each ISP.
func (e *Edge) EdgeBytesByISP() map[string]int64 {
	out := map[string]int64{}
	for _, s := range e.Coord.Sessions() {
		out[s.Locality.ISP] += s.EdgeServedBytes
	}
	return out
}
