package peer

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/peerassist/edgebox/peerassist/peer"

// telemetry holds the peer's instruments on the global OpenTelemetry
// providers (no-ops unless the program installed an SDK). Safe for
// concurrent use; the zero value records nothing.
type telemetry struct {
	tracer    trace.Tracer
	received  metric.Int64Counter // verified chunk bytes, by source
	uploaded  metric.Int64Counter
	bad       metric.Int64Counter
	edgeFetch metric.Int64Counter // edge range requests, by kind
	neighbors metric.Int64UpDownCounter
}

var (
	attrEdge   = metric.WithAttributes(attribute.String("peerassist.source", "edge"))
	attrPeer   = metric.WithAttributes(attribute.String("peerassist.source", "peer"))
	attrSeed   = metric.WithAttributes(attribute.String("peerassist.edge_fetch", "seed"))
	attrUrgent = metric.WithAttributes(attribute.String("peerassist.edge_fetch", "urgent"))
)

func newTelemetry() telemetry {
	m := otel.Meter(instrumentation)
	t := telemetry{tracer: otel.Tracer(instrumentation)}
	// Instrument creation fails only for invalid names; these are fixed.
	t.received, _ = m.Int64Counter("peerassist.peer.received", metric.WithUnit("By"),
		metric.WithDescription("Verified chunk bytes received, by source (edge or peer)."))
	t.uploaded, _ = m.Int64Counter("peerassist.peer.uploaded", metric.WithUnit("By"),
		metric.WithDescription("Chunk bytes uploaded to neighbors."))
	t.bad, _ = m.Int64Counter("peerassist.peer.verification_failures", metric.WithUnit("{chunk}"),
		metric.WithDescription("Chunks from peers that failed SHA-256 verification."))
	t.edgeFetch, _ = m.Int64Counter("peerassist.peer.edge_fetches", metric.WithUnit("{request}"),
		metric.WithDescription("Edge range requests, by kind (seed: nobody around held the chunk; urgent: a deadline was close)."))
	t.neighbors, _ = m.Int64UpDownCounter("peerassist.peer.neighbors", metric.WithUnit("{peer}"),
		metric.WithDescription("Connected neighbors."))
	return t
}

func (t *telemetry) addReceived(n int, fromPeer bool) {
	if t.received == nil {
		return
	}
	if fromPeer {
		t.received.Add(context.Background(), int64(n), attrPeer)
	} else {
		t.received.Add(context.Background(), int64(n), attrEdge)
	}
}

func (t *telemetry) addUploaded(n int) {
	if t.uploaded != nil {
		t.uploaded.Add(context.Background(), int64(n))
	}
}

func (t *telemetry) addBad() {
	if t.bad != nil {
		t.bad.Add(context.Background(), 1)
	}
}

func (t *telemetry) addEdgeFetch(urgent bool) {
	if t.edgeFetch == nil {
		return
	}
	if urgent {
		t.edgeFetch.Add(context.Background(), 1, attrUrgent)
	} else {
		t.edgeFetch.Add(context.Background(), 1, attrSeed)
	}
}

func (t *telemetry) addNeighbors(d int) {
	if t.neighbors != nil {
		t.neighbors.Add(context.Background(), int64(d))
	}
}
