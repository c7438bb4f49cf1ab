// Package coordinator is the edge box's tracker: the WebSocket signaling
// endpoint (/pa/v1/announce) that speaks the WebTorrent tracker protocol,
// keeps the swarms of this region and decides who meets whom.
//
// A swarm is (region, info_hash): peers of different regions never see each
// other and peers of unknown locality are in no swarm. An announce's offers
// go to peers ranked by locality tier (same subnet, same ISP, then other
// ISPs of the region only where the site allows it), then by what they hold,
// then at random, skipping peers at their upload budget. Answers are relayed
// only for offers that were relayed (anti-spoofing, as aquatic_ws does).
//
// Sessions tie a signaling connection to the viewer's HTTP requests: the
// first announce gets an x_session ID the client then sends to the edge
// (edge.SessionHeader), and the Coordinator, as the edge's SessionGate,
// counts what the edge served to each session and swarm. The policy loop
// (peerassist/enforce) reads Sessions and Swarms, and acts through
// PushPolicy, SetUploadBudgetReached and per-session Limiters (SetLimiter,
// SetLimiterFactory), which the edge's Admit and Served reach without a
// lock shared between sessions; SetAdmission is a simpler hook for tests.
//
// Reload applies a new peer_assist section, sites and region name to the
// next messages and upgrades without closing a socket: the configuration
// is one immutable value behind an atomic pointer, loaded once per message.
//
// Idle connections cost no goroutine and no buffer: on Linux the socket is
// taken from fasthttp after the handshake and read from a few epoll loops
// (one per 4 CPUs) with one shared read buffer per loop. Elsewhere, or when the
// connection is not a plain TCP socket, one goroutine per connection reads
// it.
package coordinator
