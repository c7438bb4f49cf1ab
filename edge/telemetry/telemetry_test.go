package telemetry

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"

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

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/metrics")
	tel.MetricsHandler()(&ctx)
	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	for _, want := range []string{"edge_test_requests_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
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
