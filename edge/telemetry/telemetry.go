// Package telemetry installs the OpenTelemetry SDK for the edge binary:
// traces (parent-based ratio sampling, exported by OTLP/HTTP when
// configured), metrics (exported to Prometheus at the admin /metrics, and by
// OTLP when configured) and the structured logger.
//
// Every other package uses only the global otel API; instruments they create
// before Setup runs are bound to the SDK when it is installed.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/peerassist/edgebox/config"
)

// Telemetry holds the installed providers. Create it with Setup; it is safe
// for concurrent use.
type Telemetry struct {
	Logger   *slog.Logger
	registry *prometheus.Registry
	metrics  fasthttp.RequestHandler
	shutdown []func(context.Context) error
}

// Options are inputs that do not come from the config file.
type Options struct {
	// Version is reported as service.version.
	Version string
	// LogOutput receives logs. Default os.Stderr.
	LogOutput io.Writer
}

// Setup builds the logger and installs the global tracer and meter
// providers and propagators. Call Shutdown to flush exporters.
func Setup(ctx context.Context, cfg config.Telemetry, opts Options) (*Telemetry, error) {
	t := &Telemetry{Logger: NewLogger(cfg, opts.LogOutput)}

	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(opts.Version),
	))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	// Metrics: a private Prometheus registry, so /metrics shows exactly
	// this process (runtime and process collectors plus every otel meter).
	t.registry = prometheus.NewRegistry()
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithProducer(registeredProducers{}))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(promExp))
	otel.SetMeterProvider(mp)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{}))

	// Traces: always sampled by parent; roots at the configured ratio, or
	// always when the caller drew the ratio itself (SampledRoot).
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(rootSampler{sdktrace.TraceIDRatioBased(cfg.TraceSampleRatio)})),
	}
	if endpoint, ok := otlpEndpoint(cfg); ok {
		var eo []otlptracehttp.Option
		if endpoint != "" {
			eo = append(eo, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
		}
		exp, err := otlptracehttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		t.Logger.Info("exporting traces by OTLP/HTTP", "endpoint", endpointForLog(endpoint))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	otel.SetTracerProvider(tp)
	t.shutdown = append(t.shutdown, tp.Shutdown)

	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		t.Logger.Warn("opentelemetry", "err", err)
	}))
	return t, nil
}

// otlpEndpoint returns the configured endpoint ("" means: let the exporter
// read the standard OTEL_EXPORTER_OTLP_* variables) and whether OTLP export
// is on at all.
func otlpEndpoint(cfg config.Telemetry) (string, bool) {
	if cfg.OTLPEndpoint != "" {
		return cfg.OTLPEndpoint, true
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(v) != "" {
			return "", true
		}
	}
	return "", false
}

func endpointForLog(e string) string {
	if e == "" {
		return "from OTEL_EXPORTER_OTLP_* environment"
	}
	return e
}

// MetricsHandler serves the Prometheus exposition of every metric.
func (t *Telemetry) MetricsHandler() fasthttp.RequestHandler { return t.metrics }

// Registry is the Prometheus registry behind MetricsHandler.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Shutdown flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	return errors.Join(errs...)
}

// NewLogger returns the slog logger the config asks for, writing to w
// (os.Stderr when nil).
func NewLogger(cfg config.Telemetry, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	ho := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}

// SampledRoot marks ctx so that a root span started with it is sampled,
// whatever the ratio: for callers that draw trace_sample_ratio themselves
// before starting a span, so that a request not traced starts no span at
// all (the edge's request spans: an unsampled span from the SDK still costs
// about half a microsecond). Spans with a parent follow the parent.
func SampledRoot(ctx context.Context) context.Context {
	return context.WithValue(ctx, sampledRootKey{}, true)
}

type sampledRootKey struct{}

// rootSampler samples roots marked by SampledRoot, others by ratio.
type rootSampler struct{ ratio sdktrace.Sampler }

func (r rootSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.ParentContext != nil && p.ParentContext.Value(sampledRootKey{}) != nil {
		return sdktrace.AlwaysSample().ShouldSample(p)
	}
	return r.ratio.ShouldSample(p)
}

func (r rootSampler) Description() string {
	return "SampledRootOr{" + r.ratio.Description() + "}"
}
