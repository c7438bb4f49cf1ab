// Package origin fetches from upstream origins for the edge: the origin
// pool.
//
// Each origin URL gets its own fasthttp HostClient (connect, response-header
// and per-read timeouts from config.Origin, at most MaxConnsPerOrigin
// connections). A request for a site goes to one of the site's origins
// (its mirrors): a down origin due for a trial request first, otherwise the
// healthy origin with the fewest requests in flight per unit of weight.
// GET and HEAD are retried on another origin after connection errors,
// timeouts, bad responses and 502/503/504, up to Retries more times.
// Response bodies stream (resp.BodyStream()), so that the edge serves a
// miss while it fills and fills objects of many GiB in constant memory: the
// response-header deadline is lifted once the headers are in and each body
// read is bounded by ReadTimeout instead.
//
// Health: FailThreshold consecutive failures (connection errors,
// timeouts, bad responses, 502/503/504; not a busy pool or a canceled
// caller) mark an origin down. A down origin gets one trial request after
// 1 s, then after a backoff doubling to 30 s, and comes back up on the
// first success; with HealthCheck.Path set, a HEAD probe every Interval
// does the same (2xx/3xx is success).
//
// Telemetry: a client span per attempt (http.request.method,
// server.address, server.port, url.full, http.response.status_code,
// error.type, http.request.resend_count) whose context goes upstream as
// W3C traceparent; metrics edgebox.origin.requests (by origin and
// outcome), edgebox.origin.received (bytes), edgebox.origin.up,
// edgebox.origin.outstanding and http.client.request.duration (time to
// headers).
package origin
