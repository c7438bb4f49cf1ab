package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// TestPhasesAgainstCoordinator runs both phases, small, against an
// in-process coordinator (the process measures itself).
func TestPhasesAgainstCoordinator(t *testing.T) {
	co, err := coordinator.New(coordinator.Options{Config: benchConfig(), Sites: []config.Site{config.NewSite("bench", "http://127.0.0.1:1")},
		Locator: coordinator.LocatorFunc(loopbackLocator), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	srv := &fasthttp.Server{Handler: co.Handler}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() { srv.Shutdown(); <-done }()
	u := &url.URL{Scheme: "ws", Host: ln.Addr().String(), Path: "/pa/v1/announce"}

	idle, conns, err := idlePhase(context.Background(), u, selfPID, 120, 50, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(conns)
	if idle.rssBase <= 0 || idle.rssIdle <= 0 {
		t.Errorf("idle phase RSS %+v", idle)
	}
	tp, err := throughputPhase(context.Background(), u, selfPID, 60, 5, 20, 200*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if tp.offers == 0 || tp.answers == 0 || tp.replies == 0 {
		t.Errorf("throughput phase relayed nothing: %+v", tp)
	}
	if tp.serverCPU <= 0 {
		t.Errorf("server CPU %v, want > 0", tp.serverCPU)
	}
}

func TestSourceAddrsRespectPerIPCap(t *testing.T) {
	seen := map[string]int{}
	for i := range 20000 {
		a := sourceAddr(i)
		if !a.IsLoopback() {
			t.Fatalf("sourceAddr(%d) = %v, not loopback", i, a)
		}
		seen[a.String()]++
	}
	for a, n := range seen {
		if n > config.DefaultPeerAssist().MaxConnectionsPerIP {
			t.Fatalf("%s carries %d clients, over the default per-IP cap", a, n)
		}
	}
}
