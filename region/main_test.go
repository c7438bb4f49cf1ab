package region

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner sleeps out its idle period after
		// Shutdown, and its Date-header updater runs for the process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// quietLogger discards log output of tests that expect failures.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeFile writes content to name inside dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseRegion returns the region defaults, as config.Load would fill them.
func baseRegion() config.Region { return config.DefaultRegion() }

// mmdbNet is one network of a test ASN database.
type mmdbNet struct {
	prefix string
	asn    uint32
	org    string
}

// buildMMDB writes a GeoLite2-ASN-format database with the given networks
// using the maintained writer (mmdbwriter), the way MaxMind's own tooling
// builds them. ipVersion is 4 or 6 (IPv6 trees alias IPv4 as MaxMind does).
func buildMMDB(t testing.TB, path string, ipVersion int, nets []mmdbNet) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-ASN",
		Description:             map[string]string{"en": "edgebox region test database"},
		IPVersion:               ipVersion,
		RecordSize:              24,
		IncludeReservedNetworks: true,
		BuildEpoch:              1700000000,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.prefix)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n.asn)}
		if n.org != "" {
			rec["autonomous_system_organization"] = mmdbtype.String(n.org)
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatalf("inserting %s: %v", n.prefix, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
