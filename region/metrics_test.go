package region

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/peerassist/edgebox/config"
)

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	defer func() { otel.SetMeterProvider(prev); mp.Shutdown(context.Background()) }()

	dir := t.TempDir()
	writeFile(t, dir, "a.tsv", "1.0.0.0\t1.0.0.255\t1\tZZ\tX\n2001:db8::\t2001:db8::ffff\t1\tZZ\tX\n")
	cfg := baseRegion()
	cfg.Sources = []config.RegionSource{{Path: "a.tsv"}}
	cfg.Regions = []config.RegionDef{{Name: "r", ASNs: []config.ASNDef{{ASN: 1}}}}
	l, err := New(cfg, Options{BaseDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ip := range []string{"1.0.0.1", "1.0.0.2", "1.0.0.3", "9.9.9.9", "2001:db8::1"} {
		l.Locate(netip.MustParseAddr(ip))
	}
	bad := cfg
	bad.Sources = []config.RegionSource{{Path: filepath.Join(dir, "missing.tsv")}}
	if err := l.Reload(bad); err == nil {
		t.Fatal("Reload(missing file) succeeded")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != instrumentation {
			continue
		}
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				key := m.Name
				for _, kv := range p.Attributes.ToSlice() {
					key += "," + string(kv.Key) + "=" + kv.Value.Emit()
				}
				got[key] = p.Value
			}
		}
	}
	want := map[string]int64{
		"region.lookups,region.lookup.result=known":    4,
		"region.lookups,region.lookup.result=unknown":  1,
		"region.reloads,region.reload.outcome=success": 1,
		"region.reloads,region.reload.outcome=failure": 1,
		"region.table.prefixes,network.type=ipv4":      1,
		"region.table.prefixes,network.type=ipv6":      1,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], w, got)
		}
	}
}
