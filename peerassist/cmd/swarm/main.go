// Command swarm runs N Go peers (package peerassist/peer) against an edge
// and reports where their bytes came from: a flash crowd of one object, or
// viewers following an HLS VOD at real-time pace. Peers bind to loopback
// addresses given as ranges, so the edge's region table places them in
// different ISPs and regions; some can be told to corrupt what they send.
//
//	go run ./peerassist/cmd/swarm -edge http://127.0.0.1:8080 -n 20 -object /bytes/33554432
//	go run ./peerassist/cmd/swarm -n 10 -addrs 127.0.10.1-5,127.0.11.1-5 -poison 3 -json
//	go run ./peerassist/cmd/swarm -n 6 -vod /vod/sample/master.m3u8 -stagger 3s
//
// It prints bytes by source (edge, peers), the offload ratio, each peer's
// upload against its budget, completion times, verification failures and
// the peer bytes that crossed ISPs or regions, as text or JSON (-json). The
// exit status is 0 when every peer got every byte, 1 otherwise, 2 for bad
// flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peerassist/edgebox/peerassist/peer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	edge, announce string
	n              int
	addrs          []netip.Addr
	object         string
	vod            string
	rendition      int
	speed          float64
	stagger        time.Duration
	deadline       time.Duration
	rateBps        int64
	startup        time.Duration
	prefetch       time.Duration
	uploadBps      int64
	uploadFraction float64
	unlimited      bool
	poison         []int
	site           string
	maxNeighbors   int
	k              float64
	timeout        time.Duration
	json           bool
	verbose        bool
	pionDetail     bool
}

var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var addrs, poison, rate, upload string
	fs.StringVar(&o.edge, "edge", "http://127.0.0.1:8080", "edge base `URL`")
	fs.StringVar(&o.announce, "announce", "", "coordinator WebSocket `URL` (default: the edge's /pa/v1/announce)")
	fs.IntVar(&o.n, "n", 0, "number of peers (default: one per address of -addrs, or 10)")
	fs.StringVar(&addrs, "addrs", "", "loopback addresses the peers bind to, in turn: `list` of a.b.c.d, a.b.c.d-e, a.b.c.d-a.b.c.e or a.b.c.d/len (default 127.0.0.2 upwards)")
	fs.StringVar(&o.object, "object", "", "flash crowd: every peer fetches this object `path` (default /bytes/33554432 unless -vod)")
	fs.StringVar(&o.vod, "vod", "", "VOD: every peer plays this master playlist `path` at real-time pace (e.g. /vod/sample/master.m3u8)")
	fs.IntVar(&o.rendition, "rendition", 0, "VOD: `index` of the variant stream in the master playlist")
	fs.Float64Var(&o.speed, "speed", 1, "VOD: playback speed `factor` (2 plays twice as fast as real time)")
	fs.DurationVar(&o.stagger, "stagger", 0, "delay between two peers' starts")
	fs.DurationVar(&o.deadline, "deadline", 60*time.Second, "object: the whole object is due this `duration` after a peer starts")
	fs.StringVar(&rate, "rate", "", "object: play it at this `rate` (bits/s, e.g. 8M): chunk deadlines follow playback after -startup")
	fs.DurationVar(&o.startup, "startup", 2*time.Second, "start-up delay before playback (VOD, and -rate)")
	fs.DurationVar(&o.prefetch, "prefetch", 12*time.Second, "VOD: fetch a segment this long (media time) before it plays")
	fs.StringVar(&upload, "upload", "10M", "declared upload `capacity` of each peer in bits/s, e.g. 10M (x_caps; 1G with -unlimited-upload)")
	fs.Float64Var(&o.uploadFraction, "upload-fraction", 0, "share of the capacity a peer uploads (default: 1/3 or the edge's x_policy)")
	fs.BoolVar(&o.unlimited, "unlimited-upload", false, "unconstrained upload: no local cap, and a declared capacity of 1G unless -upload is given (the edge's x_policy budget, a share of the declared capacity, applies from its first push, within one policy tick)")
	fs.StringVar(&poison, "poison", "", "peers that corrupt every chunk they send: `list` of peer indexes (from 0) or addresses")
	fs.StringVar(&o.site, "site", "", "x_site: the edge's site `name` (default: the edge infers it)")
	fs.IntVar(&o.maxNeighbors, "max-neighbors", 0, "neighbors per peer (default: the peer's, 8)")
	fs.Float64Var(&o.k, "k", 0, "Slurpie k: peers of the swarm that fetch a chunk nobody holds (default 3)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this `duration`")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.verbose, "v", false, "log the peers' events to stderr")
	fs.BoolVar(&o.pionDetail, "vv", false, "also log pion's own debug messages (ICE, DTLS, SCTP: very many)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: swarm [flags]

Runs N Go peers against an edge and reports where their bytes came from:
bytes by source and offload, each peer's upload against its budget,
completion, verification failures, and peer bytes across ISPs and regions
(localities as the edge's /pa/v1/whoami gives them).

Examples:
  swarm -edge http://127.0.0.1:8080 -n 20 -object /bytes/33554432 -unlimited-upload
  swarm -addrs 127.0.10.1-5,127.0.11.1-5 -poison 127.0.10.3 -json
  swarm -n 6 -vod /vod/sample/master.m3u8 -stagger 3s

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.object != "" && o.vod != "" {
		errs = append(errs, errors.New("-object and -vod: choose one"))
	}
	if o.object == "" && o.vod == "" {
		o.object = "/bytes/33554432"
	}
	for _, p := range []string{o.object, o.vod} {
		if p != "" && !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("path %q: want an absolute path on the edge", p))
		}
	}
	var err error
	if addrs == "" {
		n := o.n
		if n <= 0 {
			n = 10
		}
		addrs = fmt.Sprintf("127.0.0.2-127.0.%d.%d", (n+1)/256, (n+1)%256)
	}
	if o.addrs, err = parseAddrs(addrs); err != nil {
		errs = append(errs, fmt.Errorf("-addrs: %w", err))
	}
	if o.n == 0 {
		o.n = len(o.addrs)
	}
	if o.n < 1 || o.n > 1000 {
		errs = append(errs, fmt.Errorf("-n %d: want 1..1000", o.n))
	}
	if rate != "" {
		if o.rateBps, err = parseBps(rate); err != nil {
			errs = append(errs, fmt.Errorf("-rate: %w", err))
		}
	}
	uploadSet := false
	fs.Visit(func(f *flag.Flag) { uploadSet = uploadSet || f.Name == "upload" })
	if o.unlimited && !uploadSet {
		upload = "1G" // the edge's budget is a share of it: make it not bind
	}
	if o.uploadBps, err = parseBps(upload); err != nil {
		errs = append(errs, fmt.Errorf("-upload: %w", err))
	}
	if o.uploadFraction < 0 || o.uploadFraction > 1 {
		errs = append(errs, fmt.Errorf("-upload-fraction %g: want 0..1", o.uploadFraction))
	}
	if !(o.speed > 0 && o.speed <= 100) {
		errs = append(errs, fmt.Errorf("-speed %g: want (0, 100]", o.speed))
	}
	if o.deadline <= 0 || o.timeout <= 0 || o.stagger < 0 || o.startup < 0 || o.prefetch <= 0 {
		errs = append(errs, errors.New("-deadline, -timeout and -prefetch must be positive; -stagger and -startup not negative"))
	}
	if o.k != 0 && o.k < 1 {
		errs = append(errs, fmt.Errorf("-k %g: want at least 1", o.k))
	}
	if poison != "" && o.addrs != nil {
		if o.poison, err = parsePoison(poison, o.addrs, o.n); err != nil {
			errs = append(errs, fmt.Errorf("-poison: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// parsePoison maps a list of peer indexes and addresses to peer indexes.
func parsePoison(s string, addrs []netip.Addr, n int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var match []int
		if i, err := strconv.Atoi(item); err == nil {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("peer %d: there are peers 0..%d", i, n-1)
			}
			match = []int{i}
		} else if a, err := netip.ParseAddr(item); err == nil {
			for i := range n {
				if addrs[i%len(addrs)] == a {
					match = append(match, i)
				}
			}
			if match == nil {
				return nil, fmt.Errorf("no peer binds to %v", a)
			}
		} else {
			return nil, fmt.Errorf("%q is neither a peer index nor an address", item)
		}
		for _, i := range match {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "swarm:", err)
		return 2
	}
	level := slog.LevelError
	switch {
	case o.pionDetail:
		level = peer.LevelPionDetail
	case o.verbose:
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rep, err := runSwarm(ctx, o, log)
	if err != nil {
		fmt.Fprintln(stderr, "swarm:", err)
		return 1
	}
	if o.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "swarm:", err)
		return 1
	}
	if !rep.AllDone {
		return 1
	}
	return 0
}
