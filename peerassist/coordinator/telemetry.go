package coordinator

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/peerassist/edgebox/peerassist/coordinator"

// rejectReason says why a message, connection or report was refused.
type rejectReason int

const (
	reasonMalformed rejectReason = iota
	reasonRateLimited
	reasonAbusive
	reasonTooBig
	reasonProtocol
	reasonSlowReader
	reasonPeerIDInUse
	reasonPeerIDChanged
	reasonUnsolicitedAnswer
	reasonExpiredOffer
	reasonOffererGone
	reasonBadSite
	reasonBanned
	reasonBadReport
	reasonUnverifiedReport
	reasonFalseAccuser
	reasonOrigin
	reasonTooManyConns
	reasonHandshake
	reasonTooManySwarms
	numReasons
)

var reasonNames = [numReasons]string{
	"malformed", "rate_limited", "abusive", "too_big", "protocol_error", "slow_reader",
	"peer_id_in_use", "peer_id_changed", "unsolicited_answer", "expired_offer", "offerer_gone",
	"bad_site", "banned", "bad_report", "unverified_report", "false_accuser", "origin_not_allowed",
	"too_many_connections", "bad_handshake", "too_many_swarms",
}

// telemetry holds the coordinator's instruments. Hot-path counters are
// plain atomics read by observable instruments at collection time, so
// relaying costs no metric call. Safe for concurrent use.
type telemetry struct {
	co         *Coordinator
	tracer     trace.Tracer
	reg        metric.Registration
	offers     atomic.Int64
	answers    atomic.Int64
	rejected   [numReasons]atomic.Int64
	edgeServed atomic.Int64
}

func newTelemetry(co *Coordinator) (*telemetry, error) {
	t := &telemetry{co: co, tracer: otel.Tracer(instrumentation)}
	m := otel.Meter(instrumentation)
	peers, err := m.Int64ObservableGauge("peerassist.peers", metric.WithDescription("Peers in swarms, by region."), metric.WithUnit("{peer}"))
	if err != nil {
		return nil, err
	}
	swarms, err := m.Int64ObservableGauge("peerassist.swarms", metric.WithDescription("Swarms (region, info_hash) with peers."), metric.WithUnit("{swarm}"))
	if err != nil {
		return nil, err
	}
	conns, err := m.Int64ObservableGauge("peerassist.connections", metric.WithDescription("Open signaling sockets."), metric.WithUnit("{connection}"))
	if err != nil {
		return nil, err
	}
	sessions, err := m.Int64ObservableGauge("peerassist.sessions", metric.WithDescription("Sessions, connected or within peer_timeout of their socket."), metric.WithUnit("{session}"))
	if err != nil {
		return nil, err
	}
	offers, err := m.Int64ObservableCounter("peerassist.offers.relayed", metric.WithDescription("WebRTC offers relayed to peers."), metric.WithUnit("{offer}"))
	if err != nil {
		return nil, err
	}
	answers, err := m.Int64ObservableCounter("peerassist.answers.relayed", metric.WithDescription("WebRTC answers relayed to offerers."), metric.WithUnit("{answer}"))
	if err != nil {
		return nil, err
	}
	rejected, err := m.Int64ObservableCounter("peerassist.messages.rejected", metric.WithDescription("Messages, connections and reports refused, by reason (error.type)."), metric.WithUnit("{message}"))
	if err != nil {
		return nil, err
	}
	served, err := m.Int64ObservableCounter("peerassist.edge.served", metric.WithDescription("Body bytes the edge served to peer-assisted sessions."), metric.WithUnit("By"))
	if err != nil {
		return nil, err
	}
	reasonAttrs := make([]metric.ObserveOption, numReasons)
	for i, n := range reasonNames {
		reasonAttrs[i] = metric.WithAttributes(attribute.String("error.type", n))
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		co.mu.Lock()
		for r, n := range co.byRegion {
			o.ObserveInt64(peers, int64(n), metric.WithAttributes(attribute.String("peerassist.region", r)))
		}
		o.ObserveInt64(swarms, int64(len(co.swarms)))
		o.ObserveInt64(conns, int64(len(co.conns)))
		co.mu.Unlock()
		o.ObserveInt64(sessions, co.sessionCount.Load())
		o.ObserveInt64(offers, t.offers.Load())
		o.ObserveInt64(answers, t.answers.Load())
		for i := range t.rejected {
			if v := t.rejected[i].Load(); v > 0 {
				o.ObserveInt64(rejected, v, reasonAttrs[i])
			}
		}
		o.ObserveInt64(served, t.edgeServed.Load())
		return nil
	}, peers, swarms, conns, sessions, offers, answers, rejected, served)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}

func (t *telemetry) reject(r rejectReason) { t.rejected[r].Add(1) }

// sampleRelay decides whether one relay gets a span.
func (t *telemetry) sampleRelay(rng *rand.Rand) bool {
	ratio := t.co.set.Load().cfg.RelayTraceRatio
	return ratio > 0 && rng.Float64() < ratio
}

// span records an instant span about a swarm event (join, leave, relay,
// drop) with the peer's locality.
func (t *telemetry) span(name string, c *conn, sw *swarm, attrs ...attribute.KeyValue) {
	_, s := t.tracer.Start(context.Background(), name, trace.WithSpanKind(trace.SpanKindInternal))
	if s.IsRecording() {
		s.SetAttributes(
			attribute.String("client.address", c.ip.String()),
			attribute.String("peerassist.region", sw.key.region),
			attribute.String("peerassist.isp", c.loc.ISP),
			attribute.String("peerassist.info_hash", sw.key.infoHash.String()),
			attribute.Int("peerassist.swarm.peers", len(sw.peers)),
		)
		s.SetAttributes(attrs...)
	}
	s.End()
}
