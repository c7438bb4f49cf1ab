package telemetry

import (
	"context"
	"io"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/config"
)

func TestSampledRoot(t *testing.T) {
	cfg := config.DefaultTelemetry()
	cfg.TraceSampleRatio = 0 // roots are never sampled by ratio
	tel, err := Setup(context.Background(), cfg, Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tr := otel.Tracer("test")
	unsampledParent := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true,
	}))
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"root", context.Background(), false},
		{"root marked SampledRoot", SampledRoot(context.Background()), true},
		{"child of an unsampled parent, marked", SampledRoot(unsampledParent), false},
	}
	for _, tc := range tests {
		_, span := tr.Start(tc.ctx, "x")
		if got := span.SpanContext().IsSampled(); got != tc.want {
			t.Errorf("%s: sampled = %v, want %v", tc.name, got, tc.want)
		}
		span.End()
	}
}
