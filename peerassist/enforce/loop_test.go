package enforce

import (
	"context"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/peerassist/edgebox/config"
	"github.com/peerassist/edgebox/peerassist/coordinator"
	"github.com/peerassist/edgebox/peerassist/policy"
	"github.com/peerassist/edgebox/peerassist/signal"
	"github.com/peerassist/edgebox/region"
)

// The OpenTelemetry SDK, installed once for the package's tests: spans go
// to spans, metrics are read from metrics.
var (
	spans   = tracetest.NewSpanRecorder()
	metrics = sdkmetric.NewManualReader()
)

func TestMain(m *testing.M) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	code := m.Run()
	_ = tp.Shutdown(context.Background())
	_ = mp.Shutdown(context.Background())
	if code == 0 {
		if err := goleak.Find(leakOptions...); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// leakOptions ignore fasthttp's background goroutines (the in-process
// edge's): the process-wide Date clock and cleaners that exit on their
// next tick after their server or client stopped.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
}

var quiet = slog.New(slog.DiscardHandler)

var swarmA = coordinator.SwarmID{Region: "r1", InfoHash: signal.ID{'a'}}

// testPolicy is the default policy with a configured capacity of 10 Mbit/s
// (headroom 4 Mbit/s at the 0.40 cap) and no exploration, so decisions are
// easy to predict.
func testPolicy() config.Policy {
	p := config.DefaultPolicy()
	p.EdgeCapacityBps = 10_000_000
	p.Exploration = 0
	return p
}

// driver runs a loop on simulated time: tick(x) sets the limiters' clock to
// x and ticks at t0+x; at(x) only moves the clock (for requests between
// ticks).
type driver struct {
	*Loop
	clk atomic.Int64
	t0  time.Time
}

func (d *driver) now() time.Duration { return time.Duration(d.clk.Load()) }

func (d *driver) at(x time.Duration) { d.clk.Store(int64(x)) }

func (d *driver) tick(x time.Duration) *policy.Decision {
	d.at(x)
	return d.Tick(d.t0.Add(x))
}

func newTestLoop(t *testing.T, f *fakeCoord, mod func(*Options)) *driver {
	t.Helper()
	o := Options{Policy: testPolicy(), Sites: []config.Site{config.NewSite("demo", "http://origin.invalid")},
		Coordinator: f, Logger: quiet}
	if mod != nil {
		mod(&o)
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d := &driver{Loop: l, t0: time.Unix(1_700_000_000, 0)}
	l.clock = d.now
	return d
}

// viewer returns a connected session of swarmA that declares 3 Mbit/s of
// upload (a 1 Mbit/s budget at the default fraction).
func viewer(id string, asn uint32) coordinator.SessionInfo {
	return coordinator.SessionInfo{ID: id, Site: "demo", Connected: true, Swarm: swarmA,
		Locality: region.Locality{Known: true, Region: "r1", ASN: asn}, Caps: signal.Caps{UploadBps: 3_000_000}}
}

func sessionDecision(d *policy.Decision, id string) *policy.SessionDecision {
	for i := range d.Sessions {
		if d.Sessions[i].ID == id {
			return &d.Sessions[i]
		}
	}
	return nil
}

// TestTickStopsOverCap: five sessions drawing 6 Mbit/s of non-urgent
// egress from a 10 Mbit/s edge (EBU 0.6, cap 0.4): CloudTracker stops
// k = ceil(5 x 0.2 / 0.6) = 2, the fastest; their non-urgent requests get
// 429s with the stop's reason while their urgent ones are served; every
// session hears its x_policy; the span and the metrics say why.
func TestTickStopsOverCap(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 5, Incomplete: 5}}
	ids := []string{"s0", "s1", "s2", "s3", "s4"}
	for _, id := range ids {
		f.add(viewer(id, 64601))
	}
	l := newTestLoop(t, f, nil)
	if d := l.tick(0); d != nil {
		t.Fatalf("first tick decided %+v, want only a baseline", d)
	}
	spans.Reset()
	l.at(2500 * time.Millisecond)
	for i, id := range ids {
		// 150 kB urgent (the 240 kbit/s floor for 5 s) and (i+1) x 250 kB
		// non-urgent: 0.4 .. 2 Mbit/s.
		if !f.request(id, true, 150_000, "/v/seg.ts") || !f.request(id, false, int64(i+1)*250_000, "/v/seg.ts") {
			t.Fatalf("%s: refused before any decision", id)
		}
	}
	d := l.tick(5 * time.Second)
	if d == nil {
		t.Fatal("no decision")
	}
	if math.Abs(d.EBU-0.6) > 1e-9 || d.StopN != 5 || d.StopK != 2 || d.EBUAfter > d.Cap+1e-9 {
		t.Fatalf("EBU %.3f (after %.3f), N %d, k %d; want EBU 0.6, N 5, k 2, after <= cap", d.EBU, d.EBUAfter, d.StopN, d.StopK)
	}
	for _, id := range ids {
		sd := sessionDecision(d, id)
		stopped := id == "s3" || id == "s4"
		if sd.Stopped != stopped {
			t.Errorf("%s: stopped %v, want %v (%+v)", id, sd.Stopped, stopped, sd)
		}
		l := f.limiter(id)
		ok, retry, reason := l.Admit(false)
		switch {
		case stopped && (ok || retry != 5*time.Second || !strings.HasPrefix(reason, "stopped_ebu:")):
			t.Errorf("%s: non-urgent Admit = %v, %v, %q; want refused for the tick (5s) as stopped_ebu", id, ok, retry, reason)
		case !stopped && !ok:
			t.Errorf("%s: non-urgent Admit refused (%v, %q) with allowance %d", id, retry, reason, sd.AllowanceBps)
		}
		if ok, _, _ := l.Admit(true); !ok {
			t.Errorf("%s: urgent Admit refused", id)
		}
	}

	// Every session got its policy: budget, allowance, use_peers for the
	// stopped, the swarm's Slurpie probability 3/5.
	got := map[string]signal.Policy{}
	for _, p := range f.takePushes() {
		got[p.id] = p.p
	}
	for _, id := range ids {
		sd := sessionDecision(d, id)
		want := signal.Policy{UploadBudgetBps: 1_000_000, EdgeAllowanceBps: sd.AllowanceBps, UsePeers: sd.Stopped,
			Reason: sd.Reason.Code.String(), SlurpieProbability: 0.6}
		if p, ok := got[id]; !ok || p != want {
			t.Errorf("%s: pushed %+v (%v), want %+v", id, p, ok, want)
		}
	}

	// One span with an event per stop.
	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Name() != "peerassist.policy.tick" {
		t.Fatalf("spans %v, want one peerassist.policy.tick", ended)
	}
	var stops []string
	for _, ev := range ended[0].Events() {
		if ev.Name != "peerassist.policy.stop" {
			continue
		}
		attrs := attribute.NewSet(ev.Attributes...)
		id, _ := attrs.Value("session.id")
		detail, _ := attrs.Value("peerassist.policy.detail")
		if !strings.Contains(detail.AsString(), "EBU 0.600 over cap 0.40") {
			t.Errorf("stop detail %q does not say why", detail.AsString())
		}
		stops = append(stops, id.AsString())
	}
	if strings.Join(stops, ",") != "s3,s4" {
		t.Errorf("stop events for %v, want s3,s4", stops)
	}
	spanAttrs := attribute.NewSet(ended[0].Attributes()...)
	if v, ok := spanAttrs.Value("peerassist.policy.ebu"); !ok || math.Abs(v.AsFloat64()-0.6) > 1e-9 {
		t.Errorf("span EBU %v", v.AsFloat64())
	}

	m := collect(t)
	if v := gaugeValue(m, "peerassist.policy.ebu", attribute.String("peerassist.policy.phase", "before")); math.Abs(v-0.6) > 1e-9 {
		t.Errorf("metric ebu before = %v, want 0.6", v)
	}
	if v := counterValue(m, "peerassist.policy.stops"); v < 2 {
		t.Errorf("metric stops = %v, want at least 2", v)
	}
	if v := gaugeValue(m, "peerassist.policy.capacity", attribute.String("peerassist.policy.capacity_source", "configured")); v != 10e6 {
		t.Errorf("metric capacity = %v", v)
	}
	if n := histogramCount(m, "peerassist.policy.allowance"); n < 5 {
		t.Errorf("allowance histogram has %d samples, want at least 5", n)
	}

	// The same traffic again from those still allowed: no new stop, and
	// nothing worth pushing (allowances moved little, stops are held).
	l.at(7500 * time.Millisecond)
	for i, id := range ids[:3] {
		f.request(id, true, 150_000, "/v/seg.ts")
		f.request(id, false, int64(i+1)*250_000, "/v/seg.ts")
	}
	d = l.tick(10 * time.Second)
	if d.StopK != 0 || d.Stopped != 2 || d.EBU > d.Cap {
		t.Errorf("tick 3: k %d stopped %d EBU %.3f; want 0 new stops, 2 held, EBU under the cap", d.StopK, d.Stopped, d.EBU)
	}
	if sd := sessionDecision(d, "s4"); sd.Reason.Code != policy.ReasonStopHeld {
		t.Errorf("s4 reason %v, want stop_held", sd.Reason.Code)
	}
	if p := f.takePushes(); len(p) != 0 {
		t.Errorf("tick 3 pushed %+v, want nothing", p)
	}
	// After PolicyRefresh (60s) everything is pushed again.
	l.tick(75 * time.Second)
	if p := f.takePushes(); len(p) != 5 {
		t.Errorf("after the refresh period %d pushes, want 5", len(p))
	}
}

// TestTickUploadBudget: x_report uploads at the budget mark the session
// (no more offers routed to it); rates come from the reports' own times.
func TestTickUploadBudget(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 2, Incomplete: 2}}
	t0 := time.Unix(1_700_000_000, 0) // the driver's
	for _, id := range []string{"busy", "idle"} {
		s := viewer(id, 64601)
		s.Started = t0.Add(-10 * time.Second)
		s.LastReport = t0.Add(-2 * time.Second)
		f.add(s)
	}
	l := newTestLoop(t, f, nil)
	l.tick(0)
	// busy uploaded 1 Mbit/s (its budget) over the 4 s between its
	// reports, idle 100 kbit/s; ticks and reports are not in step.
	f.update("busy", func(s *coordinator.SessionInfo) { s.LastReport, s.UploadedBytes = t0.Add(2*time.Second), 500_000 })
	f.update("idle", func(s *coordinator.SessionInfo) { s.LastReport, s.UploadedBytes = t0.Add(2*time.Second), 50_000 })
	d := l.tick(5 * time.Second)
	if sd := sessionDecision(d, "busy"); !sd.AtUploadBudget || sd.UploadBudgetBps != 1_000_000 {
		t.Errorf("busy: %+v, want at its 1 Mbit/s budget", sd)
	}
	if sd := sessionDecision(d, "idle"); sd.AtUploadBudget {
		t.Errorf("idle: %+v, want below its budget", sd)
	}
	f.mu.Lock()
	busy, idle, idleSet := f.atBudget["busy"], f.atBudget["idle"], false
	_, idleSet = f.atBudget["idle"]
	f.mu.Unlock()
	if !busy || idle || !idleSet {
		t.Errorf("SetUploadBudgetReached: busy %v, idle %v (set %v); want true, false", busy, idle, idleSet)
	}
	// The rate holds between reports (next tick, no new report) ...
	d = l.tick(10 * time.Second)
	if sd := sessionDecision(d, "busy"); !sd.AtUploadBudget {
		t.Error("busy: the rate of its last report was not held until the next")
	}
	// ... and lapses when the client stops reporting.
	d = l.tick(40 * time.Second)
	if sd := sessionDecision(d, "busy"); sd.AtUploadBudget {
		t.Error("busy: still at its budget 38 s after its last report")
	}
	f.mu.Lock()
	busy = f.atBudget["busy"]
	f.mu.Unlock()
	if busy {
		t.Error("SetUploadBudgetReached(busy, false) was not called")
	}
}

// TestJoinAllowance: a session that appears between ticks gets its site's
// floor and the decision's join allowance; before any decision, no limit.
func TestJoinAllowance(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 1, Incomplete: 1}}
	f.add(viewer("old", 1))
	video := config.NewSite("video", "http://origin.invalid")
	video.PeerAssist.BitrateBps = 2_000_000
	l := newTestLoop(t, f, func(o *Options) { o.Sites = append(o.Sites, video) })
	early := viewer("early", 1)
	early.Site = "video"
	f.add(early)
	f.request("early", false, 1, "/a")
	lim := f.limiter("early").(*limiter)
	if !lim.lim.unlimited || lim.lim.floorBytesPerSec != 2_000_000/8 {
		t.Errorf("before any decision: %+v, want unlimited with the video site's floor", lim.lim)
	}
	l.tick(0)
	f.request("old", false, 100_000, "/a")
	d := l.tick(5 * time.Second)
	if d.JoinUnlimited || d.JoinAllowanceBps <= 0 {
		t.Fatalf("join allowance %d (unlimited %v), want a positive limit", d.JoinAllowanceBps, d.JoinUnlimited)
	}
	// Joiners share the join allowance: each gets half of what is left.
	for i, name := range []string{"late", "later", "latest"} {
		f.add(viewer(name, 1))
		f.request(name, false, 1, "/a")
		lim = f.limiter(name).(*limiter)
		want := float64(d.JoinAllowanceBps) / 8 / float64(int(2)<<i)
		if lim.lim.unlimited || math.Abs(lim.lim.allowBytesPerSec-want) > 1e-6 || lim.lim.floorBytesPerSec != 240_000/8 ||
			!strings.HasPrefix(lim.lim.reason, "join:") {
			t.Errorf("joiner %d: %+v, want %.0f B/s of the join allowance %d bit/s and the basic floor", i+1, lim.lim, want, d.JoinAllowanceBps)
		}
	}
	// At the next tick it is decided like the others.
	d = l.tick(10 * time.Second)
	if sd := sessionDecision(d, "late"); sd == nil {
		t.Error("late joiner not in the next decision")
	}
}

// TestMeasuringPeak: without a configured capacity the cap is not enforced
// during the warm-up: unlimited allowances, pushed as -1.
func TestMeasuringPeak(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 1, Incomplete: 1}}
	f.add(viewer("v", 1))
	var egress int64
	l := newTestLoop(t, f, func(o *Options) {
		o.Policy.EdgeCapacityBps = 0
		o.EgressBytes = func() int64 { return egress }
	})
	l.tick(0)
	f.request("v", false, 10_000_000, "/a")
	egress = 50_000_000 // with clients that have no session
	d := l.tick(5 * time.Second)
	if d.CapacitySource != policy.CapacityUnknown || !d.JoinUnlimited || math.Abs(d.EgressBps-80e6) > 1 {
		t.Errorf("capacity %v, join unlimited %v, egress %.0f; want unknown, unlimited, 80 Mbit/s", d.CapacitySource, d.JoinUnlimited, d.EgressBps)
	}
	if sd := sessionDecision(d, "v"); !sd.Unlimited || sd.Reason.Code != policy.ReasonMeasuringPeak {
		t.Errorf("decision %+v, want unlimited while measuring", sd)
	}
	if ok, _, _ := f.limiter("v").Admit(false); !ok {
		t.Error("refused while measuring the peak")
	}
	if p := f.takePushes(); len(p) != 1 || p[0].p.EdgeAllowanceBps != -1 || p[0].p.Reason != "measuring_peak" {
		t.Errorf("pushes %+v, want one with edge_allowance_bps -1", p)
	}
	m := collect(t)
	if v := gaugeValue(m, "peerassist.policy.peak_egress"); v != 80e6 {
		t.Errorf("peak egress metric %v, want 8e7", v)
	}
}

// TestDegradedSessions: sessions with missing data get safe decisions;
// a session that vanishes between the snapshot and the actions costs
// nothing; detached sessions get no push and idle detached ones are left
// out of the observation.
func TestDegradedSessions(t *testing.T) {
	f := newFakeCoord()
	f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 2, Incomplete: 2}}
	noSwarm := viewer("noswarm", 0)
	noSwarm.Swarm = coordinator.SwarmID{}
	noSwarm.Site = ""
	gone := viewer("gone", 1)
	detached := viewer("detached", 1)
	detached.Connected = false
	idle := viewer("idle", 1)
	idle.Connected = false
	unlisted := viewer("unlisted", 1) // its swarm was removed since
	unlisted.Swarm = coordinator.SwarmID{Region: "r1", InfoHash: signal.ID{'z'}}
	for _, s := range []coordinator.SessionInfo{noSwarm, gone, detached, idle, unlisted} {
		f.add(s)
	}
	l := newTestLoop(t, f, nil)
	l.tick(0)
	for _, id := range []string{"noswarm", "gone", "detached", "unlisted"} {
		f.request(id, false, 50_000, "/a")
	}
	f.vanish = []string{"gone"}
	d := l.tick(5 * time.Second)
	// A session in no swarm (unknown locality) is not peer-assisted: not
	// decided, not limited.
	if sd := sessionDecision(d, "noswarm"); sd != nil {
		t.Errorf("a session in no swarm was decided: %+v", sd)
	}
	if lim := f.limiter("noswarm").(*limiter); !lim.lim.unlimited {
		t.Errorf("a session in no swarm is limited: %+v", lim.lim)
	}
	if sessionDecision(d, "idle") != nil {
		t.Error("an idle detached session was observed")
	}
	if sessionDecision(d, "detached") == nil || sessionDecision(d, "unlisted") == nil {
		t.Error("sessions that drew edge bytes are missing from the decision")
	}
	for _, p := range f.takePushes() {
		if p.id == "detached" || p.id == "gone" {
			t.Errorf("pushed to %s", p.id)
		}
	}
	// The vanished session is forgotten at the next tick.
	l.tick(10 * time.Second)
	l.limMu.Lock()
	_, kept := l.limiters["gone"]
	l.limMu.Unlock()
	if _, st := l.sessions["gone"]; st || kept {
		t.Errorf("state %v, limiter %v of a vanished session kept", st, kept)
	}
	// Time going backwards: floors for everyone, no crash.
	d = l.tick(1 * time.Second)
	for _, sd := range d.Sessions {
		if sd.Reason.Code != policy.ReasonMissingInterval || sd.AllowanceBps != sd.FloorBps {
			t.Errorf("%s after a clock step back: %+v, want its floor", sd.ID, sd)
		}
	}
}

// TestStartClose: the running loop ticks on its own; Close stops it and
// takes the limiters out of the coordinator.
func TestStartClose(t *testing.T) {
	f := newFakeCoord()
	f.add(viewer("v", 1))
	ticks := make(chan uint64, 16)
	l := newTestLoop(t, f, func(o *Options) {
		o.Policy.Tick = config.Duration(20 * time.Millisecond)
		o.Policy.StopHold = config.Duration(time.Second)
		o.OnTick = func(d *policy.Decision) {
			select {
			case ticks <- d.Tick:
			default:
			}
		}
	})
	l.Start()
	l.Start() // idempotent
	for range 2 {
		select {
		case <-ticks:
		case <-time.After(5 * time.Second):
			t.Fatal("the loop does not tick")
		}
	}
	f.mu.Lock()
	installed := f.limiters["v"] != nil && f.factory != nil
	f.mu.Unlock()
	if !installed {
		t.Fatal("no limiter or factory installed")
	}
	l.Close()
	l.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.limiters) != 0 || f.factory != nil {
		t.Errorf("after Close: %d limiters, factory %v", len(f.limiters), f.factory != nil)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{Policy: config.DefaultPolicy()}); err == nil {
		t.Error("New without a coordinator succeeded")
	}
	bad := config.DefaultPolicy()
	bad.EBUCap = 1.5
	if _, err := New(Options{Policy: bad, Coordinator: newFakeCoord()}); err == nil || !strings.Contains(err.Error(), "policy.ebu_cap") {
		t.Errorf("New with a bad cap: %v, want an error naming policy.ebu_cap", err)
	}
}

func TestPolicyChanged(t *testing.T) {
	base := signal.Policy{UploadBudgetBps: 1_000_000, EdgeAllowanceBps: 400_000, Reason: "allocated", SlurpieProbability: 0.5}
	tests := []struct {
		name string
		mod  func(*signal.Policy)
		want bool
	}{
		{"same", func(*signal.Policy) {}, false},
		{"allowance +20%", func(p *signal.Policy) { p.EdgeAllowanceBps = 480_000 }, false},
		{"allowance +50%", func(p *signal.Policy) { p.EdgeAllowanceBps = 600_000 }, true},
		{"allowance to 0", func(p *signal.Policy) { p.EdgeAllowanceBps = 0 }, true},
		{"allowance unlimited", func(p *signal.Policy) { p.EdgeAllowanceBps = -1 }, true},
		{"budget +5%", func(p *signal.Policy) { p.UploadBudgetBps = 1_050_000 }, false},
		{"budget -20%", func(p *signal.Policy) { p.UploadBudgetBps = 800_000 }, true},
		{"use peers", func(p *signal.Policy) { p.UsePeers = true }, true},
		{"reason", func(p *signal.Policy) { p.Reason = "floors_over_cap" }, true},
		{"slurpie 0.5 -> 0.3", func(p *signal.Policy) { p.SlurpieProbability = 0.3 }, true},
		{"slurpie 0.5 -> 0.45", func(p *signal.Policy) { p.SlurpieProbability = 0.45 }, false},
	}
	for _, tt := range tests {
		p := base
		tt.mod(&p)
		if got := policyChanged(&base, &p); got != tt.want {
			t.Errorf("%s: policyChanged = %v, want %v", tt.name, got, tt.want)
		}
	}
	held := signal.Policy{UsePeers: true, Reason: "stopped_ebu"}
	next := held
	next.Reason = "stop_held"
	if policyChanged(&held, &next) {
		t.Error("stopped_ebu -> stop_held counted as a change")
	}
}

func collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func findMetric(rm metricdata.ResourceMetrics, name string) *metricdata.Metrics {
	for _, sm := range rm.ScopeMetrics {
		for i := range sm.Metrics {
			if sm.Metrics[i].Name == name {
				return &sm.Metrics[i]
			}
		}
	}
	return nil
}

func gaugeValue(rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) float64 {
	m := findMetric(rm, name)
	if m == nil {
		return math.NaN()
	}
	want := attribute.NewSet(attrs...)
	if g, ok := m.Data.(metricdata.Gauge[float64]); ok {
		for _, dp := range g.DataPoints {
			if dp.Attributes.Equals(&want) {
				return dp.Value
			}
		}
	}
	return math.NaN()
}

func counterValue(rm metricdata.ResourceMetrics, name string) float64 {
	m := findMetric(rm, name)
	if m == nil {
		return math.NaN()
	}
	sum := 0.0
	if s, ok := m.Data.(metricdata.Sum[int64]); ok {
		for _, dp := range s.DataPoints {
			sum += float64(dp.Value)
		}
	}
	return sum
}

func histogramCount(rm metricdata.ResourceMetrics, name string) uint64 {
	m := findMetric(rm, name)
	if m == nil {
		return 0
	}
	n := uint64(0)
	if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
		for _, dp := range h.DataPoints {
			n += dp.Count
		}
	}
	return n
}

// TestDeclaredBitrateFloor: a viewer's floor is its site's bitrate, else
// the stream bitrate it declared (x_caps.bitrate_bps) within
// [basic_rate_bps, max_declared_bitrate_bps], else basic_rate_bps; the
// limiter enforces it between ticks too.
func TestDeclaredBitrateFloor(t *testing.T) {
	tv := config.NewSite("tv", "http://origin.invalid")
	tv.PeerAssist.BitrateBps = 2_000_000
	tests := []struct {
		name     string
		site     string
		declared int64
		maxBps   int64
		want     int64
	}{
		{"none declared", "demo", 0, 20_000_000, 240_000},
		{"declared", "demo", 437_800, 20_000_000, 437_800},
		{"declared below the basic rate", "demo", 128_000, 20_000_000, 240_000},
		{"declared above the bound", "demo", 80_000_000, 20_000_000, 20_000_000},
		{"declared bitrates ignored", "demo", 437_800, 0, 240_000},
		{"the site's bitrate wins", "tv", 437_800, 20_000_000, 2_000_000},
	}
	for _, tt := range tests {
		f := newFakeCoord()
		f.swarms = []coordinator.SwarmInfo{{SwarmID: swarmA, Peers: 1, Incomplete: 1}}
		s := viewer("v", 64601)
		s.Site = tt.site
		s.Caps.BitrateBps = tt.declared
		f.add(s)
		l := newTestLoop(t, f, func(o *Options) {
			o.Policy.MaxDeclaredBitrateBps = tt.maxBps
			o.Sites = append(o.Sites, tv)
		})
		// Before any decision: the factory's limiter keeps the floor.
		if lim, ok := f.limiter("v").(*limiter); !ok || lim.lim.floorBytesPerSec*8 != float64(tt.want) {
			t.Errorf("%s: new session's floor %v bit/s, want %d", tt.name, lim.lim.floorBytesPerSec*8, tt.want)
		}
		l.tick(0)
		d := l.tick(5 * time.Second)
		if sd := sessionDecision(d, "v"); sd == nil || sd.FloorBps != tt.want {
			t.Errorf("%s: decision %+v, want floor %d", tt.name, sd, tt.want)
		}
		wantVideo := tt.site == "tv" || (tt.declared > 0 && tt.maxBps > 0)
		if got := l.obs.Swarms[0].Video; got != wantVideo {
			t.Errorf("%s: swarm observed as video %v, want %v", tt.name, got, wantVideo)
		}
	}
}
