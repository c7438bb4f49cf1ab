package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/app"
)

// options are the command-line flags of the edge's serve mode.
type options struct {
	configPath  string
	demo        bool
	listen      string
	adminListen string
	originURLs  multiFlag
	cacheDir    string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const usage = `edge: an ISP-local, peer-assisted CDN edge.

Usage:
  edge --demo [--listen ADDR]             serve the demo: an embedded origin behind the cache
  edge --listen ADDR --origin URL [...]   one site, any Host, the given origin(s)
  edge --config FILE                      serve what FILE configures (see config/testdata/example.yaml)
  edge check --config FILE                validate FILE; print every problem with file:line; exit 2 if any
  edge region --config FILE IP...         print the locality of each IP as JSON
  edge version                            print the version

Flags of the serve modes:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.configPath, "config", "", "configuration `file` (YAML)")
	fs.BoolVar(&o.demo, "demo", false, "serve the built-in demo origin (test files, a sample HLS video, the demo player) through the edge")
	fs.StringVar(&o.listen, "listen", "", "public listen `address` (default :8080, or the config's listen)")
	fs.StringVar(&o.adminListen, "admin-listen", "", "admin listen `address` (default 127.0.0.1:9090, or the config's)")
	fs.Var(&o.originURLs, "origin", "origin `URL` of a one-site setup (repeat for mirrors)")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "disk cache `directory` (overrides cache.disk_path; default memory only)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (subcommands come first: edge check|region|version)", fs.Arg(0))
	}
	modes := 0
	for _, on := range []bool{o.demo, len(o.originURLs) > 0, o.configPath != ""} {
		if on {
			modes++
		}
	}
	switch {
	case modes == 0:
		return nil, errors.New("nothing to serve: give --demo, --origin URL or --config FILE (edge -h for help)")
	case modes > 1:
		return nil, errors.New("--demo, --origin and --config are exclusive")
	}
	return o, nil
}

// buildConfig turns the flags into a validated configuration. demoOrigin
// is the URL of the in-process demo origin (demo mode only).
func buildConfig(o *options, demoOrigin string) (*config.Config, error) {
	var cfg *config.Config
	switch {
	case o.configPath != "":
		c, err := config.Load(o.configPath)
		if err != nil {
			return nil, err
		}
		cfg = c
	case o.demo:
		c := app.DemoConfig(demoOrigin, o.listen)
		cfg = &c
	default:
		c := config.Default()
		for _, u := range o.originURLs {
			if _, err := url.Parse(u); err != nil {
				return nil, fmt.Errorf("--origin %q: %v", u, err)
			}
		}
		c.Sites = []config.Site{config.NewSite("default", o.originURLs...)}
		c.Telemetry.LogFormat = "text"
		cfg = &c
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if o.adminListen != "" {
		cfg.AdminListen = o.adminListen
	}
	if o.cacheDir != "" {
		cfg.Cache.DiskPath = o.cacheDir
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
