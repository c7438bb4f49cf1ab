package telemetry

import (
	"context"
	"errors"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Metrics a package aggregates itself, handed to the exporters as they
// collect.
//
// The OpenTelemetry API has no asynchronous histogram, and the SDK's
// synchronous one resolves the attribute set and takes a lock on every
// measurement: on the edge's cache hits that was 4% of the process's CPU.
// A package on such a hot path keeps its own lock-free buckets and
// registers a metric.Producer here; Setup wires every registered producer
// into the metric reader, so the data comes out of /metrics like any
// instrument's.

var producers struct {
	mu   sync.Mutex
	next int
	byID map[int]sdkmetric.Producer
}

// RegisterProducer adds p to what the installed reader collects (from
// Setup on; registering before Setup is fine). Call the returned function
// to remove it. Safe for concurrent use.
func RegisterProducer(p sdkmetric.Producer) (unregister func()) {
	producers.mu.Lock()
	defer producers.mu.Unlock()
	if producers.byID == nil {
		producers.byID = map[int]sdkmetric.Producer{}
	}
	id := producers.next
	producers.next++
	producers.byID[id] = p
	return func() {
		producers.mu.Lock()
		delete(producers.byID, id)
		producers.mu.Unlock()
	}
}

// registeredProducers is the Producer Setup gives the reader: the
// concatenation of every registered producer's metrics.
type registeredProducers struct{}

func (registeredProducers) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	producers.mu.Lock()
	list := make([]sdkmetric.Producer, 0, len(producers.byID))
	for _, p := range producers.byID {
		list = append(list, p)
	}
	producers.mu.Unlock()
	var out []metricdata.ScopeMetrics
	var errs []error
	for _, p := range list {
		sm, err := p.Produce(ctx)
		out = append(out, sm...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
