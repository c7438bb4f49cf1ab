package telemetry

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/peerassist/edgebox/config"
)

func TestMetricsReachPrometheus(t *testing.T) {
	var logs bytes.Buffer
	tel, err := Setup(context.Background(), config.DefaultTelemetry(), Options{Version: "test", LogOutput: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	c, err := otel.Meter("test").Int64Counter("edge.test.requests")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	unregister := RegisterProducer(fixedProducer{})
	defer unregister()

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/metrics")
	tel.MetricsHandler()(&ctx)
	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	for _, want := range []string{"edge_test_requests_total", "go_goroutines", "process_resident_memory_bytes",
		`edge_test_produced_total{otel_scope_name="test/producer",otel_scope_schema_url="",otel_scope_version="",what="x"} 7`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Unregistered, the producer's metrics are gone.
	unregister()
	ctx.Response.Reset()
	tel.MetricsHandler()(&ctx)
	if strings.Contains(string(ctx.Response.Body()), "edge_test_produced") {
		t.Errorf("an unregistered producer's metric is still exported")
	}
}

// fixedProducer produces one cumulative counter, edge.test.produced = 7.
type fixedProducer struct{}

func (fixedProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	now := time.Now()
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: "test/producer"},
		Metrics: []metricdata.Metrics{{
			Name: "edge.test.produced",
			Data: metricdata.Sum[int64]{
				Temporality: metricdata.CumulativeTemporality,
				IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{{
					Attributes: attribute.NewSet(attribute.String("what", "x")),
					StartTime:  now.Add(-time.Minute), Time: now, Value: 7,
				}},
			},
		}},
	}}, nil
}

func TestLoggerFormats(t *testing.T) {
	for _, tt := range []struct{ format, want string }{{"json", `"msg":"hello"`}, {"text", "msg=hello"}} {
		var b bytes.Buffer
		cfg := config.DefaultTelemetry()
		cfg.LogFormat = tt.format
		NewLogger(cfg, &b).Info("hello")
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("format %s: got %q, want it to contain %q", tt.format, b.String(), tt.want)
		}
	}
}
