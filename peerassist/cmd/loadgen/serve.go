package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/region"
)

// benchConfig is the coordinator configuration of "loadgen serve": the
// defaults, except the per-connection message rate (20/s protects a real
// edge from one abusive browser; here a thousand clients each relay as fast
// as they can, which is the point of the measurement).
func benchConfig() config.PeerAssist {
	c := config.DefaultPeerAssist()
	c.MessagesPerSecond = 1e6
	c.MessageBurst = 1e6
	c.RelayTraceRatio = 0
	return c
}

// loopbackLocator puts all of 127.0.0.0/8 in region "bench", one ISP, one
// access subnet per /24.
func loopbackLocator(a netip.Addr) region.Locality {
	if !a.Is4() || a.As4()[0] != 127 {
		return region.Locality{}
	}
	return region.Locality{Known: true, Region: "bench", ISP: "loopback", ASN: 64512,
		Prefix: netip.MustParsePrefix("127.0.0.0/8"), Subnet: netip.PrefixFrom(a, 24).Masked()}
}

// serve runs the coordinator behind a fasthttp server, as the edge mounts
// it, until SIGTERM or SIGINT. It prints "LISTEN <addr>" when ready.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	pollers := fs.Int("pollers", 0, "epoll loops (0: the coordinator's default, one per 4 CPUs)")
	memProfile := fs.String("memprofile", "", "write an allocation profile to this file on exit")
	fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	co, err := coordinator.New(coordinator.Options{
		Config:  benchConfig(),
		Sites:   []config.Site{config.NewSite("bench", "http://127.0.0.1:1")},
		Locator: coordinator.LocatorFunc(loopbackLocator),
		Pollers: *pollers,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer co.Close()
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/pa/v1/announce" {
				co.Handler(ctx)
				return
			}
			ctx.Error("not found", fasthttp.StatusNotFound)
		},
		NoDefaultServerHeader: true,
	}
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-stop:
	case err := <-errc:
		return err
	}
	return srv.Shutdown()
}
