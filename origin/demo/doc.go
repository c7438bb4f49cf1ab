// Package demo is the built-in demo origin: deterministic synthetic files of
// any size and a small sample HLS video, with knobs that make it misbehave
// on purpose. `edge --demo`, the tests and the benchmarks put it behind the
// edge cache; `go run ./origin/cmd/origin --listen ADDR` runs it alone.
//
// # Routes (GET and HEAD; other methods get 405)
//
//	/bytes/{n}              n bytes (0 <= n <= 1 TiB), a pure function of n
//	                        and the version (see Content): strong ETag, fixed
//	                        Last-Modified, "Cache-Control: public,
//	                        max-age=3600", Accept-Ranges. A bad n gets 400.
//	/vod/sample/master.m3u8 a 40 s HLS VOD in fMP4 (H.264 main + AAC-LC), two
//	                        renditions (360p, 180p), 4 s segments; generated
//	                        by vod/generate.sh and embedded. Playlists are
//	                        application/vnd.apple.mpegurl with max-age=60,
//	                        segments video/mp4 with max-age=86400.
//	/healthz                200 "ok" (or the forced status, see Faults)
//	/                       a short usage text
//	anything else           404
//
// Every file answers Range (single, suffix and open-ended ranges get 206
// with Content-Range; a range that selects nothing gets 416 with
// "Content-Range: bytes */n"; several ranges get 200 with the full body; a
// malformed Range is ignored), If-None-Match and If-Modified-Since (304),
// If-Match and If-Unmodified-Since (412) and If-Range, in the order of
// RFC 9110 section 13.2.2.
//
// # Knobs (query parameters, on /bytes, /vod and /healthz)
//
// Header overrides; an empty value removes the header. Conditionals use the
// overridden validators.
//
//	cache_control=V   Cache-Control: V
//	expires=V         Expires: V; a Go duration ("10s", "-1h") means now+V,
//	                  anything else is sent verbatim (an invalid Expires is
//	                  itself a test case)
//	etag=V            ETag: V (quoted if not already "..." or W/"...")
//	last_modified=V   Last-Modified from an HTTP date, RFC 3339 or Unix seconds
//	vary=V            Vary: V
//	content_type=V    Content-Type: V
//
// Faults; the same settings exist process-wide (Options.Faults, SetFaults
// and the standalone command's flags) and a query parameter overrides them:
//
//	status=N          answer N (200..599) with a short text body (503 adds
//	                  Retry-After: 1); header overrides still apply, so
//	                  "status=404&cache_control=max-age=5" is a cacheable 404
//	delay=D           wait D (a Go duration, at most 1m) before the headers
//	rate=R            send the body at R bytes per second ("1MiB", "65536")
//	break_after=K     send the headers and K body bytes ("0", "64KiB"), then
//	                  close the connection: an aborted fill
//	version=V         /bytes content, ETag and Last-Modified of version V
//	                  (Last-Modified is 2024-01-01 + V hours for a number V),
//	                  so that revalidation sees new content
//
// Any other query parameter is ignored, which is how tests make distinct
// cache keys for the same object. Bad knob values get 400 with a message.
//
// Hits counts requests per path so that tests can assert that an edge
// collapsed concurrent misses into one origin fetch.
package demo
