// Package signal is the wire format of the coordinator's signaling socket
// (/pa/v1/announce): the WebTorrent WebSocket tracker protocol, as the
// bittorrent-tracker npm package speaks it, plus our x_-prefixed extensions
// (x_session, x_site, x_caps, x_have, x_report, x_policy). It is shared by the
// coordinator, the Go peer and the load generator, and mirrored by the browser
// client; peerassist/PROTOCOL.md is its prose specification.
//
// A Request is what a client sends (announce or scrape); a Response is what
// the coordinator sends (announce reply, relayed offer or answer, scrape
// reply, failure, policy push). ParseRequest and ParseResponse are strict,
// allocation-light decoders for untrusted input: every malformed message
// yields an *Error whose text is suitable for a "failure reason" reply, and
// never a panic. AppendJSON encodes.
//
// WebTorrent encodes 20-byte binary values (info_hash, peer_id, offer_id) as
// JSON strings whose code points are the byte values 0-255 (what JavaScript's
// String.fromCharCode produces); ID implements that encoding.
package signal
