package edge

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
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

	edgetelemetry "github.com/peerassist/edgebox/edge/telemetry"
)

const instrumentationName = "github.com/peerassist/edgebox/edge"

// telemetry holds the server's metric instruments. It is safe for
// concurrent use.
//
// Requests and response bytes are counted in the process with atomics per
// attribute combination and reported by observable counters when metrics
// are collected: a request then costs two atomic adds instead of two SDK
// measurements (attribute resolution included), which was a tenth of the
// CPU time of a small cache hit. The same counters answer /stats. The
// duration histogram is aggregated the same way (latency.go).
type telemetry struct {
	originBytes metric.Int64Counter
	fills       metric.Int64Counter
	start       time.Time // of the cumulative histograms
	unregister  func()    // removes the histogram producer

	// attrs is copied on write (under mu), so that every request finds
	// its counters with one atomic load and no lock.
	mu    sync.Mutex
	attrs atomic.Pointer[map[attrKey]*attrCounters]
}

// attrCounters are the counters and option slices of one attribute set,
// built once.
type attrCounters struct {
	set      attribute.Set
	observe  []metric.ObserveOption
	requests atomic.Int64
	bytes    atomic.Int64
	duration durationHist
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
	t := &telemetry{start: time.Now()}
	t.attrs.Store(&map[attrKey]*attrCounters{})
	t.unregister = edgetelemetry.RegisterProducer(t)
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := m.Int64ObservableCounter("edge.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered by the public listener, by cache status and response status."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for _, a := range *t.attrs.Load() {
				o.Observe(a.requests.Load(), a.observe...)
			}
			return nil
		}))
	add(err)
	_, err = m.Int64ObservableCounter("edge.response.body.size", metric.WithUnit("By"),
		metric.WithDescription("Response body bytes written to clients."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for _, a := range *t.attrs.Load() {
				o.Observe(a.bytes.Load(), a.observe...)
			}
			return nil
		}))
	add(err)
	t.originBytes, err = m.Int64Counter("edge.origin.body.size", metric.WithUnit("By"),
		metric.WithDescription("Response body bytes read from origins (fills and pass-through)."))
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

// siteCounters are a site's counters of GET hits (site.hitCounters), of
// the telemetry they belong to.
type siteCounters struct {
	t *telemetry
	a *attrCounters
}

func (t *telemetry) counters(k attrKey) *attrCounters {
	if a, ok := (*t.attrs.Load())[k]; ok {
		return a
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.attrs.Load()
	if len(old) >= maxAttrSets {
		k = attrKey{label: "overflow"}
	}
	if a, ok := old[k]; ok {
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
	set := attribute.NewSet(attrs...)
	a := &attrCounters{set: set, observe: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	m := make(map[attrKey]*attrCounters, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = a
	t.attrs.Store(&m)
	return a
}

// totals sums the request and byte counters by cache label (for /stats).
func (t *telemetry) totals() (requests, bodyBytes int64, byLabel map[string]int64) {
	byLabel = map[string]int64{}
	for k, a := range *t.attrs.Load() {
		n := a.requests.Load()
		requests += n
		bodyBytes += a.bytes.Load()
		byLabel[k.label] += n
	}
	return requests, bodyBytes, byLabel
}

// startSpan starts the request's server span. A request with a
// traceparent continues its trace (sampled as its parent says). Others are
// traced at telemetry.trace_sample_ratio, drawn here: a request not drawn
// starts no span at all, which saves about 0.6 us of the 2 us of CPU a hit
// takes in BenchmarkHit (an unsampled span from the SDK still costs IDs,
// the sampler, two allocations). One drawn is started with SampledRoot so
// that the SDK (edge/telemetry) does not draw again.
func (x *exchange) startSpan() {
	h := &x.ctx.Request.Header
	if len(x.req.traceparent) > 0 {
		parent := otel.GetTextMapPropagator().Extract(context.Background(), requestCarrier{h})
		x.spanCtx, x.span = x.s.tracer.Start(parent, spanName(h.Method()), serverSpanOpts...)
		return
	}
	if r := x.s.tbl.Load().cfg.Telemetry.TraceSampleRatio; r >= 1 || (r > 0 && rand.Float64() < r) {
		x.spanCtx, x.span = x.s.tracer.Start(edgetelemetry.SampledRoot(context.Background()), spanName(h.Method()), serverSpanOpts...)
	}
}

// traceContext is the parent of the request's child spans (origin fetch,
// fill) and of the traceparent sent upstream: the server span's context,
// or, for a request not traced, one with a span context of its own that is
// not sampled, so that those are not recorded either (as under an
// unsampled server span).
func (x *exchange) traceContext() context.Context {
	if x.spanCtx == nil {
		var tid trace.TraceID
		var sid trace.SpanID
		binary.LittleEndian.PutUint64(tid[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(tid[8:], rand.Uint64()|1) // never the invalid zero ID
		binary.LittleEndian.PutUint64(sid[:], rand.Uint64()|1)
		x.spanCtx = trace.ContextWithSpanContext(context.Background(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	}
	return x.spanCtx
}

var serverSpanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// methodName is the request method as the HTTP semantic conventions name
// it: one of the known methods, else "_OTHER" (the attribute's value) and
// "HTTP" (the span's name).
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
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return "_OTHER"
}

// spanName is the server span's name: the method, or "HTTP" for one the
// conventions do not know.
func spanName(m []byte) string {
	if n := methodName(m); n != "_OTHER" {
		return n
	}
	return "HTTP"
}

// record counts a finished request and ends its span.
func (t *telemetry) record(x *exchange, status int) {
	site := ""
	if x.site != nil {
		site = x.site.name
	}
	method := "_OTHER"
	if !x.unreadable {
		method = methodName(x.ctx.Method())
	}
	var a *attrCounters
	if x.site != nil && x.cs.label == labelHit && method == "GET" && (status == 200 || status == 206) {
		// Most requests: the site remembers their counters, which spares
		// hashing the key.
		c := &x.site.hitCounters[status&1] // 200 -> 0, 206 -> 1
		if h := c.Load(); h != nil && h.t == t {
			a = h.a
		} else {
			a = t.counters(attrKey{site: site, label: x.cs.label, method: method, status: status})
			c.Store(&siteCounters{t, a})
		}
	} else {
		a = t.counters(attrKey{site: site, label: x.cs.label, method: method, status: status})
	}
	a.requests.Add(1)
	if x.bodySent > 0 {
		a.bytes.Add(x.bodySent)
	}
	a.duration.record(time.Since(x.start))
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
		slog.String("method", accessLogMethod(x)),
		slog.String("host", string(x.ctx.Request.Header.Host())),
		slog.String("target", string(x.ctx.Request.Header.RequestURI())),
		slog.Int("status", status),
		slog.String("cache", x.cs.label),
		slog.String("site", site),
		slog.Int64("bytes", x.bodySent),
		slog.Duration("duration", time.Since(x.start)),
	)
}

// accessLogMethod is the request's method, "" when it may not have been
// read (handleParseError).
func accessLogMethod(x *exchange) string {
	if x.unreadable {
		return ""
	}
	return string(x.ctx.Method())
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
