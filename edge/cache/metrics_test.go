package cache

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	defer otel.SetMeterProvider(prev)

	s := openStore(t, Options{ChunkBytes: testChunk, DiskPath: t.TempDir()})
	defer s.Close()
	info := fillObject(t, s, "obj", content("obj", 2*testChunk+1), true, 1000)
	if _, err := readRange(s, info, 0, -1); err != nil {
		t.Fatal(err)
	}
	s.Lookup("missing")

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			case metricdata.Sum[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				name := m.Name
				if tier, ok := p.Attributes.Value(attribute.Key("cache.tier")); ok {
					name += "/" + tier.AsString()
				}
				got[name] = p.Value
			}
		}
	}
	st := s.Stats()
	for name, want := range map[string]int64{
		"edgebox.cache.size/memory":    st.MemoryBytes,
		"edgebox.cache.size/disk":      st.DiskBytes,
		"edgebox.cache.objects":        1,
		"edgebox.cache.hits/memory":    3,
		"edgebox.cache.hits/disk":      0,
		"edgebox.cache.misses":         1,
		"edgebox.cache.fills":          1,
		"edgebox.cache.evictions":      0,
		"edgebox.cache.corrupt_chunks": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("metric %s = %d (present %v), want %d", name, v, ok, want)
		}
	}
	if st.DiskBytes <= 2*testChunk {
		t.Errorf("Stats().DiskBytes = %d, want the body and its metadata", st.DiskBytes)
	}
}
