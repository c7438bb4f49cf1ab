package config

import (
	"os"
	"testing"
)

// TestReferenceUpToDate keeps REFERENCE.md true: it must be what refgen
// writes from the current sources.
func TestReferenceUpToDate(t *testing.T) {
	want, err := Reference(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatalf("%v (run: go run ./config/internal/refgen)", err)
	}
	if string(got) != want {
		t.Fatal("config/REFERENCE.md is stale: run `go run ./config/internal/refgen` from the repository root")
	}
}
