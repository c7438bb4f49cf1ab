// Package app assembles a whole edge box from a configuration: the chunk
// store, the origin pool, the region locator, the coordinator, the policy
// loop, the web client's routes and the HTTP server, listening on the
// configured addresses. The edge binary runs one; tests that need what users
// run (browser tests, swarms) start one in-process instead of wiring their
// own, so they cannot drift from the binary.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge"
	"github.com/peerassist/edgebox/edge/cache"
	"github.com/peerassist/edgebox/origin"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/enforce"
	"github.com/peerassist/edgebox/region"
	"github.com/peerassist/edgebox/webclient"
)

// Options are the inputs that do not come from the configuration.
type Options struct {
	// Logger receives every component's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics serves the admin /metrics (telemetry.MetricsHandler); nil
	// answers 404 there.
	Metrics fasthttp.RequestHandler
}

// App is one running edge box. Create it with Start; stop it with Close.
// Its exported fields are the components, for tests and the admin; do not
// replace them. It is safe for concurrent use.
type App struct {
	Store       *cache.Store
	Pool        *origin.Pool
	Locator     *region.Locator
	Coordinator *coordinator.Coordinator // nil when peer_assist.enabled is false
	Policy      *enforce.Loop            // nil when peer_assist.enabled is false
	Server      *edge.Server
	// Addr and AdminAddr are the bound listen addresses ("" for no admin).
	Addr, AdminAddr string

	log    *slog.Logger
	cancel context.CancelFunc // stops the region watcher

	mu  sync.Mutex // serializes Reload
	cfg *config.Config

	closeOnce sync.Once
}

// Start opens every component for cfg (validated) and starts serving on
// cfg.Listen and cfg.AdminListen (port 0 picks a free port: see Addr).
// On error, whatever was opened is closed again.
func Start(cfg *config.Config, opts Options) (_ *App, err error) {
	if cfg == nil {
		return nil, errors.New("app: nil config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{log: log, cfg: cfg}
	defer func() {
		if err != nil {
			a.Close(context.Background())
		}
	}()
	a.Store, err = cache.Open(cache.Options{
		ChunkBytes:     int(cfg.Cache.ChunkBytes),
		MemoryBytes:    int64(cfg.Cache.MemoryBytes),
		DiskPath:       cfg.Cache.DiskPath,
		DiskBytes:      int64(cfg.Cache.DiskBytes),
		MaxObjectBytes: int64(cfg.Limits.MaxObjectBytes),
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the cache: %w", err)
	}
	if a.Pool, err = origin.NewPool(cfg.Origin, cfg.Sites, origin.Options{Logger: log}); err != nil {
		return nil, err
	}
	if a.Locator, err = region.New(cfg.Region, region.Options{BaseDir: baseDir(cfg.File), Logger: log}); err != nil {
		return nil, err
	}
	var watchCtx context.Context
	watchCtx, a.cancel = context.WithCancel(context.Background())
	go a.Locator.Watch(watchCtx)

	routes := []edge.Route{{Path: "/pa/v1/whoami", Handler: a.Locator.ServeWhoami}}
	for _, p := range webclient.Paths {
		routes = append(routes, edge.Route{Path: p, Handler: webclient.Handler()})
	}
	var sessions edge.SessionGate
	if cfg.PeerAssist.Enabled {
		a.Coordinator, err = coordinator.New(coordinator.Options{
			Config:     cfg.PeerAssist,
			Sites:      cfg.Sites,
			Region:     cfg.Region.Name,
			Locator:    a.Locator,
			ClientAddr: a.Locator.RequestAddr,
			Logger:     log,
		})
		if err != nil {
			return nil, err
		}
		routes = append(routes, edge.Route{Path: "/pa/v1/announce", Handler: a.Coordinator.Handler})
		sessions = a.Coordinator
		// The policy loop: every policy.tick it turns the coordinator's
		// observations into decisions and enforces them (limits on the
		// sessions' edge requests, x_policy pushes). It starts once the
		// server, whose egress it measures, exists.
		a.Policy, err = enforce.New(enforce.Options{
			Policy:      cfg.Policy,
			Sites:       cfg.Sites,
			Coordinator: a.Coordinator,
			EgressBytes: func() int64 { return a.Server.Stats().BytesServed },
			Logger:      log,
		})
		if err != nil {
			return nil, err
		}
	}
	a.Server, err = edge.New(edge.Options{
		Config:   cfg,
		Store:    a.Store,
		Origins:  a.Pool,
		Routes:   routes,
		Sessions: sessions,
		Metrics:  opts.Metrics,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	if a.Policy != nil {
		a.Policy.Start()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen (listen: %s): %w", cfg.Listen, err)
	}
	a.Addr = ln.Addr().String()
	go func() {
		if err := a.Server.Serve(ln); err != nil {
			log.Error("edge: public listener stopped", "err", err)
		}
	}()
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return nil, fmt.Errorf("listen (admin_listen: %s): %w", cfg.AdminListen, err)
		}
		a.AdminAddr = aln.Addr().String()
		go func() {
			if err := a.Server.ServeAdmin(aln); err != nil {
				log.Error("edge: admin listener stopped", "err", err)
			}
		}()
	}
	log.Info("edge: serving", "addr", a.Addr, "admin", a.AdminAddr, "sites", len(cfg.Sites), "peer_assist", cfg.PeerAssist.Enabled)
	return a, nil
}

// URL is the base URL of the public listener, for a client on this host.
func (a *App) URL() string { return "http://" + Browsable(a.Addr) }

// Config returns the configuration last started or reloaded (settings that
// change only on restart may differ from what runs: see Reload).
func (a *App) Config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Close stops everything in dependency order, giving in-flight responses
// until ctx ends (20 s when ctx has no deadline). It is safe to call more
// than once.
func (a *App) Close(ctx context.Context) {
	a.closeOnce.Do(func() {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
		}
		if a.Server != nil {
			if err := a.Server.Shutdown(ctx); err != nil {
				a.log.Warn("edge: shutdown", "err", err)
			}
		}
		if a.Policy != nil {
			a.Policy.Close()
		}
		if a.Coordinator != nil {
			a.Coordinator.Shutdown(ctx) // close frames (1001 going away), then every socket
		}
		if a.Pool != nil {
			a.Pool.Close()
		}
		if a.Store != nil {
			a.Store.Close()
		}
		if a.cancel != nil {
			a.cancel()
		}
		if a.Locator != nil {
			a.Locator.Close()
		}
	})
}

func baseDir(file string) string {
	if file == "" {
		return ""
	}
	return filepath.Dir(file)
}

// Browsable turns a listen address into one a browser on this host can
// open (an unspecified address becomes 127.0.0.1).
func Browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
