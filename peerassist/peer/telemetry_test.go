package peer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/peerassist/edgebox/peerassist/peer/peertest"
)

// TestTelemetry: with SDK providers installed, a fetch records its span and
// the bytes by source.
func TestTelemetry(t *testing.T) {
	leakCheck(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevM, prevT := otel.GetMeterProvider(), otel.GetTracerProvider()
	otel.SetMeterProvider(mp)
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetMeterProvider(prevM)
		otel.SetTracerProvider(prevT)
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})

	e := peertest.Start(t, 64<<10, nil)
	p := newTestPeer(t, e.URL, "127.0.5.1", nil)
	const size = 300_000
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := fmt.Sprintf("/bytes/%d", size)
	if _, err := p.Fetch(ctx, path, FetchOptions{}); err != nil {
		t.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				key := m.Name
				if v, ok := dp.Attributes.Value(attribute.Key("peerassist.source")); ok {
					key += "/" + v.AsString()
				}
				if v, ok := dp.Attributes.Value(attribute.Key("peerassist.edge_fetch")); ok {
					key += "/" + v.AsString()
				}
				got[key] += dp.Value
			}
		}
	}
	if got["peerassist.peer.received/edge"] != size {
		t.Errorf("received from edge = %d, want %d (all metrics %v)", got["peerassist.peer.received/edge"], size, got)
	}
	if got["peerassist.peer.edge_fetches/seed"] == 0 {
		t.Errorf("no edge fetch counted: %v", got)
	}

	var span sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "peerassist.peer.fetch" {
			span = s
		}
	}
	if span == nil {
		t.Fatal("no peerassist.peer.fetch span")
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range span.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if attrs["url.path"].AsString() != path || attrs["peerassist.edge_bytes"].AsInt64() != size {
		t.Errorf("span attributes %v", span.Attributes())
	}
}
