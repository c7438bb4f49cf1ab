package origin

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const scope = "github.com/peerassist/edgebox/origin"

// Attribute keys outside the semantic conventions.
const (
	attrOrigin  = attribute.Key("edgebox.origin.url")     // base URL of the origin
	attrOutcome = attribute.Key("edgebox.origin.outcome") // 2xx..5xx, or the failure kind
)

// telemetry holds the pool's instruments (global OpenTelemetry API; the
// edge binary installs the SDK). Safe for concurrent use.
type telemetry struct {
	tracer   trace.Tracer
	requests metric.Int64Counter
	duration metric.Float64Histogram
	reg      metric.Registration
}

func newTelemetry(p *Pool) *telemetry {
	m := otel.Meter(scope)
	t := &telemetry{tracer: otel.Tracer(scope)}
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	t.requests, err = m.Int64Counter("edgebox.origin.requests",
		metric.WithDescription("Origin request attempts by origin and outcome (status class or failure kind)."),
		metric.WithUnit("{request}"))
	note(err)
	t.duration, err = m.Float64Histogram("http.client.request.duration",
		metric.WithDescription("Time from sending an origin request to its response headers."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30))
	note(err)
	up, err := m.Int64ObservableGauge("edgebox.origin.up",
		metric.WithDescription("1 if the origin is considered healthy, 0 if it is marked down."))
	note(err)
	received, err := m.Int64ObservableCounter("edgebox.origin.received",
		metric.WithDescription("Bytes read from origin connections (headers and bodies)."),
		metric.WithUnit("By"))
	note(err)
	outstanding, err := m.Int64ObservableUpDownCounter("edgebox.origin.outstanding",
		metric.WithDescription("Origin requests waiting for response headers."),
		metric.WithUnit("{request}"))
	note(err)
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		snap := p.cur.Load()
		if snap == nil {
			return nil
		}
		for url, u := range snap.upstreams {
			set := metric.WithAttributes(attrOrigin.String(url))
			v := int64(0)
			if u.state.isUp() {
				v = 1
			}
			o.ObserveInt64(up, v, set)
			o.ObserveInt64(received, u.state.bytesIn.Load(), set)
			o.ObserveInt64(outstanding, u.state.outstanding.Load(), set)
		}
		return nil
	}, up, received, outstanding)
	note(err)
	for _, err := range errs {
		p.log.Error("origin pool: creating metric instrument", slog.Any("err", err))
	}
	return t
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}

// startSpan starts the client span of one attempt. Attributes are set only
// on recording spans: most requests are not sampled, and they should cost
// nothing here.
func (t *telemetry) startSpan(ctx context.Context, u *upstream, method, url string, attempt int) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", method),
			attribute.String("server.address", u.serverHost),
			attribute.Int("server.port", u.serverPort),
			attribute.String("url.full", url),
			attrOrigin.String(u.base),
		)
		if attempt > 1 {
			span.SetAttributes(attribute.Int("http.request.resend_count", attempt-1))
		}
	}
	return ctx, span
}

// durationKey identifies one attribute set of the duration histogram.
type durationKey struct {
	method, errorType string
	status            int
}

// record ends the attempt's span and counts it. Metric attribute sets are
// built once per origin and outcome and then reused.
func (t *telemetry) record(ctx context.Context, span trace.Span, u *upstream, method string, status int, kind, err error, elapsed time.Duration) {
	var outcome, errorType string
	if kind != nil {
		outcome = kindName(kind)
		errorType = outcome
	} else {
		outcome = statusClass(status)
		if status >= 500 {
			errorType = strconv.Itoa(status)
		}
	}
	if span.IsRecording() {
		if kind == nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		if errorType != "" {
			span.SetAttributes(attribute.String("error.type", errorType))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			} else {
				span.SetStatus(codes.Error, "origin answered "+errorType)
			}
		}
	}
	span.End()

	ro, ok := u.requestOpts.Load(outcome)
	if !ok {
		ro, _ = u.requestOpts.LoadOrStore(outcome, metric.WithAttributeSet(attribute.NewSet(attrOrigin.String(u.base), attrOutcome.String(outcome))))
	}
	t.requests.Add(ctx, 1, ro.(metric.AddOption))

	key := durationKey{method: method, errorType: errorType, status: status}
	do, ok := u.durationOpts.Load(key)
	if !ok {
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("server.address", u.serverHost),
			attribute.Int("server.port", u.serverPort),
		}
		if status != 0 {
			attrs = append(attrs, attribute.Int("http.response.status_code", status))
		}
		if errorType != "" {
			attrs = append(attrs, attribute.String("error.type", errorType))
		}
		do, _ = u.durationOpts.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(attrs...)))
	}
	t.duration.Record(ctx, elapsed.Seconds(), do.(metric.RecordOption))
}

func statusClass(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	}
	return "5xx"
}

// kindName is the error.type / outcome value of a failure kind.
func kindName(kind error) string {
	switch kind {
	case ErrConnect:
		return "connect_error"
	case ErrTimeout:
		return "timeout"
	case ErrBadResponse:
		return "bad_response"
	case ErrOverloaded:
		return "overloaded"
	case ErrCanceled:
		return "canceled"
	}
	return "other"
}

func splitHostPort(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// injectTraceContext writes the W3C traceparent (and tracestate) of ctx's
// span into the request, replacing any the client sent: the origin sees
// the edge's attempt span as its parent.
func injectTraceContext(ctx context.Context, h *fasthttp.RequestHeader) {
	propagation.TraceContext{}.Inject(ctx, requestHeaderCarrier{h})
}

// requestHeaderCarrier adapts fasthttp request headers to the propagation
// API.
type requestHeaderCarrier struct{ h *fasthttp.RequestHeader }

func (c requestHeaderCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c requestHeaderCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c requestHeaderCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

var _ propagation.TextMapCarrier = requestHeaderCarrier{}
