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
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/edge/app"
	"github.com/peerassist/edgebox/edge/telemetry"
	"github.com/peerassist/edgebox/origin/demo"
	"github.com/peerassist/edgebox/region"
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
	// Check goes on past problems, so that one run reports them all, the
	// region sources' included.
	cfg, err := config.Check(*path)
	var es config.Errors
	if err != nil {
		if !errors.As(err, &es) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		for _, e := range es {
			fmt.Fprintln(stderr, e.Error())
		}
	}
	failed := err != nil
	// The region sources (TSV, mmdb files) are part of the config: read
	// them unless the region section itself has problems.
	if cfg != nil && !regionHasProblems(es) {
		if _, rerr := region.New(cfg.Region, region.Options{BaseDir: filepath.Dir(*path), Logger: slog.New(slog.DiscardHandler)}); rerr != nil {
			for _, line := range strings.Split(rerr.Error(), "\n") {
				fmt.Fprintln(stderr, withConfigLine(cfg, line))
			}
			failed = true
		}
	}
	if failed {
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok (%d sites)\n", *path, len(cfg.Sites))
	return 0
}

// regionHasProblems reports whether any problem is in the region section.
func regionHasProblems(es config.Errors) bool {
	for _, e := range es {
		if e.Path == "region" || strings.HasPrefix(e.Path, "region.") {
			return true
		}
	}
	return false
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

func serve(ctx context.Context, opts *options, stderr io.Writer) int {
	var demoSrv *demo.Server
	demoURL := ""
	if opts.demo {
		srv, err := app.StartDemoOrigin(nil)
		if err != nil {
			fmt.Fprintln(stderr, "edge: starting the demo origin:", err)
			return 1
		}
		demoSrv, demoURL = srv, srv.URL()
		defer srv.Close()
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
	defer tel.Shutdown(context.Background())
	log := tel.Logger
	slog.SetDefault(log)

	a, err := app.Start(cfg, app.Options{Logger: log, Metrics: tel.MetricsHandler()})
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			printConfigError(stderr, err)
			return 2
		}
		log.Error("edge: start", "err", err)
		return 1
	}
	defer a.Close(context.Background())
	if demoSrv != nil {
		log.Info("edge: demo ready: open the player at " + a.URL() + "/ (open it in two tabs to see peer assistance)")
	}

	// SIGHUP reloads the config file; SIGINT/SIGTERM (ctx) shut down
	// gracefully (deferred Close).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("edge: shutting down")
			return 0
		case <-hup:
			if err := reload(a, opts.configPath); err != nil {
				log.Error("edge: reload failed; keeping the running configuration", "err", err)
			}
		}
	}
}

// reload re-reads the config file and applies it. Flag-built
// configurations have no file: their region tables are re-read.
func reload(a *app.App, path string) error {
	next := a.Config()
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			return err
		}
		next = c
	}
	// app logs what it applied ("edge: reload complete").
	return a.Reload(next)
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
