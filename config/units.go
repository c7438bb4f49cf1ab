package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ByteSize is a size in bytes that YAML may write as a number or with a
// binary or decimal unit: 262144, "256KiB", "1.5GiB", "10GB", "512k".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseByteSize parses s as a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, &valueError{value: s, msg: fmt.Sprintf("invalid size %q (want bytes such as 262144, \"256KiB\" or \"2GiB\")", s)}
	}
	return ByteSize(f * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used for YAML strings).
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes the size in the largest exact binary unit.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

func (b ByteSize) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.m == 0 {
			return strconv.FormatInt(int64(b)/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// valueError is a scalar that does not parse; the loader finds its line by
// its text because the YAML decoder does not pass positions to
// TextUnmarshalers.
type valueError struct{ value, msg string }

func (e *valueError) Error() string { return e.msg }

// Duration is a time.Duration that YAML writes as "5s", "250ms", "2m".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return &valueError{value: string(text), msg: fmt.Sprintf("invalid duration %q (want a Go duration such as \"5s\" or \"250ms\")", text)}
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// CheckHostPort reports field unless v is a "host:port" listen address.
func (p *Problems) CheckHostPort(field, v string) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		p.Addf(field, "%q is not host:port: %v", v, err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.Addf(field, "%q: port must be a number in 0..65535", v)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		p.Addf(field, "%q: invalid host", v)
	}
}

// CheckPositive reports field unless v > 0.
func (p *Problems) CheckPositive(field string, v int64) {
	if v <= 0 {
		p.Addf(field, "must be greater than 0 (got %d)", v)
	}
}

// CheckPositiveDuration reports field unless d > 0.
func (p *Problems) CheckPositiveDuration(field string, d Duration) {
	if d <= 0 {
		p.Addf(field, "must be greater than 0 (got %s)", d)
	}
}

// CheckFraction reports field unless lo < v <= 1 (or lo <= v when closedLow).
func (p *Problems) CheckFraction(field string, v float64, closedLow bool) {
	switch {
	case v != v: // NaN
		p.Add(field, "must be a number")
	case closedLow && (v < 0 || v > 1):
		p.Addf(field, "must be in [0, 1] (got %g)", v)
	case !closedLow && (v <= 0 || v > 1):
		p.Addf(field, "must be in (0, 1] (got %g)", v)
	}
}

// CheckURL reports field unless v is an absolute http or https URL.
func (p *Problems) CheckURL(field, v string) {
	u, err := url.Parse(v)
	switch {
	case v == "":
		p.Add(field, "must not be empty")
	case err != nil:
		p.Addf(field, "invalid URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		p.Addf(field, "%q: scheme must be http or https", v)
	case u.Host == "":
		p.Addf(field, "%q: missing host", v)
	}
}
