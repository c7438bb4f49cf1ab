// Command refgen writes config/REFERENCE.md from the config package's doc
// comments and defaults. Run from the repository root:
//
//	go run ./config/internal/refgen
package main

import (
	"fmt"
	"os"

	"github.com/peerassist/edgebox/config"
)

func main() {
	ref, err := config.Reference(os.DirFS("config"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "refgen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("config/REFERENCE.md", []byte(ref), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "refgen:", err)
		os.Exit(1)
	}
}
