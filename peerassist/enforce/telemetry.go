package enforce

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/peerassist/policy"
)

const instrumentation = "github.com/peerassist/edgebox/peerassist/enforce"

// telemetry holds the loop's instruments, recorded once per tick (nothing
// on the HTTP path: refusals are counted by the limiters and summed at the
// tick). Safe for concurrent use.
type telemetry struct {
	tracer trace.Tracer

	ebu, capacity, peak, egress, allocated, headroom metric.Float64Gauge
	swarms, stopped                                  metric.Int64Gauge
	allowance, tickDuration                          metric.Float64Histogram
	stops, refusals, floorViolations, pushes         metric.Int64Counter

	// The observed peak of all edge egress, kept here as well as in the
	// engine so that it is visible when the capacity is configured.
	peakTracker policy.PeakTracker

	phaseBefore, phaseAfter, kindAll, kindExtra, urgentYes, urgentNo, stopReason metric.MeasurementOption
	classAttrs                                                                   [policy.NumClasses]metric.MeasurementOption
	sourceAttrs                                                                  [3]metric.MeasurementOption
}

func newTelemetry(peakWindow time.Duration) (*telemetry, error) {
	m := otel.Meter(instrumentation)
	t := &telemetry{tracer: otel.Tracer(instrumentation), peakTracker: policy.PeakTracker{Window: peakWindow}}
	var errs []error
	fg := func(name, desc, unit string) metric.Float64Gauge {
		g, err := m.Float64Gauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	ig := func(name, desc, unit string) metric.Int64Gauge {
		g, err := m.Int64Gauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	ic := func(name, desc, unit string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	t.ebu = fg("peerassist.policy.ebu", "Extra bandwidth utilization: non-urgent edge egress to peer-assisted sessions over the edge capacity, as measured in the last tick (phase before) and as the new allowances bound it (phase after).", "1")
	t.capacity = fg("peerassist.policy.capacity", "Edge capacity behind EBU: configured, or the observed peak egress.", "bit/s")
	t.peak = fg("peerassist.policy.peak_egress", "Peak edge egress observed over policy.peak_window.", "bit/s")
	t.egress = fg("peerassist.policy.egress", "Edge egress in the last tick: all, and the extra (non-urgent) part drawn by peer-assisted sessions.", "bit/s")
	t.allocated = fg("peerassist.policy.allocated", "Sum of the sessions' non-urgent edge allowances.", "bit/s")
	t.headroom = fg("peerassist.policy.headroom", "Non-urgent edge egress the EBU cap leaves to share (cap x capacity).", "bit/s")
	t.swarms = ig("peerassist.policy.swarms", "Swarms by CloudTracker class.", "{swarm}")
	t.stopped = ig("peerassist.policy.stopped", "Sessions stopped from non-urgent edge fetches by the EBU cap (this tick or held).", "{session}")
	t.stops = ic("peerassist.policy.stops", "Sessions stopped from non-urgent edge fetches, by reason.", "{session}")
	t.refusals = ic("peerassist.policy.refusals", "Edge requests of peer-assisted sessions refused with 429 (over allowance), by urgency.", "{request}")
	t.floorViolations = ic("peerassist.policy.floor_violations", "Sessions refused what they needed in a tick (an urgent request, where they mark them) that received less than their floor from the edge and peers over the last 6 ticks.", "{session}")
	t.pushes = ic("peerassist.policy.pushes", "x_policy messages pushed to sessions.", "{message}")
	var err error
	t.allowance, err = m.Float64Histogram("peerassist.policy.allowance", metric.WithDescription("Non-urgent edge allowance given to each limited session at each tick."),
		metric.WithUnit("bit/s"), metric.WithExplicitBucketBoundaries(0, 64e3, 128e3, 256e3, 512e3, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6, 64e6, 128e6))
	errs = append(errs, err)
	t.tickDuration, err = m.Float64Histogram("peerassist.policy.tick.duration", metric.WithDescription("Time one policy tick took (snapshot, decision, application)."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	attr := func(k, v string) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	t.phaseBefore, t.phaseAfter = attr("peerassist.policy.phase", "before"), attr("peerassist.policy.phase", "after")
	t.kindAll, t.kindExtra = attr("peerassist.policy.egress_kind", "all"), attr("peerassist.policy.egress_kind", "extra")
	t.urgentYes = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("peerassist.policy.urgent", true)))
	t.urgentNo = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("peerassist.policy.urgent", false)))
	t.stopReason = attr("peerassist.policy.reason", policy.ReasonStopped.String())
	for c := range t.classAttrs {
		t.classAttrs[c] = attr("peerassist.swarm.class", policy.Class(c).String())
	}
	for s := range t.sourceAttrs {
		t.sourceAttrs[s] = attr("peerassist.policy.capacity_source", policy.CapacitySource(s).String())
	}
	return t, nil
}

// record publishes one tick's decision and application.
func (t *telemetry) record(ctx context.Context, d *policy.Decision, st *applyStats, took time.Duration) {
	t.ebu.Record(ctx, d.EBU, t.phaseBefore)
	t.ebu.Record(ctx, d.EBUAfter, t.phaseAfter)
	if src := int(d.CapacitySource); src < len(t.sourceAttrs) {
		t.capacity.Record(ctx, d.CapacityBps, t.sourceAttrs[src])
	}
	t.peakTracker.Observe(d.Now, d.EgressBps)
	if p, ok := t.peakTracker.Peak(d.Now); ok {
		t.peak.Record(ctx, p)
	}
	t.egress.Record(ctx, d.EgressBps, t.kindAll)
	t.egress.Record(ctx, d.ExtraEgressBps, t.kindExtra)
	t.allocated.Record(ctx, d.AllocatedBps)
	t.headroom.Record(ctx, d.HeadroomBps)
	for c, n := range d.ClassCounts {
		t.swarms.Record(ctx, int64(n), t.classAttrs[c])
	}
	t.stopped.Record(ctx, int64(d.Stopped))
	if st.newStops > 0 {
		t.stops.Add(ctx, int64(st.newStops), t.stopReason)
	}
	if n := st.refusals - st.urgentRefusals; n > 0 {
		t.refusals.Add(ctx, n, t.urgentNo)
	}
	if st.urgentRefusals > 0 {
		t.refusals.Add(ctx, st.urgentRefusals, t.urgentYes)
	}
	if st.floorViolations > 0 {
		t.floorViolations.Add(ctx, int64(st.floorViolations))
	}
	if st.pushes > 0 {
		t.pushes.Add(ctx, int64(st.pushes))
	}
	for _, a := range st.allowances {
		t.allowance.Record(ctx, a)
	}
	t.tickDuration.Record(ctx, took.Seconds())
}
