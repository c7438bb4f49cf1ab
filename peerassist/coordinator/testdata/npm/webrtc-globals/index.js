// The WebRTC classes, read from globalThis when first imported (interop.mjs
// sets them from @roamhq/wrtc before importing the clients).
export const RTCPeerConnection = globalThis.RTCPeerConnection
export const RTCSessionDescription = globalThis.RTCSessionDescription
export const RTCIceCandidate = globalThis.RTCIceCandidate
