package config

import (
	"fmt"
	"strings"
)

// Limits protect the public listener.
type Limits struct {
	// MaxConnections caps concurrent client connections. Default 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps concurrent connections from one client
	// address; 0 means no per-IP cap. Default 0.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxHeaderBytes is the largest request header block; larger requests
	// get 431. Default 16KiB.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// ReadTimeout bounds reading one request, headers included (slowloris).
	// Default 15s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response. Large objects to slow
	// clients need room. Default 10m.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxObjectBytes is the largest object the cache stores; larger
	// responses are passed through uncached. Default 8GiB.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes"`
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections: 10000,
		MaxHeaderBytes: 16 << 10,
		ReadTimeout:    Duration(15e9),
		WriteTimeout:   Duration(600e9),
		IdleTimeout:    Duration(60e9),
		MaxObjectBytes: 8 << 30,
	}
}

func (l *Limits) validate(p *Problems) {
	p.CheckPositive("max_connections", int64(l.MaxConnections))
	if l.MaxConnectionsPerIP < 0 {
		p.Add("max_connections_per_ip", "must not be negative")
	}
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		p.Addf("max_header_bytes", "must be between 1KiB and 1MiB (got %s)", l.MaxHeaderBytes)
	}
	p.CheckPositiveDuration("read_timeout", l.ReadTimeout)
	p.CheckPositiveDuration("write_timeout", l.WriteTimeout)
	p.CheckPositiveDuration("idle_timeout", l.IdleTimeout)
	p.CheckPositive("max_object_bytes", int64(l.MaxObjectBytes))
}

// Cache sizes the chunk-addressed store.
type Cache struct {
	// ChunkBytes is the chunk size: the unit of storage, integrity (one
	// SHA-256 each), peer transfer and attribution. Sites may override it.
	// Default 256KiB; 16KiB..16MiB.
	ChunkBytes ByteSize `yaml:"chunk_bytes"`
	// MemoryBytes bounds the memory tier (an LRU of chunks). Default 512MiB.
	MemoryBytes ByteSize `yaml:"memory_bytes"`
	// DiskPath is the directory of the disk tier; "" keeps the cache in
	// memory only. Default "".
	DiskPath string `yaml:"disk_path"`
	// DiskBytes bounds the disk tier. Default 10GiB.
	DiskBytes ByteSize `yaml:"disk_bytes"`
	// NegativeTTL is how long a 404 or 410 from the origin is cached when
	// the origin says nothing itself. Default 10s; 0 disables.
	NegativeTTL Duration `yaml:"negative_ttl"`
	// DefaultTTL is the freshness of a response that carries no explicit
	// freshness (no max-age, s-maxage or Expires). 0 means none: such
	// responses are stored but revalidated on every use (heuristic
	// freshness is not applied). Default 0.
	DefaultTTL Duration `yaml:"default_ttl"`
	// MaxStale bounds how long past its freshness stale content may be
	// served when the origin allows it (stale-while-revalidate,
	// stale-if-error). Default 24h.
	MaxStale Duration `yaml:"max_stale"`
}

// DefaultCache returns the documented defaults.
func DefaultCache() Cache {
	return Cache{
		ChunkBytes:  256 << 10,
		MemoryBytes: 512 << 20,
		DiskBytes:   10 << 30,
		NegativeTTL: Duration(10e9),
		MaxStale:    Duration(24 * 3600e9),
	}
}

func (c *Cache) validate(p *Problems) {
	checkChunkBytes(p, "chunk_bytes", c.ChunkBytes)
	if c.MemoryBytes < c.ChunkBytes {
		p.Addf("memory_bytes", "must hold at least one chunk (%s)", c.ChunkBytes)
	}
	if c.DiskPath != "" && c.DiskBytes < c.ChunkBytes {
		p.Addf("disk_bytes", "must hold at least one chunk (%s)", c.ChunkBytes)
	}
	if c.NegativeTTL < 0 {
		p.Add("negative_ttl", "must not be negative")
	}
	if c.DefaultTTL < 0 {
		p.Add("default_ttl", "must not be negative")
	}
	if c.MaxStale < 0 {
		p.Add("max_stale", "must not be negative")
	}
}

func checkChunkBytes(p *Problems, field string, v ByteSize) {
	if v < 16<<10 || v > 16<<20 {
		p.Addf(field, "must be between 16KiB and 16MiB (got %s)", v)
	}
	if v%(16<<10) != 0 {
		p.Addf(field, "must be a multiple of 16KiB (the peer message size) (got %s)", v)
	}
}

// Origin tunes connections to upstream origins (all sites).
type Origin struct {
	// ConnectTimeout bounds dialing an origin. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// ResponseTimeout bounds waiting for response headers. Default 30s.
	ResponseTimeout Duration `yaml:"response_timeout"`
	// ReadTimeout bounds each read of a response body (a stalled origin).
	// Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// MaxConnsPerOrigin caps connections to one origin URL. Default 512.
	MaxConnsPerOrigin int `yaml:"max_conns_per_origin"`
	// Retries is how many more times an idempotent request is tried, on
	// another healthy origin where there is one. Default 2.
	Retries int `yaml:"retries"`
	// HealthCheck probes each origin actively.
	HealthCheck HealthCheck `yaml:"health_check"`
	// FailThreshold consecutive failures (passive checks) mark an origin
	// down until a probe or request succeeds: requests go to the site's
	// other origins. When every origin of a site is down, requests still
	// go to one of them (the one with the fewest failures) rather than
	// failing unanswered. Default 3.
	FailThreshold int `yaml:"fail_threshold"`
}

// HealthCheck configures active origin probes.
type HealthCheck struct {
	// Path is requested with HEAD; "" disables active checks. Default "".
	Path string `yaml:"path"`
	// Interval between probes of one origin. Default 10s.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe. Default 2s.
	Timeout Duration `yaml:"timeout"`
}

// DefaultOrigin returns the documented defaults.
func DefaultOrigin() Origin {
	return Origin{
		ConnectTimeout:    Duration(5e9),
		ResponseTimeout:   Duration(30e9),
		ReadTimeout:       Duration(30e9),
		MaxConnsPerOrigin: 512,
		Retries:           2,
		FailThreshold:     3,
		HealthCheck:       HealthCheck{Interval: Duration(10e9), Timeout: Duration(2e9)},
	}
}

func (o *Origin) validate(p *Problems) {
	p.CheckPositiveDuration("connect_timeout", o.ConnectTimeout)
	p.CheckPositiveDuration("response_timeout", o.ResponseTimeout)
	p.CheckPositiveDuration("read_timeout", o.ReadTimeout)
	p.CheckPositive("max_conns_per_origin", int64(o.MaxConnsPerOrigin))
	if o.Retries < 0 || o.Retries > 10 {
		p.Addf("retries", "must be in 0..10 (got %d)", o.Retries)
	}
	p.CheckPositive("fail_threshold", int64(o.FailThreshold))
	if o.HealthCheck.Path != "" {
		if !strings.HasPrefix(o.HealthCheck.Path, "/") {
			p.Add("health_check.path", "must start with /")
		}
		p.CheckPositiveDuration("health_check.interval", o.HealthCheck.Interval)
		p.CheckPositiveDuration("health_check.timeout", o.HealthCheck.Timeout)
	}
}

// Site maps requests (by Host and path prefix) to one or more origins.
type Site struct {
	// Name identifies the site in metrics, logs and cache keys. Required.
	Name string `yaml:"name"`
	// Hosts are the Host header values this site answers (exact, case
	// insensitive, port ignored; "*.example.com" matches subdomains). Empty
	// means any host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix restricts the site to paths under it. Default "/".
	PathPrefix string `yaml:"path_prefix"`
	// StripPrefix removes PathPrefix before forwarding to the origin.
	// Default false.
	StripPrefix bool `yaml:"strip_prefix"`
	// Origins are the upstreams (mirrors) of the site, chosen by health and
	// load. At least one.
	Origins []SiteOrigin `yaml:"origins"`
	// ChunkBytes overrides cache.chunk_bytes for this site. Default 0 (use
	// the cache's).
	ChunkBytes ByteSize `yaml:"chunk_bytes"`
	// PeerAssist configures peer assistance for this site.
	PeerAssist SitePeerAssist `yaml:"peer_assist"`
}

// SiteOrigin is one upstream of a site.
type SiteOrigin struct {
	// URL is the origin's base URL (scheme, host, optional path prefix).
	URL string `yaml:"url"`
	// Weight shares load among healthy origins. Default 1.
	Weight int `yaml:"weight"`
}

// SitePeerAssist is a site's peer-assistance settings.
type SitePeerAssist struct {
	// Enabled lets viewers of this site form swarms. Default true.
	Enabled *bool `yaml:"enabled"`
	// AllowCrossISP lets peers of different ISPs in one region exchange
	// data (never across regions). Default false.
	AllowCrossISP bool `yaml:"allow_cross_isp"`
	// UploadFraction overrides policy.upload_fraction for this site's
	// peers; 0 means use the policy's. Default 0.
	UploadFraction float64 `yaml:"upload_fraction"`
	// BitrateBps is the stream bitrate in bits/s where known; it is the
	// basic rate of the site's swarms (CloudTracker's d_basic). 0 means use
	// policy.basic_rate_bps. Default 0.
	BitrateBps int64 `yaml:"bitrate_bps"`
}

// IsEnabled reports whether peer assistance is on (default true).
func (s SitePeerAssist) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

func (s *Site) applyDefaults() {
	if s.PathPrefix == "" {
		s.PathPrefix = "/"
	}
	for i := range s.Origins {
		if s.Origins[i].Weight == 0 {
			s.Origins[i].Weight = 1
		}
	}
}

// NewSite returns a site with defaults for name serving every host from the
// given origin URLs.
func NewSite(name string, originURLs ...string) Site {
	s := Site{Name: name}
	for _, u := range originURLs {
		s.Origins = append(s.Origins, SiteOrigin{URL: u})
	}
	s.applyDefaults()
	return s
}

func (s *Site) validate(p *Problems) {
	if s.Name == "" {
		p.Add("name", "required")
	} else if strings.ContainsAny(s.Name, " /\t\n") {
		p.Addf("name", "%q must not contain spaces or slashes", s.Name)
	}
	for i, h := range s.Hosts {
		if h == "" || strings.ContainsAny(h, " /") {
			p.Addf(fmt.Sprintf("hosts[%d]", i), "invalid host %q", h)
		}
	}
	if !strings.HasPrefix(s.PathPrefix, "/") {
		p.Addf("path_prefix", "%q must start with /", s.PathPrefix)
	}
	if len(s.Origins) == 0 {
		p.Add("origins", "at least one origin is required")
	}
	for i, o := range s.Origins {
		op := p.Sub(fmt.Sprintf("origins[%d]", i))
		op.CheckURL("url", o.URL)
		if o.Weight < 0 {
			op.Add("weight", "must not be negative")
		}
	}
	if s.ChunkBytes != 0 {
		checkChunkBytes(p, "chunk_bytes", s.ChunkBytes)
	}
	pa := p.Sub("peer_assist")
	if s.PeerAssist.UploadFraction != 0 {
		pa.CheckFraction("upload_fraction", s.PeerAssist.UploadFraction, true)
	}
	if s.PeerAssist.BitrateBps < 0 {
		pa.Add("bitrate_bps", "must not be negative")
	}
}

// Telemetry configures traces, metrics and logs.
type Telemetry struct {
	// ServiceName is the OpenTelemetry service.name. Default "edge".
	ServiceName string `yaml:"service_name"`
	// OTLPEndpoint is an OTLP/HTTP endpoint for traces ("http://host:4318").
	// "" uses the standard OTEL_EXPORTER_OTLP_* variables when set, or no
	// export. Default "".
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// TraceSampleRatio is the fraction of requests traced (parent-based).
	// Default 0.01.
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json or text. Default json.
	LogFormat string `yaml:"log_format"`
	// AccessLog logs one line per request at info level. Default false.
	AccessLog bool `yaml:"access_log"`
}

// DefaultTelemetry returns the documented defaults.
func DefaultTelemetry() Telemetry {
	return Telemetry{ServiceName: "edge", TraceSampleRatio: 0.01, LogLevel: "info", LogFormat: "json"}
}

func (t *Telemetry) validate(p *Problems) {
	if t.ServiceName == "" {
		p.Add("service_name", "must not be empty")
	}
	if t.OTLPEndpoint != "" {
		p.CheckURL("otlp_endpoint", t.OTLPEndpoint)
	}
	p.CheckFraction("trace_sample_ratio", t.TraceSampleRatio, true)
	switch t.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.Addf("log_level", "%q: want debug, info, warn or error", t.LogLevel)
	}
	switch t.LogFormat {
	case "json", "text":
	default:
		p.Addf("log_format", "%q: want json or text", t.LogFormat)
	}
}
