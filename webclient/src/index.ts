/**
 * @peerassist/webclient: the browser client of the edgebox peer-assisted
 * CDN. A page creates one Client; it loads media from same-ISP peers over
 * WebRTC DataChannels, verified chunk by chunk against the edge's SHA-256
 * manifests, and from the edge over HTTP when the deadline is near or no
 * peer can help.
 *
 *   const pa = new Client({ edge: "https://edge.isp.example" });
 *   const hls = new Hls(pa.hlsConfig());
 *   pa.attachMedia(video);
 *   hls.loadSource(url); hls.attachMedia(video);
 */
export { Client, version } from "./client";
export type { ClientOptions, ClientEvents, FetchOptions, PeerEvent, Stats, TransferEvent, VerifyFailureEvent } from "./client";
export { EdgeHTTPError, EdgeRefusedError } from "./edge";
export { ManifestError } from "./manifest";
export type { Manifest } from "./manifest";
export type { HlsLoader, HlsLoaderCallbacks, HlsLoaderClass, HlsLoaderConfiguration, HlsLoaderContext, HlsLoaderStats } from "./hls";
export type { LogLevel, Logger } from "./log";
