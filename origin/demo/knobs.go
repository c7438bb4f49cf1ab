package demo

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/peerassist/edgebox/config"
	"github.com/valyala/fasthttp"
)

// Limits on knob values, so that a query string cannot park a handler for
// ever or ask for nonsense.
const (
	MaxDelay   = time.Minute // largest delay= / Faults.Delay
	minRateBps = 1           // smallest rate= in bytes per second
)

// Faults are process-wide misbehaviours of the origin, applied to every
// request (health checks included, as a sick origin fails those too) unless
// the request's query parameters override them. The zero value is a healthy
// origin.
type Faults struct {
	// Status forces every response to this status (with a short text body);
	// 0 means off.
	Status int
	// Delay is waited before the response headers are sent.
	Delay time.Duration
	// RateBps throttles bodies to this many bytes per second; 0 means
	// unlimited.
	RateBps int64
	// BreakAfterBytes closes the connection after this many body bytes of
	// a response (an aborted fill); 0 means off.
	BreakAfterBytes int64
	// Version changes the content and validators of every /bytes object
	// (as if the origin published new files), so that revalidation returns
	// new content. "" is the default version.
	Version string
}

// Validate reports the first bad field.
func (f Faults) Validate() error {
	switch {
	case f.Status != 0 && (f.Status < 200 || f.Status > 599):
		return fmt.Errorf("status %d: want 200..599", f.Status)
	case f.Delay < 0 || f.Delay > MaxDelay:
		return fmt.Errorf("delay %s: want 0..%s", f.Delay, MaxDelay)
	case f.RateBps < 0:
		return fmt.Errorf("rate %d: must not be negative", f.RateBps)
	case f.BreakAfterBytes < 0:
		return fmt.Errorf("break_after %d: must not be negative", f.BreakAfterBytes)
	}
	return nil
}

// knobs are one request's effective settings: the process faults overridden
// by query parameters.
type knobs struct {
	Faults
	// headers to set (value != "") or delete (value == "") on the response,
	// in canonical form, applied last.
	headers [][2]string
	// etag and lastModified override the validators used for conditional
	// requests; "" / zero keep the object's own.
	etag         string
	lastModified time.Time
	hasLM        bool
	// breakAfter is the body byte count after which the connection is
	// closed; -1 is off.
	breakAfter int64
}

// headerKnobs maps header-override query parameters to header names.
var headerKnobs = []struct{ param, header string }{
	{"cache_control", "Cache-Control"},
	{"expires", "Expires"},
	{"vary", "Vary"},
	{"content_type", "Content-Type"},
	{"etag", "ETag"},
	{"last_modified", "Last-Modified"},
}

// parseKnobs reads the knob query parameters of args over the base faults.
// Unknown parameters are ignored (they only vary the URL, which is how
// tests make distinct cache keys).
func parseKnobs(args *fasthttp.Args, base Faults, now time.Time) (knobs, error) {
	k := knobs{Faults: base, breakAfter: -1}
	if base.BreakAfterBytes > 0 {
		k.breakAfter = base.BreakAfterBytes
	}
	if v := args.Peek("status"); v != nil {
		s, err := strconv.Atoi(string(v))
		if err != nil || s < 200 || s > 599 {
			return k, fmt.Errorf("status=%q: want an HTTP status 200..599", v)
		}
		k.Status = s
	}
	if v := args.Peek("delay"); v != nil {
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 || d > MaxDelay {
			return k, fmt.Errorf("delay=%q: want a duration such as 200ms, at most %s", v, MaxDelay)
		}
		k.Delay = d
	}
	if v := args.Peek("rate"); v != nil {
		r, err := config.ParseByteSize(string(v))
		if err != nil || r < minRateBps {
			return k, fmt.Errorf("rate=%q: want bytes per second such as 1MiB or 65536", v)
		}
		k.RateBps = int64(r)
	}
	if v := args.Peek("break_after"); v != nil {
		r, err := config.ParseByteSize(string(v))
		if err != nil {
			return k, fmt.Errorf("break_after=%q: want a byte count such as 65536 or 1MiB", v)
		}
		// break_after=0 is meaningful: headers, then the connection closes
		// before the first body byte.
		k.breakAfter = int64(r)
	}
	if args.Has("version") {
		k.Version = string(args.Peek("version"))
	}
	for _, h := range headerKnobs {
		if !args.Has(h.param) {
			continue
		}
		v := strings.TrimSpace(string(args.Peek(h.param)))
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return k, fmt.Errorf("%s: header values must not contain control characters", h.param)
		}
		switch h.param {
		case "etag":
			if v != "" && !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, `W/"`) {
				v = `"` + v + `"`
			}
			k.etag = v
		case "last_modified":
			if v != "" {
				t, err := parseTime(v)
				if err != nil {
					return k, fmt.Errorf("last_modified=%q: %v", v, err)
				}
				k.lastModified, k.hasLM = t, true
				v = t.UTC().Format(http.TimeFormat)
			}
		case "expires":
			// A duration is relative to now ("expires=10s", "expires=-1h");
			// anything else is sent verbatim, since an invalid Expires is
			// itself something a cache must handle (it means "expired").
			if d, err := time.ParseDuration(v); err == nil {
				v = now.Add(d).UTC().Format(http.TimeFormat)
			}
		}
		k.headers = append(k.headers, [2]string{h.header, v})
	}
	return k, nil
}

// parseTime accepts an HTTP date, RFC 3339 or Unix seconds.
func parseTime(v string) (time.Time, error) {
	if t, err := http.ParseTime(v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 && s < 1<<40 {
		return time.Unix(s, 0), nil
	}
	return time.Time{}, fmt.Errorf("want an HTTP date, RFC 3339 time or Unix seconds")
}
