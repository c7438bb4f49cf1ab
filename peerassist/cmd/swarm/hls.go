package main

import (
	"bufio"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Limits on playlists from the edge (untrusted input).
const (
	maxPlaylistBytes = 4 << 20
	maxVariants      = 64
	maxSegments      = 100_000
)

// variant is one rendition of a master playlist.
type variant struct {
	URI          string
	BandwidthBps int64
}

// segment is one object of a media playlist: the init section (Duration 0)
// or a media segment.
type segment struct {
	Path     string // path and query on the edge
	Duration time.Duration
}

// parseMaster returns the variants of a master playlist in order.
func parseMaster(data []byte) ([]variant, error) {
	if len(data) > maxPlaylistBytes {
		return nil, fmt.Errorf("master playlist larger than %d bytes", maxPlaylistBytes)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 64<<10), maxPlaylistBytes)
	var out []variant
	first, pending := true, false
	var bw int64
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return nil, fmt.Errorf("not an HLS playlist (first line %q)", truncate(line))
			}
			first = false
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			pending = true
			bw = 0
			if v, ok := attr(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"), "BANDWIDTH"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("BANDWIDTH %q: not a count", truncate(v))
				}
				bw = n
			}
		case strings.HasPrefix(line, "#"):
		case pending:
			out = append(out, variant{URI: line, BandwidthBps: bw})
			pending = false
			if len(out) > maxVariants {
				return nil, fmt.Errorf("more than %d variants", maxVariants)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if first {
		return nil, fmt.Errorf("empty playlist")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("master playlist lists no variant stream")
	}
	return out, nil
}

// parseMedia returns the objects of a media playlist at base (its own path
// on the edge, to resolve relative URIs): the EXT-X-MAP init section if any,
// then every segment with its EXTINF duration.
func parseMedia(data []byte, base string) ([]segment, error) {
	if len(data) > maxPlaylistBytes {
		return nil, fmt.Errorf("media playlist larger than %d bytes", maxPlaylistBytes)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 64<<10), maxPlaylistBytes)
	var out []segment
	first := true
	var dur time.Duration
	haveInf := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return nil, fmt.Errorf("not an HLS playlist (first line %q)", truncate(line))
			}
			first = false
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			return nil, fmt.Errorf("a master playlist where a media playlist was expected")
		case strings.HasPrefix(line, "#EXT-X-BYTERANGE"):
			return nil, fmt.Errorf("EXT-X-BYTERANGE segments are not supported")
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			uri, ok := attr(strings.TrimPrefix(line, "#EXT-X-MAP:"), "URI")
			if !ok || uri == "" {
				return nil, fmt.Errorf("EXT-X-MAP without URI")
			}
			p, err := resolve(base, uri)
			if err != nil {
				return nil, err
			}
			out = append(out, segment{Path: p})
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			sec, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || sec < 0 || sec > 3600 || sec != sec {
				return nil, fmt.Errorf("EXTINF %q: want a duration in seconds", truncate(v))
			}
			dur, haveInf = time.Duration(sec*float64(time.Second)), true
		case strings.HasPrefix(line, "#"):
		default:
			if !haveInf {
				return nil, fmt.Errorf("segment %q without EXTINF", truncate(line))
			}
			p, err := resolve(base, line)
			if err != nil {
				return nil, err
			}
			out = append(out, segment{Path: p, Duration: dur})
			haveInf = false
			if len(out) > maxSegments {
				return nil, fmt.Errorf("more than %d segments", maxSegments)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if first {
		return nil, fmt.Errorf("empty playlist")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("media playlist lists no segment")
	}
	return out, nil
}

// resolve turns a playlist URI into a path on the edge. Absolute URLs must
// point at the edge (same path space); only their path and query are kept.
func resolve(base, ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("URI %q: %w", truncate(ref), err)
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URI %q: scheme %q", truncate(ref), u.Scheme)
	}
	p := u.Path
	if !strings.HasPrefix(p, "/") {
		p = path.Join(path.Dir(base), p)
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, nil
}

// attr returns the value of name in an HLS attribute list (quotes removed).
func attr(list, name string) (string, bool) {
	for len(list) > 0 {
		var kv string
		// Split at the next comma outside quotes.
		inQuote := false
		i := 0
		for ; i < len(list); i++ {
			if list[i] == '"' {
				inQuote = !inQuote
			} else if list[i] == ',' && !inQuote {
				break
			}
		}
		kv, list = list[:i], list[min(i+1, len(list)):]
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(strings.TrimSpace(v), `"`), true
		}
	}
	return "", false
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
