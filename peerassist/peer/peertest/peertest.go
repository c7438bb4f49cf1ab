// Package peertest runs the real edge in-process for tests of peers and
// swarms: demo origin, chunk store, origin pool, region table, coordinator
// and edge HTTP server on loopback, wired as edge/cmd/edge wires them. It is
// for tests only (it imports the whole edge).
package peertest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/region"
)

// Edge is a running edge. Its fields are read-only.
type Edge struct {
	URL   string
	Coord *coordinator.Coordinator
	Loc   *region.Locator
	Cfg   *config.Config
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
// chunkBytes, and Regions; mod may change the config before it starts.
// Everything stops at the end of the test. Logs go nowhere.
func Start(t testing.TB, chunkBytes int, mod func(*config.Config)) *Edge {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cleanup := func(f func()) { t.Cleanup(f) }
	// Cleanups run last-registered first: register in start order.

	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := demo.Serve(oln, demo.New(demo.Options{Logger: log}))
	cleanup(func() { _ = ds.Shutdown(context.Background()) })

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
	store, err := cache.Open(cache.Options{ChunkBytes: chunkBytes, MemoryBytes: int64(c.Cache.MemoryBytes), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { _ = store.Close() })
	pool, err := origin.NewPool(c.Origin, c.Sites, origin.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { _ = pool.Close() })
	loc, err := region.New(c.Region, region.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { _ = loc.Close() })
	coord, err := coordinator.New(coordinator.Options{
		Config: c.PeerAssist, Sites: c.Sites, Region: c.Region.Name, Locator: loc, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { _ = coord.Close() })
	srv, err := edge.New(edge.Options{
		Config: &c, Store: store, Origins: pool, Sessions: coord, Logger: log,
		Routes: []edge.Route{
			{Path: region.WhoamiPath, Handler: loc.ServeWhoami},
			{Path: "/pa/v1/announce", Handler: coord.Handler},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	cleanup(func() {
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &Edge{URL: "http://" + ln.Addr().String(), Coord: coord, Loc: loc, Cfg: &c}
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
