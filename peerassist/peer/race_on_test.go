//go:build race

package peer

// raceEnabled: the race detector slows pion (DTLS, SCTP) several times, so
// the integration tests move less data.
const raceEnabled = true
