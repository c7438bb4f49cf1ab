package edge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const instrumentationName = "github.com/peerassist/edgebox/edge"

var tracer = otel.Tracer(instrumentationName)

// telemetry holds the server's metric instruments. It is safe for
// concurrent use.
//
// Requests and response bytes are counted in the process with atomics per
// attribute combination and reported by observable counters when metrics
// are collected: a request then costs two atomic adds instead of two SDK
// measurements (attribute resolution included), which was a tenth of the
// CPU time of a small cache hit. The duration histogram is recorded
// directly.
type telemetry struct {
	originBytes metric.Int64Counter
	duration    metric.Float64Histogram
	fills       metric.Int64Counter

	mu    sync.RWMutex
	attrs map[attrKey]*attrCounters
}

// attrCounters are the counters and option slices of one attribute set,
// built once.
type attrCounters struct {
	record   []metric.RecordOption
	observe  []metric.ObserveOption
	requests atomic.Int64
	bytes    atomic.Int64
}

type attrKey struct {
	site, label, method string
	status              int
}

// maxAttrSets bounds the attribute combinations (sites x cache labels x
// statuses x methods); later ones are counted under cache.status
// "overflow".
const maxAttrSets = 4096

func newTelemetry(s *Server) *telemetry {
	m := otel.Meter(instrumentationName)
	t := &telemetry{attrs: map[attrKey]*attrCounters{}}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := m.Int64ObservableCounter("edge.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered by the public listener, by cache status and response status."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			t.mu.RLock()
			defer t.mu.RUnlock()
			for _, a := range t.attrs {
				o.Observe(a.requests.Load(), a.observe...)
			}
			return nil
		}))
	add(err)
	_, err = m.Int64ObservableCounter("edge.response.body.size", metric.WithUnit("By"),
		metric.WithDescription("Response body bytes written to clients."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			t.mu.RLock()
			defer t.mu.RUnlock()
			for _, a := range t.attrs {
				o.Observe(a.bytes.Load(), a.observe...)
			}
			return nil
		}))
	add(err)
	t.originBytes, err = m.Int64Counter("edge.origin.body.size", metric.WithUnit("By"),
		metric.WithDescription("Response body bytes read from origins (fills and pass-through)."))
	add(err)
	t.duration, err = m.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from request start to the end of the response body."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	add(err)
	t.fills, err = m.Int64Counter("edge.fills", metric.WithUnit("{fill}"),
		metric.WithDescription("Origin fills into the cache, by outcome (committed, aborted, too_large, purged)."))
	add(err)
	_, err = m.Int64ObservableGauge("edge.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Open client connections on the public listener."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(s.conns.count()))
			return nil
		}))
	add(err)
	if len(errs) > 0 {
		s.log.Warn("edge: metric instruments", "errors", errs)
	}
	return t
}

func (t *telemetry) counters(k attrKey) *attrCounters {
	t.mu.RLock()
	a, ok := t.attrs[k]
	n := len(t.attrs)
	t.mu.RUnlock()
	if ok {
		return a
	}
	if n >= maxAttrSets {
		k = attrKey{label: "overflow"}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.attrs[k]; ok {
		return a
	}
	attrs := []attribute.KeyValue{
		attribute.String("cache.status", k.label),
		attribute.Int("http.response.status_code", k.status),
		attribute.String("http.request.method", k.method),
	}
	if k.site != "" {
		attrs = append(attrs, attribute.String("edge.site", k.site))
	}
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	a = &attrCounters{record: []metric.RecordOption{set}, observe: []metric.ObserveOption{set}}
	t.attrs[k] = a
	return a
}

// startSpan starts the request's server span, continuing an incoming
// traceparent.
func (x *exchange) startSpan() {
	parent := context.Background()
	h := &x.ctx.Request.Header
	if len(x.req.traceparent) > 0 {
		parent = otel.GetTextMapPropagator().Extract(parent, requestCarrier{h})
	}
	x.spanCtx, x.span = tracer.Start(parent, methodName(h.Method()), serverSpanOpts...)
}

var serverSpanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	case "POST":
		return "POST"
	}
	return "HTTP"
}

// record counts a finished request and ends its span.
func (t *telemetry) record(x *exchange, status int) {
	site := ""
	if x.site != nil {
		site = x.site.name
	}
	method := methodName(x.ctx.Method())
	a := t.counters(attrKey{site: site, label: x.cs.label, method: method, status: status})
	a.requests.Add(1)
	if x.bodySent > 0 {
		a.bytes.Add(x.bodySent)
		x.s.stats.bytesServed.Add(x.bodySent)
	}
	elapsed := time.Since(x.start)
	t.duration.Record(context.Background(), elapsed.Seconds(), a.record...)
	switch x.cs.label {
	case labelHit:
		x.s.stats.hits.Add(1)
	case labelMiss:
		x.s.stats.misses.Add(1)
	case labelStale:
		x.s.stats.stale.Add(1)
	case labelRevalidated:
		x.s.stats.revalidated.Add(1)
	case labelPass:
		x.s.stats.passes.Add(1)
	case labelError:
		x.s.stats.errors.Add(1)
	}
	if sp := x.span; sp != nil {
		if sp.IsRecording() {
			sp.SetAttributes(
				attribute.String("http.request.method", method),
				attribute.String("url.path", string(x.tgt.path())),
				attribute.Int("http.response.status_code", status),
				attribute.String("cache.status", x.cs.label),
				attribute.String("server.address", string(x.ctx.Request.Header.Host())),
				attribute.String("client.address", x.ctx.RemoteIP().String()),
				attribute.Int64("http.response.body.size", x.bodySent),
			)
			if site != "" {
				sp.SetAttributes(attribute.String("edge.site", site))
			}
			if d := x.cs.detail; d != "" {
				sp.SetAttributes(attribute.String("cache.detail", d))
			}
			if status >= 500 {
				sp.SetStatus(codes.Error, x.cs.detail)
			}
		}
		sp.End()
	}
}

func (s *Server) accessLog(x *exchange, status int) {
	site := ""
	if x.site != nil {
		site = x.site.name
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("client", x.ctx.RemoteIP().String()),
		slog.String("method", string(x.ctx.Method())),
		slog.String("host", string(x.ctx.Request.Header.Host())),
		slog.String("target", string(x.ctx.Request.Header.RequestURI())),
		slog.Int("status", status),
		slog.String("cache", x.cs.label),
		slog.String("site", site),
		slog.Int64("bytes", x.bodySent),
		slog.Duration("duration", time.Since(x.start)),
	)
}

// requestCarrier adapts fasthttp request headers to the propagators.
type requestCarrier struct{ h *fasthttp.RequestHeader }

func (c requestCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c requestCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c requestCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

var _ propagation.TextMapCarrier = requestCarrier{}
