// Command loadgen measures the coordinator's signaling throughput and its
// memory per idle peer, side by side with bittorrent-tracker's server (the
// WebTorrent reference tracker), in one run.
//
//	go run ./peerassist/cmd/loadgen bench            # both servers, fresh processes, one table
//	go run ./peerassist/cmd/loadgen run -url ws://127.0.0.1:8080/pa/v1/announce -pid 1234
//	go run ./peerassist/cmd/loadgen serve            # the coordinator behind fasthttp (used by bench)
//
// Clients are real WebSocket connections over loopback from many source
// addresses (127.0.x.y, 50 per address) so per-IP caps and the open-files
// limit hold. The throughput phase runs -clients clients in swarms of
// -swarm-size, each announcing with -offers offers as soon as the previous
// announce is answered and answering every offer it gets; relayed messages
// are the offers and answers clients receive. The memory phase connects
// -peers clients that announce once and stay idle, and reads the server's
// RSS before and after. Server CPU comes from /proc/<pid>/stat. See
// peerassist/coordinator/BENCHMARK.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

var selfPID = os.Getpid()

func main() {
	raiseFileLimit()
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "bench":
		err = bench(os.Args[2:])
	case "run":
		err = runAgainst(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen bench|run|serve [flags] (loadgen <cmd> -h for flags)")
	os.Exit(2)
}

// raiseFileLimit lifts the soft open-files limit to the hard one.
func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

type params struct {
	peers, clients, offers, swarmSize int
	warmup, window, settle            time.Duration
}

func (p *params) flags(fs *flag.FlagSet) {
	fs.IntVar(&p.peers, "peers", 10000, "idle peers for the memory phase (0 skips it)")
	fs.IntVar(&p.clients, "clients", 1000, "clients for the throughput phase (0 skips it)")
	fs.IntVar(&p.offers, "offers", 5, "offers per announce (bittorrent-tracker's client sends at most 5)")
	fs.IntVar(&p.swarmSize, "swarm-size", 50, "clients per swarm")
	fs.DurationVar(&p.warmup, "warmup", 3*time.Second, "throughput warm-up before measuring")
	fs.DurationVar(&p.window, "duration", 10*time.Second, "throughput measurement window")
	fs.DurationVar(&p.settle, "settle", 5*time.Second, "wait after the idle peers joined before reading RSS")
}

type result struct {
	name string
	idle idleResult
	tp   tpResult
	err  error
}

// measure runs the memory phase, then the throughput phase, against one
// server process.
func measure(name string, u *url.URL, pid int, p params) result {
	r := result{name: name}
	ctx := context.Background()
	if p.peers > 0 {
		idle, conns, err := idlePhase(ctx, u, pid, p.peers, p.swarmSize, p.settle)
		r.idle = idle
		if err != nil {
			r.err = fmt.Errorf("memory phase: %w", err)
			return r
		}
		closeAll(conns)
		time.Sleep(2 * time.Second) // let the server process the closes
	}
	if p.clients > 0 {
		tp, err := throughputPhase(ctx, u, pid, p.clients, p.offers, p.swarmSize, p.warmup, p.window)
		r.tp = tp
		if err != nil {
			r.err = fmt.Errorf("throughput phase: %w", err)
		}
	}
	return r
}

func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var p params
	p.flags(fs)
	trackerDir := fs.String("tracker-dir", "peerassist/cmd/loadgen/tracker", "directory of the reference tracker's package.json and server.mjs")
	targets := fs.String("targets", "edge,bittorrent-tracker", "servers to measure, in order")
	edgeProfile := fs.String("edge-cpuprofile", "", "write the edge server's CPU profile to this file")
	edgePollers := fs.Int("edge-pollers", 0, "the edge server's epoll loops (0: the coordinator's default, one per 4 CPUs)")
	edgeMemProfile := fs.String("edge-memprofile", "", "write the edge server's allocation profile to this file")
	fs.Parse(args)

	var results []result
	for _, t := range strings.Split(*targets, ",") {
		var srv *server
		var err error
		switch t {
		case "edge":
			srv, err = startEdgeServer(*edgeProfile, *edgeMemProfile, *edgePollers)
		case "bittorrent-tracker":
			srv, err = startNodeTracker(*trackerDir)
		default:
			return fmt.Errorf("unknown target %q", t)
		}
		if err != nil {
			return fmt.Errorf("starting %s: %w", t, err)
		}
		time.Sleep(time.Second)
		fmt.Fprintf(os.Stderr, "loadgen: measuring %s (pid %d, %s)\n", t, srv.cmd.Process.Pid, srv.url)
		results = append(results, measure(t, srv.url, srv.cmd.Process.Pid, p))
		srv.stop()
	}
	report(os.Stdout, p, results)
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s: %w", r.name, r.err)
		}
	}
	return nil
}

func runAgainst(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var p params
	p.flags(fs)
	rawURL := fs.String("url", "", "the signaling endpoint, ws://host:port/pa/v1/announce (loopback)")
	pid := fs.Int("pid", 0, "the server's process ID (for RSS and CPU)")
	fs.Parse(args)
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "ws" || *pid <= 0 {
		return errors.New("run needs -url ws://... and -pid")
	}
	r := measure(u.Host, u, *pid, p)
	report(os.Stdout, p, []result{r})
	return r.err
}

type server struct {
	cmd *exec.Cmd
	url *url.URL
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// startEdgeServer runs "loadgen serve" as a child process.
func startEdgeServer(cpuProfile, memProfile string, pollers int) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", "-cpuprofile", cpuProfile, "-memprofile", memProfile, "-pollers", fmt.Sprint(pollers))
	cmd.Stderr = os.Stderr
	return startAndRead(cmd, func(line string) (string, bool) {
		addr, ok := strings.CutPrefix(line, "LISTEN ")
		return addr, ok
	})
}

// startNodeTracker installs (npm ci, once per lock file) and runs
// bittorrent-tracker's server.
func startNodeTracker(dir string) (*server, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is needed for the reference tracker: %w", err)
	}
	if err := npmCI(dir); err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	return startAndRead(cmd, func(line string) (string, bool) {
		var v struct{ Addr string }
		if json.Unmarshal([]byte(line), &v) != nil || v.Addr == "" {
			return "", false
		}
		return v.Addr, true
	})
}

func startAndRead(cmd *exec.Cmd, parse func(string) (string, bool)) (*server, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := parse(sc.Text()); ok {
				lines <- addr
			}
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if !ok {
			cmd.Wait()
			return nil, errors.New("server exited before listening")
		}
		return &server{cmd: cmd, url: &url.URL{Scheme: "ws", Host: addr, Path: "/pa/v1/announce"}}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("server did not start listening in 30s")
	}
}

// npmCI installs dir's locked dependencies unless they already are.
func npmCI(dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	stamp := filepath.Join(dir, "node_modules", ".edgebox-lock")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == string(lock) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return err
	}
	cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	return os.WriteFile(stamp, lock, 0o644)
}

func report(w *os.File, p params, rs []result) {
	fmt.Fprintf(w, "# loadgen: %d idle peers; %d clients x %d offers/announce, swarms of %d, %v window; GOMAXPROCS=%d, %d CPUs\n",
		p.peers, p.clients, p.offers, p.swarmSize, p.window, runtime.GOMAXPROCS(0), runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tRSS base MiB\tRSS idle MiB\tKiB/idle peer\trelayed msg/s\tserver CPU s\trelayed/CPU-s\tloadgen CPU s\tfailures\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f\t%.0f\t%.2f\t%.0f\t%.2f\t%d\t\n", r.name,
			float64(r.idle.rssBase)/(1<<20), float64(r.idle.rssIdle)/(1<<20), r.idle.perPeerBytes()/1024,
			r.tp.perSecond(), r.tp.serverCPU, r.tp.perCPUSecond(), r.tp.loadgenCPU, r.tp.failures)
	}
	tw.Flush()
	if len(rs) == 2 && rs[1].tp.perSecond() > 0 {
		fmt.Fprintf(w, "# throughput ratio %s/%s: %.2fx; per CPU-second: %.2fx; memory per idle peer: %.2fx less\n",
			rs[0].name, rs[1].name, rs[0].tp.perSecond()/rs[1].tp.perSecond(),
			rs[0].tp.perCPUSecond()/max(rs[1].tp.perCPUSecond(), 1), rs[1].idle.perPeerBytes()/max(rs[0].idle.perPeerBytes(), 1))
	}
	for _, r := range rs {
		reasons := slices.Collect(maps.Keys(r.tp.reasons))
		slices.Sort(reasons)
		for _, reason := range reasons {
			fmt.Fprintf(w, "# %s: %d failures (whole phase): %s\n", r.name, r.tp.reasons[reason], reason)
		}
		if r.err != nil {
			fmt.Fprintf(w, "# %s: %v\n", r.name, r.err)
		}
	}
}
