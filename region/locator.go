package region

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/peerassist/edgebox/config"
)

const instrumentation = "github.com/peerassist/edgebox/region"

// Options tune a Locator beyond its config section.
type Options struct {
	// BaseDir is the directory that relative source paths are resolved
	// against: the config file's directory, filepath.Dir(config.File).
	// "" means the process's working directory.
	BaseDir string
	// Logger receives reload outcomes. nil means slog.Default().
	Logger *slog.Logger
}

// Locator maps addresses to localities. Lookups are lock-free and read one
// immutable table; Reload and the file watcher build a new table aside and
// swap it in atomically, so no lookup sees a half-built table.
//
// The zero value is not usable: create one with New. A Locator is safe for
// concurrent use. Close it to unregister its metrics.
type Locator struct {
	table   atomic.Pointer[table]
	baseDir string
	log     *slog.Logger

	// reloadMu serializes table builds (SIGHUP and watcher).
	reloadMu sync.Mutex
	// swapped is closed and replaced after every swap to wake the watcher.
	swapMu  sync.Mutex
	swapped chan struct{}

	// Lookup counters, sharded by address over their own cache lines so
	// that concurrent Locate calls rarely write the same line.
	known   [counterShards]paddedCounter
	unknown [counterShards]paddedCounter
	reloads [2]atomic.Uint64 // success, failure

	metricReg metric.Registration
	tracer    trace.Tracer
}

const counterShards = 8

type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

func sum(cs *[counterShards]paddedCounter) uint64 {
	var n uint64
	for i := range cs {
		n += cs[i].Load()
	}
	return n
}

// New builds a Locator from cfg: it validates the section, reads every
// source and returns all problems found (each config problem with its path,
// each malformed line as file:line) instead of a partial table.
func New(cfg config.Region, opts Options) (*Locator, error) {
	l := &Locator{
		baseDir: opts.BaseDir,
		log:     opts.Logger,
		swapped: make(chan struct{}),
		tracer:  otel.Tracer(instrumentation),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if err := l.reload(cfg, "start"); err != nil {
		return nil, err
	}
	if err := l.registerMetrics(); err != nil {
		l.log.Warn("region: metrics unavailable", "err", err)
	}
	return l, nil
}

// Close unregisters the Locator's metrics. Lookups keep working.
func (l *Locator) Close() error {
	if l.metricReg != nil {
		return l.metricReg.Unregister()
	}
	return nil
}

// Reload rebuilds the table from cfg and swaps it in. The edge calls it on
// SIGHUP with the re-read config section. On any problem (bad section,
// missing, unreadable or malformed file) the previous table stays in use,
// the reason is logged and returned.
func (l *Locator) Reload(cfg config.Region) error {
	return l.reload(cfg, "reload")
}

func (l *Locator) reload(cfg config.Region, trigger string) error {
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	_, span := l.tracer.Start(context.Background(), "region.reload",
		trace.WithAttributes(attribute.String("region.reload.trigger", trigger),
			attribute.Int("region.sources", len(cfg.Sources))))
	defer span.End()

	t, err := build(cfg, l.baseDir)
	if err != nil {
		l.reloads[1].Add(1)
		span.RecordError(err)
		span.SetStatus(codes.Error, "region table not loaded")
		if old := l.table.Load(); old != nil {
			l.log.Error("region: reload failed, keeping the previous table",
				"trigger", trigger, "err", err, "table_loaded_at", old.loadedAt)
		} else {
			l.log.Error("region: loading table failed", "trigger", trigger, "err", err)
		}
		return err
	}
	l.table.Store(t)
	l.reloads[0].Add(1)
	l.swapMu.Lock()
	close(l.swapped)
	l.swapped = make(chan struct{})
	l.swapMu.Unlock()
	v4, v6 := t.prefixes.Size4(), t.prefixes.Size6()
	span.SetAttributes(attribute.Int("region.prefixes.ipv4", v4), attribute.Int("region.prefixes.ipv6", v6))
	l.log.Info("region: table loaded", "trigger", trigger,
		"prefixes_v4", v4, "prefixes_v6", v6, "ipv4_index", t.idx4 != nil, "sources", len(t.files),
		"load_time", t.loadTime.Round(time.Microsecond).String())
	return nil
}

// swapSignal returns a channel closed at the next table swap.
func (l *Locator) swapSignal() <-chan struct{} {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	return l.swapped
}

// Locate returns the locality of ip. IPv4-mapped IPv6 addresses are looked
// up as IPv4 and zones are ignored. An address no source maps to a region
// is not Known (its ASN and prefix are still filled in when a database
// knows them). Locate does not allocate.
func (l *Locator) Locate(ip netip.Addr) Locality {
	ip = ip.Unmap()
	t := l.table.Load()
	if t == nil || !ip.IsValid() {
		l.unknown[0].Add(1)
		return Locality{}
	}
	var (
		r        ref
		found    bool
		a        = &t.unlisted
		pfx, sub netip.Prefix
		// The counter shard is the address's low bits: the bits that
		// differ most between concurrent callers.
		shard uint8
	)
	if ip.Is4() {
		// Masking a uint32 spares ip.Prefix's 128-bit masks and checks.
		b := ip.As4()
		u := binary.BigEndian.Uint32(b[:])
		// The IPv4 index answers most lookups in one load, bart the rest.
		if r, found = t.lookup4(ip, u); found {
			a = &t.answers[r.answer()]
		}
		pfx, sub = prefix4(u, r.bits()), prefix4(u, int(a.subnetBits4))
		shard = b[3]
	} else {
		if r, found = t.prefixes.Lookup(ip); found {
			a = &t.answers[r.answer()]
		}
		pfx, _ = ip.Prefix(r.bits())
		sub, _ = ip.Prefix(int(a.subnetBits6))
		shard = ip.As16()[15]
	}
	if a.region != 0 {
		l.known[shard%counterShards].Add(1)
	} else {
		l.unknown[shard%counterShards].Add(1)
	}
	if !found {
		return Locality{Subnet: sub}
	}
	// Returning the literal lets the compiler build it in the result.
	return Locality{
		Known:  a.region != 0,
		Region: t.regions[a.region],
		ISP:    a.isp,
		ASN:    a.asn,
		Prefix: pfx,
		Subnet: sub,
		Source: t.sources[a.layer],
	}
}

// prefix4 returns the IPv4 prefix of length bits (0..32) holding address u.
func prefix4(u uint32, bits int) netip.Prefix {
	u &^= math.MaxUint32 >> bits // a shift by 32 gives 0: /32 keeps u
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

// Serves reports whether loc is in the region this edge box serves: loc is
// Known and the config's region name is "" or loc's region.
func (l *Locator) Serves(loc Locality) bool {
	t := l.table.Load()
	return loc.Known && t != nil && (t.name == "" || t.name == loc.Region)
}

// TableSize returns the number of IPv4 and IPv6 prefixes in the table.
func (l *Locator) TableSize() (v4, v6 int) {
	t := l.table.Load()
	if t == nil {
		return 0, 0
	}
	return t.prefixes.Size4(), t.prefixes.Size6()
}

func (l *Locator) registerMetrics() error {
	m := otel.Meter(instrumentation)
	lookups, err1 := m.Int64ObservableCounter("region.lookups",
		metric.WithDescription("Address lookups by result: known (mapped to a region) or unknown."),
		metric.WithUnit("{lookup}"))
	prefixes, err2 := m.Int64ObservableGauge("region.table.prefixes",
		metric.WithDescription("Prefixes in the region table by IP version."),
		metric.WithUnit("{prefix}"))
	reloads, err3 := m.Int64ObservableCounter("region.reloads",
		metric.WithDescription("Region table loads by outcome; a failed reload keeps the previous table."),
		metric.WithUnit("{reload}"))
	loadTime, err4 := m.Float64ObservableGauge("region.table.load.duration",
		metric.WithDescription("How long building the current region table took."),
		metric.WithUnit("s"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	var (
		known   = metric.WithAttributeSet(attribute.NewSet(attribute.String("region.lookup.result", "known")))
		unknown = metric.WithAttributeSet(attribute.NewSet(attribute.String("region.lookup.result", "unknown")))
		ipv4    = metric.WithAttributeSet(attribute.NewSet(attribute.String("network.type", "ipv4")))
		ipv6    = metric.WithAttributeSet(attribute.NewSet(attribute.String("network.type", "ipv6")))
		success = metric.WithAttributeSet(attribute.NewSet(attribute.String("region.reload.outcome", "success")))
		failure = metric.WithAttributeSet(attribute.NewSet(attribute.String("region.reload.outcome", "failure")))
	)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(lookups, int64(sum(&l.known)), known)
		o.ObserveInt64(lookups, int64(sum(&l.unknown)), unknown)
		o.ObserveInt64(reloads, int64(l.reloads[0].Load()), success)
		o.ObserveInt64(reloads, int64(l.reloads[1].Load()), failure)
		if t := l.table.Load(); t != nil {
			o.ObserveInt64(prefixes, int64(t.prefixes.Size4()), ipv4)
			o.ObserveInt64(prefixes, int64(t.prefixes.Size6()), ipv6)
			o.ObserveFloat64(loadTime, t.loadTime.Seconds())
		}
		return nil
	}, lookups, prefixes, reloads, loadTime)
	if err != nil {
		return err
	}
	l.metricReg = reg
	return nil
}
