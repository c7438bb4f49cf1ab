package edge

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The http.server.request.duration histogram, aggregated in the process.
//
// Every answer records its duration in the buckets of its attribute set
// (attrCounters) with two atomic adds; the telemetry's Produce hands the
// cumulative histograms to the metric reader (edge/telemetry
// RegisterProducer) when metrics are collected. Recording through the SDK
// instead cost about 0.3 us a request (attribute resolution, a map lookup
// and a lock), 4% of the CPU of a 1 KiB cache hit.

// durationBoundsSeconds are the histogram's bucket upper bounds: from half
// a millisecond (a hit) to a minute (a slow client reading a large body).
var durationBoundsSeconds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

var durationBounds = func() []time.Duration {
	b := make([]time.Duration, len(durationBoundsSeconds))
	for i, s := range durationBoundsSeconds {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// durationHist is one attribute set's cumulative histogram. Its zero value
// is empty and ready; it is safe for concurrent use.
type durationHist struct {
	counts   [len(durationBoundsSeconds) + 1]atomic.Uint64 // the last is (60 s, +Inf)
	sumNanos atomic.Int64
}

// record adds d. Bucket i holds (bounds[i-1], bounds[i]], as OpenTelemetry's
// explicit bucket histogram does.
func (h *durationHist) record(d time.Duration) {
	d = max(d, 0)
	// A linear scan: most answers (hits) stop at the first bound.
	i := 0
	for i < len(durationBounds) && d > durationBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNanos.Add(int64(d))
}

// dataPoint is h as cumulative OpenTelemetry data. The buckets are read
// one by one while requests go on: the count is their sum, so the point is
// consistent in itself; the sum may include a request or two more.
func (h *durationHist) dataPoint(dp *metricdata.HistogramDataPoint[float64]) {
	dp.Bounds = durationBoundsSeconds[:]
	dp.BucketCounts = make([]uint64, len(h.counts))
	dp.Count = 0
	for i := range h.counts {
		n := h.counts[i].Load()
		dp.BucketCounts[i] = n
		dp.Count += n
	}
	dp.Sum = time.Duration(h.sumNanos.Load()).Seconds()
}

// Produce implements go.opentelemetry.io/otel/sdk/metric.Producer: the
// duration histogram of every attribute set seen so far.
func (t *telemetry) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	attrs := *t.attrs.Load()
	now := time.Now()
	points := make([]metricdata.HistogramDataPoint[float64], 0, len(attrs))
	for _, a := range attrs {
		dp := metricdata.HistogramDataPoint[float64]{Attributes: a.set, StartTime: t.start, Time: now}
		a.duration.dataPoint(&dp)
		if dp.Count > 0 {
			points = append(points, dp)
		}
	}
	if len(points) == 0 {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: instrumentationName},
		Metrics: []metricdata.Metrics{{
			Name:        "http.server.request.duration",
			Description: "Time from request start to the end of the response body.",
			Unit:        "s",
			Data: metricdata.Histogram[float64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints:  points,
			},
		}},
	}}, nil
}
