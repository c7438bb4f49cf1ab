// One WebTorrent tracker client, as a browser would run it, for the
// coordinator's interoperability test (coordinator/interop_test.go).
//
//   node interop.mjs <announce-url> <bittorrent-tracker|p2p-media-loader> <name> <stream-or-infohash> <peers-wanted>
//
// It prints one JSON object per line: {"event":"announced"|"peer"|"connected"|
// "scrape"|"warning"|"done"|"timeout", ...}: "done" once it has an open WebRTC
// data channel with peers-wanted other peers (1 by default), "timeout" (and
// exit status 1) if that takes more than 40 s. It stays in the swarm, for
// the peers that join later, until its standard input closes.
//
// WebRTC is real (@roamhq/wrtc, libwebrtc). To keep the test's traffic on
// loopback, the session descriptions a peer sends keep only its
// 127.0.0.0/8 ICE candidates.
import wrtc from '@roamhq/wrtc'

const [url, lib, name, swarm, wantArg] = process.argv.slice(2)
const want = Number(wantArg || 1)
const out = (o) => process.stdout.write(JSON.stringify({ name, ...o }) + '\n')

function loopbackOnly (sdp) {
  return sdp.split('\r\n').filter(l => !l.startsWith('a=candidate:') || / 127\.\d+\.\d+\.\d+ /.test(l)).join('\r\n')
}
class LoopbackPC extends wrtc.RTCPeerConnection {
  get localDescription () {
    const d = super.localDescription
    return d && { type: d.type, sdp: loopbackOnly(d.sdp) }
  }
}
const rtc = { RTCPeerConnection: LoopbackPC, RTCSessionDescription: wrtc.RTCSessionDescription, RTCIceCandidate: wrtc.RTCIceCandidate }
// Browsers have these; simple-peer looks for them when it loads.
Object.assign(globalThis, rtc)
if (!globalThis.navigator) globalThis.navigator = { userAgent: 'node' }
// bittorrent-tracker's client wants a TCP port outside browsers, which
// p2p-media-loader (written for browsers) does not pass.
process.browser = true

const connected = new Set()
let finished = false
function onConnected (id) {
  if (connected.has(id)) return
  connected.add(id)
  out({ event: 'connected', peer: id })
  if (connected.size >= want && !finished) {
    finished = true
    out({ event: 'done', peers: connected.size })
  }
}
setTimeout(() => { if (!finished) { out({ event: 'timeout', peers: connected.size }); process.exit(1) } }, 40000).unref()
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()

if (lib === 'bittorrent-tracker') {
  const { default: Client } = await import('bittorrent-tracker')
  const peerId = Buffer.from(('-BT0000-' + name + '____________').slice(0, 20))
  const infoHash = Buffer.from(swarm, 'hex')
  const client = new Client({ infoHash, peerId, announce: [url], port: 6881, wrtc: rtc, rtcConfig: { iceServers: [] } })
  client.on('warning', (err) => out({ event: 'warning', message: err.message }))
  client.on('error', (err) => out({ event: 'error', message: err.message }))
  client.on('update', (d) => out({ event: 'announced', complete: d.complete, incomplete: d.incomplete, session: d.x_session }))
  client.on('scrape', (d) => out({ event: 'scrape', complete: d.complete, incomplete: d.incomplete }))
  client.on('peer', (peer) => {
    out({ event: 'peer', peer: peer.id })
    peer.on('error', (err) => out({ event: 'warning', message: 'peer: ' + err.message }))
    peer.once('connect', () => onConnected(peer.id))
  })
  client.start()
  setTimeout(() => client.scrape(), 500)
} else if (lib === 'p2p-media-loader') {
  // lib/index.js re-exports a named export of CommonJS "debug", which only
  // bundlers accept: load the modules we need directly.
  const { Core } = await import('./node_modules/p2p-media-loader-core/lib/core.js')
  const { P2PTrackerClient } = await import('./node_modules/p2p-media-loader-core/lib/p2p/tracker-client.js')
  const { EventTarget } = await import('./node_modules/p2p-media-loader-core/lib/utils/event-target.js')
  const { TRACKER_CLIENT_VERSION_PREFIX } = await import('./node_modules/p2p-media-loader-core/lib/utils/peer.js')
  const config = {
    ...Core.DEFAULT_COMMON_CORE_CONFIG,
    ...Core.DEFAULT_STREAM_CONFIG,
    announceTrackers: [url],
    rtcConfig: { iceServers: [] },
    trackerClientVersionPrefix: TRACKER_CLIENT_VERSION_PREFIX
  }
  const stream = { type: 'main', index: 0, segments: new Map() }
  const handlers = {
    onPeerConnected: (peer) => onConnected(peer.id),
    onSegmentRequested: () => {},
    onSegmentsAnnouncement: () => {}
  }
  const events = new EventTarget()
  events.addEventListener('onTrackerWarning', (w) => out({ event: 'warning', message: String(w.warning && w.warning.message) }))
  events.addEventListener('onTrackerError', (w) => out({ event: 'error', message: String(w.error && w.error.message) }))
  const tc = new P2PTrackerClient(swarm, stream, handlers, config, events)
  tc.client.on('update', (d) => out({ event: 'announced', complete: d.complete, incomplete: d.incomplete, session: d.x_session }))
  tc.client.on('peer', (peer) => out({ event: 'peer', peer: peer.id }))
  tc.start()
} else {
  out({ event: 'error', message: 'unknown library ' + lib })
  process.exit(2)
}
