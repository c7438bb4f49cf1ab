package webclient

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

// TestTypeScript bundles the TypeScript unit tests (test/*.test.ts: the
// wire codec against peerassist/wire's golden vectors, parsers, the
// scheduler) with esbuild and runs them with Node's test runner. Skipped
// where node is missing, except under CI=true.
func TestTypeScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node not found (CI=true: the TypeScript tests must run)")
		}
		t.Skip("node not found: TypeScript unit tests not run")
	}
	vectors, err := filepath.Abs("../peerassist/wire/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vectors); err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	entries, err := filepath.Glob("test/*.test.ts")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no TypeScript tests found (%v)", err)
	}
	dir := t.TempDir()
	abs, _ := filepath.Abs(".")
	res := api.Build(api.BuildOptions{
		EntryPoints:   entries,
		AbsWorkingDir: abs,
		Bundle:        true,
		Write:         true,
		Outdir:        dir,
		OutExtension:  map[string]string{".js": ".mjs"},
		Format:        api.FormatESModule,
		Platform:      api.PlatformNode,
		Target:        api.ES2022,
		LogLevel:      api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("bundling the tests: %v", res.Errors[0].Text)
	}
	outs, _ := filepath.Glob(filepath.Join(dir, "*.mjs"))
	cmd := exec.Command(node, append([]string{"--test", "--test-reporter=spec"}, outs...)...)
	cmd.Env = append(os.Environ(), "PA_WIRE_VECTORS="+vectors)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
