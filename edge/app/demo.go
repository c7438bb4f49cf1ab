package app

import (
	"log/slog"
	"net"
	"os"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/webclient"
)

// StartDemoOrigin runs the demo origin on a loopback port, with the demo
// player page at its root so that the edge serves (and caches) it like any
// other content of the demo site.
func StartDemoOrigin(log *slog.Logger) (*demo.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	o := demo.New(demo.Options{Logger: log})
	page := webclient.DemoHandler()
	return demo.ServeHandler(ln, o, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/", "/index.html":
			page(ctx)
		default:
			o.Handler(ctx)
		}
	}), nil
}

// DemoConfig is the configuration of `edge --demo`: one site, "demo", in
// front of the demo origin at originURL, answering this machine's names and
// addresses, with loopback and private addresses in one region and ISP.
func DemoConfig(originURL, listen string) config.Config {
	c := config.Default()
	if listen != "" {
		c.Listen = listen
	}
	site := config.NewSite("demo", originURL)
	site.Hosts = demoHosts(c.Listen)
	// The sample video's top rendition is about 440 kbit/s: viewers' floors
	// (what the edge always serves them) follow it.
	site.PeerAssist.BitrateBps = 500_000
	c.Sites = []config.Site{site}
	c.Telemetry.LogFormat = "text"
	c.Region = demoRegion()
	return c
}

// demoHosts are the Host names the demo answers: this machine's names and
// addresses (so a browser elsewhere on the LAN can open it) and the listen
// host. Other hosts are refused (421): the demo is not an open proxy.
func demoHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// demoRegion places loopback and private (RFC 1918, ULA) addresses in one
// region and ISP, so that tabs and peers on one machine or LAN find each
// other in the demo.
func demoRegion() config.Region {
	r := config.DefaultRegion()
	r.Regions = []config.RegionDef{{
		Name: "demo",
		ISPs: []config.ISPDef{{
			Name:     "demo-lan",
			ASN:      64512, // private-use ASN
			Prefixes: []string{"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"},
		}},
	}}
	return r
}
