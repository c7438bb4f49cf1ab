package region

import (
	"encoding/json"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// WhoamiPath is where the edge mounts ServeWhoami.
const WhoamiPath = "/pa/v1/whoami"

// Answer is the JSON object that `edge region` prints for each address and
// GET /pa/v1/whoami returns for the caller. Every field is always present;
// strings are "" and asn 0 when unknown.
type Answer struct {
	IP     string `json:"ip"`
	Known  bool   `json:"known"`
	Region string `json:"region"`
	ISP    string `json:"isp"`
	ASN    uint32 `json:"asn"`
	Prefix string `json:"prefix"` // most specific table prefix that matched
	Subnet string `json:"subnet"` // access network
	Source string `json:"source"` // "config" or the database path as configured
	// Served tells whether this edge box serves the address's region.
	Served bool `json:"served"`
}

// Answer looks ip up and returns the answer for it.
func (l *Locator) Answer(ip netip.Addr) Answer {
	ip = ip.Unmap()
	loc := l.Locate(ip)
	a := Answer{
		Known:  loc.Known,
		Region: loc.Region,
		ISP:    loc.ISP,
		ASN:    loc.ASN,
		Source: loc.Source,
		Served: l.Serves(loc),
	}
	if ip.IsValid() {
		a.IP = ip.String()
	}
	if loc.Prefix.IsValid() {
		a.Prefix = loc.Prefix.String()
	}
	if loc.Subnet.IsValid() {
		a.Subnet = loc.Subnet.String()
	}
	return a
}

// ServeWhoami answers GET (and HEAD) /pa/v1/whoami with the caller's
// address, as ClientAddr determines it, and its locality as an Answer in
// JSON. The response is never cached: it differs for every caller.
func (l *Locator) ServeWhoami(ctx *fasthttp.RequestCtx) {
	// ctx.Error resets the headers: set them after it.
	defer ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed: use GET\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		return
	}
	client := l.RequestAddr(ctx)
	if !client.IsValid() {
		ctx.Error("cannot determine the client address of this connection\n", fasthttp.StatusInternalServerError)
		return
	}
	body, err := json.Marshal(l.Answer(client))
	if err != nil { // cannot happen for Answer's field types
		ctx.Error("encoding answer: "+err.Error()+"\n", fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(append(body, '\n'))
}

// RequestAddr is ClientAddr for a fasthttp request: the client's address,
// from the socket or, behind a trusted proxy, from its header.
func (l *Locator) RequestAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	return l.ClientAddr(remoteAddr(ctx), ctx.Request.Header.PeekAll)
}

// remoteAddr is the TCP peer of the request (invalid for non-IP listeners).
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}
