package region

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/peerassist/edgebox/config"
)

// CLI exit codes.
const (
	ExitOK        = 0 // every address answered
	ExitBadIP     = 1 // some argument was not an IP address; the others were answered
	ExitBadConfig = 2 // usage, config or source file problem; nothing answered
)

// RunCLI implements `edge region --config FILE IP...`: it loads the edge
// config, builds the region table from it and prints one JSON Answer per
// line for each IP, in argument order. An argument that is not an IP
// address gets an error line on stderr and exit code 1 after the others
// are printed. A bad config or source file prints every problem and exits
// with 2.
func RunCLI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge region", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "edge config `FILE` (required)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: edge region --config FILE IP...\n\n"+
			"Prints where each IP address maps to (region, ISP, ASN, prefix, subnet)\n"+
			"as one JSON object per line.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitBadConfig
	}
	if *cfgPath == "" || fs.NArg() == 0 {
		fs.Usage()
		return ExitBadConfig
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printErrors(stderr, err)
		return ExitBadConfig
	}
	// Load/parse problems are reported here; the table's own log lines
	// would repeat them.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	loc, err := New(cfg.Region, Options{BaseDir: filepath.Dir(cfg.File), Logger: quiet})
	if err != nil {
		printErrors(stderr, err)
		return ExitBadConfig
	}
	defer loc.Close()

	code := ExitOK
	enc := json.NewEncoder(stdout)
	for _, arg := range fs.Args() {
		ip, err := netip.ParseAddr(strings.TrimSpace(arg))
		if err != nil {
			fmt.Fprintf(stderr, "edge region: %q is not an IP address\n", arg)
			code = ExitBadIP
			continue
		}
		if err := enc.Encode(loc.Answer(ip.WithZone(""))); err != nil {
			fmt.Fprintf(stderr, "edge region: writing output: %v\n", err)
			return ExitBadConfig
		}
	}
	return code
}

// printErrors writes every problem of err on its own line.
func printErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintf(w, "edge region: %s\n", line)
		}
	}
}
