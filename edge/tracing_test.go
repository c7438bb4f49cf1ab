package edge

import (
	"context"
	"fmt"
	"io"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/config"
	edgetelemetry "github.com/peerassist/edgebox/edge/telemetry"
)

// Requests without a traceparent are traced at trace_sample_ratio, drawn
// by the edge; one not drawn records nothing, not even its origin fetch
// and fill (they must not turn into traces of their own).
func TestTraceSampleRatio(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	// As edge/telemetry installs it, sampling every other root: a fetch or
	// fill span that lost its request's (unsampled) parent would show.
	cfgTel := config.DefaultTelemetry()
	cfgTel.TraceSampleRatio = 1
	tel, err := edgetelemetry.Setup(context.Background(), cfgTel, edgetelemetry.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	tp := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	tp.RegisterSpanProcessor(rec)
	t.Cleanup(func() {
		tel.Shutdown(context.Background())
		otel.SetTracerProvider(oldTP)
		otel.SetTextMapPropagator(oldProp)
	})

	for _, tc := range []struct {
		ratio     float64
		wantSpans bool
	}{{0, false}, {1, true}} {
		e := newEnv(t, nil, func(c *config.Config, _ *Options) { c.Telemetry.TraceSampleRatio = tc.ratio })
		before := len(rec.Ended())
		path := fmt.Sprintf("/bytes/%d", 1000+int(tc.ratio))
		names := func() map[string]int {
			n := map[string]int{}
			for _, s := range rec.Ended()[before:] {
				if s.SpanKind() != trace.SpanKindClient { // not the origin pool's
					n[s.Name()]++
				}
			}
			return n
		}
		e.get(path) // a miss: server span, fetch, fill
		e.get(path) // a hit: server span
		want := map[string]int{}
		if tc.wantSpans {
			want = map[string]int{"GET": 2, "edge.fetch": 1, "edge.fill": 1}
			waitFor(t, "the spans", func() bool { return names()["edge.fill"] == 1 })
		} else {
			waitFor(t, "the fill", func() bool { _, err := e.store.Lookup("demo\x00" + path); return err == nil })
		}
		if got := names(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("trace_sample_ratio %v: spans %v, want %v", tc.ratio, got, want)
		}
	}
}
