package browsertest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/region"
	"github.com/peerassist/edgebox/webclient"
)

// AnnouncePath is the coordinator's signaling endpoint on the edge.
const AnnouncePath = "/pa/v1/announce"

// Edge is a real edge server in this process: the demo origin behind the
// cache, the coordinator at AnnouncePath, the web client's bundle and demo
// page, all on 127.0.0.1. Every address (127.0.0.0/8 and the namespace's
// veth) is placed in one region and ISP, so all pages form one swarm.
type Edge struct {
	URL         string // http://127.0.0.1:PORT
	Origin      *demo.Server
	Coordinator *coordinator.Coordinator
	Server      *edge.Server
}

// StartEdge starts an Edge that stops when the test ends.
func StartEdge(t testing.TB) *Edge {
	t.Helper()
	o, err := demo.Start("127.0.0.1:0", demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	cfg := config.Default()
	cfg.Sites = []config.Site{config.NewSite("demo", o.URL())}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("edge config: %v", err)
	}
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := origin.NewPool(cfg.Origin, cfg.Sites, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lab := region.Locality{Known: true, Region: "lab", ISP: "loopback", ASN: 64512,
		Prefix: netip.MustParsePrefix("127.0.0.0/8"), Subnet: netip.MustParsePrefix("127.0.0.0/24")}
	co, err := coordinator.New(coordinator.Options{
		Config:  cfg.PeerAssist,
		Sites:   cfg.Sites,
		Locator: coordinator.LocatorFunc(func(netip.Addr) region.Locality { return lab }),
	})
	if err != nil {
		t.Fatal(err)
	}
	wc := webclient.Handler()
	routes := []edge.Route{{Path: AnnouncePath, Handler: co.Handler}}
	for _, p := range webclient.Paths {
		routes = append(routes, edge.Route{Path: p, Handler: wc})
	}
	srv, err := edge.New(edge.Options{Config: &cfg, Store: st, Origins: pool, Routes: routes, Sessions: co})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		co.Close()
		pool.Close()
		st.Close()
	})
	return &Edge{URL: "http://" + ln.Addr().String(), Origin: o, Coordinator: co, Server: srv}
}
