// Command origin runs the demo origin (package origin/demo) on its own: the
// synthetic /bytes/{n} files, the sample HLS video under /vod/sample/ and
// the fault knobs. The fault flags set the process-wide faults that every
// request gets unless its query parameters override them.
//
//	go run ./origin/cmd/origin --listen 127.0.0.1:8081
//	go run ./origin/cmd/origin --listen :8081 --delay 200ms --rate 1MiB
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
	"syscall"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/origin/demo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "`address` to listen on")
	delay := fs.Duration("delay", 0, "wait this long before every response's headers (at most 1m)")
	rate := fs.String("rate", "", "throttle every body to this many `bytes` per second (\"1MiB\", \"65536\"); empty is unlimited")
	status := fs.Int("status", 0, "answer every request with this HTTP `status` (200..599); 0 is off")
	breakAfter := fs.String("break-after", "", "close the connection after this many body `bytes` of every response; empty is off")
	version := fs.String("version", "", "content `version` of /bytes objects (changes bodies and ETags)")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long requests in flight may finish after SIGINT/SIGTERM")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "origin: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "origin: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	f := demo.Faults{Status: *status, Delay: *delay, Version: *version}
	if *rate != "" {
		r, err := config.ParseByteSize(*rate)
		if err != nil || r <= 0 {
			fmt.Fprintf(stderr, "origin: --rate %q: want bytes per second such as 1MiB\n", *rate)
			return 2
		}
		f.RateBps = int64(r)
	}
	if *breakAfter != "" {
		b, err := config.ParseByteSize(*breakAfter)
		if err != nil || b <= 0 {
			fmt.Fprintf(stderr, "origin: --break-after %q: want a positive byte count such as 64KiB\n", *breakAfter)
			return 2
		}
		f.BreakAfterBytes = int64(b)
	}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(stderr, "origin: %v\n", err)
		return 2
	}

	// Catch signals before announcing the address, so that a supervisor
	// that signals as soon as it sees the log line is honoured.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := demo.Start(*listen, demo.Options{Faults: f, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "origin: %v\n", err)
		return 1
	}
	log.Info("demo origin listening", "url", srv.URL(), "faults", fmt.Sprintf("%+v", f))

	<-ctx.Done()
	stop()
	log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
