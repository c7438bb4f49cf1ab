// Command edge is the edge box: a caching reverse proxy for configured sites
// and the peer-assist coordinator of its region. Run `edge -h` for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/edge/telemetry"
	"github.com/peerassist/edgebox/origin"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/enforce"
	"github.com/peerassist/edgebox/region"
	"github.com/peerassist/edgebox/webclient"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (0 ok, 1
// runtime failure, 2 bad usage or configuration).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return runCheck(args[1:], stdout, stderr)
		case "region":
			return region.RunCLI(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, "edge", version())
			return 0
		}
	}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "edge:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, opts, stderr)
}

// runCheck validates a config file: every problem with file:line, exit 2.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "edge check: --config FILE is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err == nil {
		// The region sources (TSV, mmdb files) are part of the config.
		if _, rerr := region.New(cfg.Region, region.Options{BaseDir: filepath.Dir(*path), Logger: slog.New(slog.DiscardHandler)}); rerr != nil {
			for _, line := range strings.Split(rerr.Error(), "\n") {
				fmt.Fprintln(stderr, withConfigLine(cfg, line))
			}
			return 2
		}
	}
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok (%d sites)\n", *path, len(cfg.Sites))
	return 0
}

// withConfigLine prefixes a problem that starts with a config path
// ("region.sources[0]: ...") with the file and line that set it.
func withConfigLine(cfg *config.Config, msg string) string {
	path, _, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(path, " /") {
		return cfg.File + ": " + msg
	}
	if line := cfg.LineOf(path); line > 0 {
		return fmt.Sprintf("%s:%d: %s", cfg.File, line, msg)
	}
	return cfg.File + ": " + msg
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "unknown"
}

// app is one running edge: every component and how to reload and stop it.
type app struct {
	log     *slog.Logger
	cfgPath string
	tel     *telemetry.Telemetry
	demo    *demo.Server
	store   *cache.Store
	pool    *origin.Pool
	loc     *region.Locator
	coord   *coordinator.Coordinator
	policy  *enforce.Loop
	srv     *edge.Server
}

func serve(ctx context.Context, opts *options, stderr io.Writer) int {
	a := &app{cfgPath: opts.configPath}
	defer a.close()

	demoURL := ""
	if opts.demo {
		srv, err := startDemoOrigin()
		if err != nil {
			fmt.Fprintln(stderr, "edge: starting the demo origin:", err)
			return 1
		}
		a.demo = srv
		demoURL = srv.URL()
	}
	cfg, err := buildConfig(opts, demoURL)
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}
	tel, err := telemetry.Setup(ctx, cfg.Telemetry, telemetry.Options{Version: version(), LogOutput: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "edge:", err)
		return 1
	}
	a.tel, a.log = tel, tel.Logger
	slog.SetDefault(a.log)

	if err := a.start(ctx, cfg); err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			printConfigError(stderr, err)
			return 2
		}
		a.log.Error("edge: start", "err", err)
		return 1
	}
	return a.loop(ctx, cfg)
}

func (a *app) start(ctx context.Context, cfg *config.Config) error {
	var err error
	a.store, err = cache.Open(cache.Options{
		ChunkBytes:     int(cfg.Cache.ChunkBytes),
		MemoryBytes:    int64(cfg.Cache.MemoryBytes),
		DiskPath:       cfg.Cache.DiskPath,
		DiskBytes:      int64(cfg.Cache.DiskBytes),
		MaxObjectBytes: int64(cfg.Limits.MaxObjectBytes),
		Logger:         a.log,
	})
	if err != nil {
		return fmt.Errorf("opening the cache: %w", err)
	}
	a.pool, err = origin.NewPool(cfg.Origin, cfg.Sites, origin.Options{Logger: a.log})
	if err != nil {
		return err
	}
	a.loc, err = region.New(cfg.Region, region.Options{BaseDir: baseDir(cfg.File), Logger: a.log})
	if err != nil {
		return err
	}
	go a.loc.Watch(ctx)

	routes := []edge.Route{{Path: "/pa/v1/whoami", Handler: a.loc.ServeWhoami}}
	for _, p := range webclient.Paths {
		routes = append(routes, edge.Route{Path: p, Handler: webclient.Handler()})
	}
	var sessions edge.SessionGate
	if cfg.PeerAssist.Enabled {
		a.coord, err = coordinator.New(coordinator.Options{
			Config:     cfg.PeerAssist,
			Sites:      cfg.Sites,
			Region:     cfg.Region.Name,
			Locator:    a.loc,
			ClientAddr: a.loc.RequestAddr,
			Logger:     a.log,
		})
		if err != nil {
			return err
		}
		routes = append(routes, edge.Route{Path: "/pa/v1/announce", Handler: a.coord.Handler})
		sessions = a.coord
		// The policy loop: every policy.tick it turns the coordinator's
		// observations into decisions and enforces them (limits on the
		// sessions' edge requests, x_policy pushes). It starts once the
		// server, whose egress it measures, exists.
		a.policy, err = enforce.New(enforce.Options{
			Policy:      cfg.Policy,
			Sites:       cfg.Sites,
			Coordinator: a.coord,
			EgressBytes: func() int64 { return a.srv.Stats().BytesServed },
			Logger:      a.log,
		})
		if err != nil {
			return err
		}
	}
	a.srv, err = edge.New(edge.Options{
		Config:   cfg,
		Store:    a.store,
		Origins:  a.pool,
		Routes:   routes,
		Sessions: sessions,
		Metrics:  a.tel.MetricsHandler(),
		Logger:   a.log,
	})
	if err != nil {
		return err
	}
	if a.policy != nil {
		a.policy.Start()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen (listen: %s): %w", cfg.Listen, err)
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil {
			a.log.Error("edge: public listener stopped", "err", err)
		}
	}()
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return fmt.Errorf("listen (admin_listen: %s): %w", cfg.AdminListen, err)
		}
		go func() {
			if err := a.srv.ServeAdmin(aln); err != nil {
				a.log.Error("edge: admin listener stopped", "err", err)
			}
		}()
		a.log.Info("edge: admin listening", "addr", aln.Addr().String())
	}
	a.log.Info("edge: serving", "addr", ln.Addr().String(), "sites", len(cfg.Sites), "peer_assist", cfg.PeerAssist.Enabled)
	if a.demo != nil {
		a.log.Info("edge: demo ready: open the player at http://" + browsable(ln.Addr()) + "/ (open it in two tabs to see peer assistance)")
	}
	return nil
}

// loop waits for signals: SIGHUP reloads the config file, SIGINT/SIGTERM
// (ctx) shut down gracefully.
func (a *app) loop(ctx context.Context, cfg *config.Config) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			a.log.Info("edge: shutting down")
			return 0
		case <-hup:
			if next, err := a.reload(cfg); err != nil {
				a.log.Error("edge: reload failed; keeping the running configuration", "err", err)
			} else {
				cfg = next
			}
		}
	}
}

// reload re-reads the config file and applies what can change without a
// restart: sites, limits, origins and region tables. Listen addresses and
// cache sizes need a restart.
func (a *app) reload(cur *config.Config) (*config.Config, error) {
	if a.cfgPath == "" {
		// Flag-built configs have no file: reload only the region tables.
		return cur, a.loc.Reload(cur.Region)
	}
	next, err := config.Load(a.cfgPath)
	if err != nil {
		return nil, err
	}
	if next.Listen != cur.Listen || next.AdminListen != cur.AdminListen {
		a.log.Warn("edge: listen addresses change only on restart")
	}
	if err := a.loc.Reload(next.Region); err != nil {
		return nil, err
	}
	if err := a.pool.Update(next.Origin, next.Sites); err != nil {
		return nil, err
	}
	if err := a.srv.Reload(next); err != nil {
		return nil, err
	}
	a.log.Info("edge: reloaded", "file", a.cfgPath)
	return next, nil
}

// close stops everything in dependency order, giving in-flight responses
// up to 20 s.
func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if a.srv != nil {
		if err := a.srv.Shutdown(ctx); err != nil && a.log != nil {
			a.log.Warn("edge: shutdown", "err", err)
		}
	}
	if a.policy != nil {
		a.policy.Close()
	}
	if a.coord != nil {
		a.coord.Shutdown(ctx) // close frames (1001 going away), then every socket
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.loc != nil {
		a.loc.Close()
	}
	if a.demo != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.demo.Shutdown(ctx) }()
	}
	wg.Wait()
	if a.tel != nil {
		a.tel.Shutdown(ctx)
	}
}

// startDemoOrigin runs the demo origin on a loopback port, with the demo
// player page at its root so that the edge serves (and caches) it like any
// other content of the demo site.
func startDemoOrigin() (*demo.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := demo.New(demo.Options{Logger: slog.Default()})
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

func printConfigError(w io.Writer, err error) {
	var es config.Errors
	if errors.As(err, &es) {
		fmt.Fprintf(w, "edge: %d configuration problem(s):\n", len(es))
		for _, e := range es {
			fmt.Fprintln(w, "  "+e.Error())
		}
		return
	}
	fmt.Fprintln(w, "edge:", err)
}

func baseDir(file string) string {
	if file == "" {
		return ""
	}
	return filepath.Dir(file)
}

// browsable turns a listen address into one a browser can open.
func browsable(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if ta.IP == nil || ta.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", ta.Port)
	}
	return ta.String()
}
