package edge

// Contracts between the edge server and the parts the edge binary plugs into
// it (coordinator, region, web client). Keep them small.

import (
	"time"

	"github.com/valyala/fasthttp"
)

// Route is an extra handler mounted on the public listener before site
// routing: /pa/v1/announce, /pa/v1/whoami, /pa/v1/peerassist.js, the demo
// page. A Path ending in "/" matches every path below it.
type Route struct {
	Path    string
	Handler fasthttp.RequestHandler
}

// SessionHeader and SessionParam carry a peer-assist session ID on HTTP
// requests to the edge (the parameter is for players that cannot set
// headers; the edge strips it from the cache key). UrgentHeader and
// UrgentParam ("1") mark a request the player needs now (within its
// urgent window): it is always served within the viewer's floor.
const (
	SessionHeader = "X-PA-Session"
	SessionParam  = "pa_session"
	UrgentHeader  = "X-PA-Urgent"
	UrgentParam   = "pa_urgent"
	// UsePeersHeader is set on a 429 that asks a client to fetch from peers.
	UsePeersHeader = "X-PA-Use-Peers"
)

// SessionGate is what the edge asks the coordinator about requests that
// carry a peer-assist session. A nil SessionGate means no peer assistance.
type SessionGate interface {
	// Admit decides whether the edge serves this request now. A refused
	// request gets 429 with Retry-After and UsePeersHeader. Unknown
	// sessions must be admitted (the session may have just expired).
	Admit(sessionID string, urgent bool) (ok bool, retryAfter time.Duration, reason string)
	// Served records body bytes the edge sent to a session for an object
	// (site name and the request's path and query, without the session
	// parameter). Called once per response, after it was written.
	Served(sessionID, site, url string, bytes int64)
}

// UrgencyGate is a SessionGate that also wants to know which served bytes
// answered urgent requests (the policy keeps each viewer's floor on the
// urgent path and counts the rest against its allowance). When the
// SessionGate implements it, the edge calls ServedUrgent instead of Served.
type UrgencyGate interface {
	SessionGate
	// ServedUrgent is Served with the request's urgency (UrgentHeader or
	// UrgentParam).
	ServedUrgent(sessionID, site, url string, bytes int64, urgent bool)
}
