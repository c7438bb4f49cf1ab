package edge

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestDurationHistBuckets(t *testing.T) {
	tests := []struct {
		d      time.Duration
		bucket int
	}{
		{-time.Second, 0}, // a clock step back counts as 0
		{0, 0},
		{500 * time.Microsecond, 0}, // upper bounds are inclusive
		{500*time.Microsecond + 1, 1},
		{time.Millisecond, 1},
		{3 * time.Millisecond, 3},
		{time.Second, 10},
		{60 * time.Second, 15},
		{61 * time.Second, 16},
		{time.Hour, 16},
	}
	for _, tt := range tests {
		var h durationHist
		h.record(tt.d)
		var dp metricdata.HistogramDataPoint[float64]
		h.dataPoint(&dp)
		if dp.Count != 1 || dp.BucketCounts[tt.bucket] != 1 || len(dp.BucketCounts) != len(dp.Bounds)+1 {
			t.Errorf("record(%v): count %d, buckets %v; want 1 in bucket %d", tt.d, dp.Count, dp.BucketCounts, tt.bucket)
		}
		if want := max(tt.d, 0).Seconds(); dp.Sum != want {
			t.Errorf("record(%v): sum %v, want %v", tt.d, dp.Sum, want)
		}
	}
}

// TestDurationHistogramCollected: the edge's requests come out of a metric
// reader as the http.server.request.duration histogram, per attribute set.
func TestDurationHistogramCollected(t *testing.T) {
	e := newEnv(t, nil)
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(e.srv.tel))
	sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e.get("/bytes/100")
	e.get("/bytes/100")
	e.get("/bytes/100")
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var hist *metricdata.Histogram[float64]
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "http.server.request.duration" && sm.Scope.Name == instrumentationName {
				h, ok := m.Data.(metricdata.Histogram[float64])
				if !ok || m.Unit != "s" {
					t.Fatalf("duration metric: %T unit %q", m.Data, m.Unit)
				}
				hist = &h
			}
		}
	}
	if hist == nil {
		t.Fatalf("no duration histogram in %+v", rm)
	}
	if hist.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("temporality %v", hist.Temporality)
	}
	counts := map[string]uint64{}
	for _, dp := range hist.DataPoints {
		label, _ := dp.Attributes.Value(attribute.Key("cache.status"))
		status, _ := dp.Attributes.Value(attribute.Key("http.response.status_code"))
		if status.AsInt64() != 200 || dp.Sum <= 0 || dp.StartTime.After(dp.Time) {
			t.Errorf("%s: status %d, sum %v, start %v time %v", label.AsString(), status.AsInt64(), dp.Sum, dp.StartTime, dp.Time)
		}
		counts[label.AsString()] += dp.Count
	}
	if counts["miss"] != 1 || counts["hit"] != 2 {
		t.Errorf("requests by cache status in the histogram: %v, want 1 miss and 2 hits", counts)
	}
}
