package cache

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const instrumentationName = "github.com/peerassist/edgebox/edge/cache"

var (
	tierMemory = metric.WithAttributeSet(attribute.NewSet(attribute.String("cache.tier", "memory")))
	tierDisk   = metric.WithAttributeSet(attribute.NewSet(attribute.String("cache.tier", "disk")))
)

// registerMetrics exports Stats through the global OpenTelemetry meter
// (the edge binary installs the SDK). The values are read at collection
// time, so the hot path pays nothing for them.
func (s *Store) registerMetrics() error {
	m := otel.Meter(instrumentationName)
	size, err1 := m.Int64ObservableGauge("edgebox.cache.size",
		metric.WithUnit("By"), metric.WithDescription("Bytes stored, by tier."))
	objects, err2 := m.Int64ObservableGauge("edgebox.cache.objects",
		metric.WithUnit("{object}"), metric.WithDescription("Complete objects stored."))
	hits, err3 := m.Int64ObservableCounter("edgebox.cache.hits",
		metric.WithUnit("{chunk}"), metric.WithDescription("Chunk reads served, by tier."))
	misses, err4 := m.Int64ObservableCounter("edgebox.cache.misses",
		metric.WithUnit("{lookup}"), metric.WithDescription("Object lookups that found nothing."))
	evictions, err5 := m.Int64ObservableCounter("edgebox.cache.evictions",
		metric.WithUnit("{chunk}"), metric.WithDescription("Chunks evicted to stay within the tier bounds."))
	corrupt, err6 := m.Int64ObservableCounter("edgebox.cache.corrupt_chunks",
		metric.WithUnit("{chunk}"), metric.WithDescription("Stored chunks that failed SHA-256 verification."))
	fills, err7 := m.Int64ObservableCounter("edgebox.cache.fills",
		metric.WithUnit("{fill}"), metric.WithDescription("Fills started."))
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if err != nil {
			return err
		}
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.Stats()
		o.ObserveInt64(size, st.MemoryBytes, tierMemory)
		o.ObserveInt64(size, st.DiskBytes, tierDisk)
		o.ObserveInt64(objects, st.Objects)
		o.ObserveInt64(hits, st.MemoryHits, tierMemory)
		o.ObserveInt64(hits, st.DiskHits, tierDisk)
		o.ObserveInt64(misses, st.Misses)
		o.ObserveInt64(evictions, st.Evictions)
		o.ObserveInt64(corrupt, st.CorruptChunks)
		o.ObserveInt64(fills, st.Fills)
		return nil
	}, size, objects, hits, misses, evictions, corrupt, fills)
	if err != nil {
		return err
	}
	s.metricsReg = reg
	return nil
}
