// Package bundler builds the web client's browser bundles from its
// TypeScript sources with esbuild's Go API, so building needs no Node. The
// build command writes the result to webclient/dist; a test in package
// webclient rebuilds in memory and compares, which is how CI notices a
// committed bundle that no longer matches its sources.
package bundler

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// Output file names under dist/.
const (
	ESMFile  = "peerassist.mjs" // ES module: import { PeerAssist } from ".../peerassist.mjs"
	IIFEFile = "peerassist.js"  // classic script: defines the global PeerAssist
	// GlobalName is the classic script's global.
	GlobalName = "PeerAssist"
)

// MaxGzipBytes is the size budget of each bundle, gzipped (hls.js is not
// part of the bundle).
const MaxGzipBytes = 30 << 10

// Build bundles dir/src/index.ts (dir is the webclient directory) and
// returns the contents of each output by file name. It writes nothing.
func Build(dir string) (map[string][]byte, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundler: %w", err)
	}
	entry := filepath.Join(absDir, "src", "index.ts")
	if _, err := os.Stat(entry); err != nil {
		return nil, fmt.Errorf("bundler: entry point: %w (run from the repository root or pass -dir)", err)
	}
	version, err := packageVersion(absDir)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, 2)
	for _, f := range []struct {
		name   string
		format api.Format
	}{{ESMFile, api.FormatESModule}, {IIFEFile, api.FormatIIFE}} {
		opts := api.BuildOptions{
			EntryPoints:       []string{entry},
			AbsWorkingDir:     absDir,
			Bundle:            true,
			Write:             false,
			Outfile:           filepath.Join(absDir, "dist", f.name),
			Format:            f.format,
			Platform:          api.PlatformBrowser,
			Target:            api.ES2020,
			MinifyWhitespace:  true,
			MinifyIdentifiers: true,
			MinifySyntax:      true,
			LegalComments:     api.LegalCommentsNone,
			Charset:           api.CharsetUTF8,
			Define:            map[string]string{"__PA_VERSION__": fmt.Sprintf("%q", version)},
			Banner:            map[string]string{"js": "/*! @peerassist/webclient " + version + " */"},
			LogLevel:          api.LogLevelSilent,
		}
		if f.format == api.FormatIIFE {
			opts.GlobalName = GlobalName
		}
		res := api.Build(opts)
		if len(res.Errors) > 0 {
			return nil, fmt.Errorf("bundler: %s: %s", f.name, formatMessages(res.Errors))
		}
		if len(res.OutputFiles) != 1 {
			return nil, fmt.Errorf("bundler: %s: esbuild produced %d files, want 1", f.name, len(res.OutputFiles))
		}
		out[f.name] = res.OutputFiles[0].Contents
	}
	return out, nil
}

// GzipSize is len(gzip -9 of b).
func GzipSize(b []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Len()
}

// packageVersion reads "version" from dir/package.json without a JSON
// dependency on npm's full schema.
func packageVersion(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", fmt.Errorf("bundler: %w", err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return "", fmt.Errorf("bundler: package.json: %w", err)
	}
	if pkg.Version == "" {
		return "", fmt.Errorf("bundler: package.json: no version")
	}
	return pkg.Version, nil
}

func formatMessages(msgs []api.Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("; ")
		}
		if m.Location != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", m.Location.File, m.Location.Line, m.Location.Column)
		}
		b.WriteString(m.Text)
	}
	return b.String()
}
