package coordinator

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/peerassist/edgebox/peerassist/signal"
)

// TestTelemetry checks the instruments and spans an operator relies on,
// through the SDK (the global providers, as the edge binary installs them).
func TestTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	prevM, prevT := otel.GetMeterProvider(), otel.GetTracerProvider()
	otel.SetMeterProvider(mp)
	otel.SetTracerProvider(tp)
	defer func() {
		otel.SetMeterProvider(prevM)
		otel.SetTracerProvider(prevT)
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
	}()

	e := startEdge(t, testConfig(), nil)
	sw := ih("telemetry")
	a, b := e.mustDial("127.1.0.1"), e.mustDial("127.2.0.1")
	b.announce(sw, signal.EventStarted, 0, 0, func(r *signal.Request) { r.Site = "open" })
	b.mustRecv(signal.KindAnnounce)
	a.announce(sw, signal.EventStarted, 1, 0, func(r *signal.Request) { r.Site = "open" })
	a.mustRecv(signal.KindAnnounce)
	b.mustRecv(signal.KindOffer)
	a.sendRaw("garbage")
	a.mustRecv(signal.KindFailure)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != instrumentation {
			continue
		}
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	for _, name := range []string{"peerassist.peers", "peerassist.swarms", "peerassist.connections", "peerassist.sessions",
		"peerassist.offers.relayed", "peerassist.answers.relayed", "peerassist.messages.rejected", "peerassist.edge.served"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing (have %v)", name, keys(got))
		}
	}
	if g, ok := got["peerassist.peers"].(metricdata.Gauge[int64]); !ok || len(g.DataPoints) != 1 ||
		g.DataPoints[0].Value != 2 || !hasAttr(g.DataPoints[0].Attributes, "peerassist.region", "paris") {
		t.Errorf("peerassist.peers = %+v, want 2 in paris", got["peerassist.peers"])
	}
	if s, ok := got["peerassist.messages.rejected"].(metricdata.Sum[int64]); !ok || len(s.DataPoints) != 1 ||
		s.DataPoints[0].Value != 1 || !hasAttr(s.DataPoints[0].Attributes, "error.type", "malformed") {
		t.Errorf("peerassist.messages.rejected = %+v, want 1 malformed", got["peerassist.messages.rejected"])
	}

	names := map[string]int{}
	for _, s := range spans.Ended() {
		names[s.Name()]++
	}
	// B joined, A joined, A's offer was relayed (relay_trace_ratio 1 in tests).
	if names["peerassist.join"] != 2 || names["peerassist.relay.offer"] != 1 {
		t.Errorf("spans = %v, want 2 joins and 1 offer relay", names)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasAttr(set attribute.Set, key, value string) bool {
	v, ok := set.Value(attribute.Key(key))
	return ok && v.AsString() == value
}
