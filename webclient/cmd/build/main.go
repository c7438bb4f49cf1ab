// Command build bundles the web client (webclient/src) into webclient/dist
// with esbuild's Go API; no Node is needed. Run from the repository root:
//
//	go run ./webclient/cmd/build
//
// or `go generate ./webclient`. The type declarations (dist/types) come
// from `npm run types` in webclient/ (tsc), committed as well.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/peerassist/edgebox/webclient/internal/bundler"
)

func main() {
	dir := flag.String("dir", "webclient", "the webclient directory")
	flag.Parse()
	out, err := bundler.Build(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := filepath.Join(*dir, "dist", n)
		if err := os.WriteFile(p, out[n], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %d bytes, %d gzipped (budget %d)\n", p, len(out[n]), bundler.GzipSize(out[n]), bundler.MaxGzipBytes)
		if g := bundler.GzipSize(out[n]); g > bundler.MaxGzipBytes {
			fmt.Fprintf(os.Stderr, "build: %s is %d bytes gzipped, over the %d budget\n", n, g, bundler.MaxGzipBytes)
			os.Exit(1)
		}
	}
}
