import { EdgeHTTP } from "./edge";
import { Emitter } from "./emitter";
import { Fetcher, SwarmView } from "./fetcher";
import { hlsLoaderClass, HlsLoaderClass } from "./hls";
import { Log, LogLevel, Logger } from "./log";
import { P2P } from "./p2p";
import { ChunkStore } from "./store";
import { errorText, now } from "./util";

declare const __PA_VERSION__: string;
/** The library version (package.json). */
export const version: string = typeof __PA_VERSION__ === "string" ? __PA_VERSION__ : "dev";

/** Options of a Client. Every field is optional; defaults are documented per field. */
export interface ClientOptions {
  /** Base URL of the edge (scheme, host, port). Default: the page's origin. */
  edge?: string;
  /** Signaling endpoint. Default: ws(s)://EDGE/pa/v1/announce. */
  announceURL?: string;
  /**
   * Swarm name: peers that use the same name (and region, which the edge
   * decides) exchange chunks. Default: for hls.js, the master playlist URL
   * without its query; for fetch(), the object's URL.
   */
  swarm?: string;
  /** Peer assistance over WebRTC. false: HTTP from the edge only. Default true. */
  p2p?: boolean;
  /**
   * Whether this client uploads to peers. "auto" turns upload off when the
   * browser reports data saver (navigator.connection.saveData) or a
   * cellular or metered network. Default "auto".
   */
  upload?: boolean | "auto";
  /** Declared upload capacity in bits per second; 0: unknown (the edge's default budget applies). Default 0. */
  uploadCapacityBps?: number;
  /** Share of the upload capacity used for peers until the edge says otherwise. Default 1/3. */
  uploadFraction?: number;
  /** Needed within this many ms: fetched from the edge. Default 4000 (the edge's policy may change it). */
  urgentWindowMs?: number;
  /** Deadline of a fetch() without one, in ms. Default 10000. */
  defaultDeadlineMs?: number;
  /** Most neighbors kept connected. Default 8. */
  maxPeers?: number;
  /** Memory for verified chunks kept to share, in bytes. Default 64 MiB. */
  cacheBytes?: number;
  /** ICE servers. Default none: peers of one ISP network meet by host candidates. */
  iceServers?: RTCIceServer[];
  /** Log sink (console-like). Default console. */
  logger?: Logger;
  /** Least severe level logged. Default "warn". */
  logLevel?: LogLevel;
}

/** Counters of a Client; bytes are body bytes. */
export interface Stats {
  /** Session ID the edge issued, once signaling is up. */
  sessionId?: string;
  /** Media and file bytes received from the edge over HTTP. */
  bytesFromEdge: number;
  /** Bytes received from peers (verified). */
  bytesFromPeers: number;
  /** Bytes sent to peers. */
  bytesUploaded: number;
  /** Connected neighbors now. */
  peersConnected: number;
  /** Chunks from peers that failed SHA-256 verification. */
  verificationFailures: number;
  /** Non-urgent edge requests the edge refused (429, use peers). */
  edgeRefusals: number;
  /** Whether peer assistance runs, and why not when it does not. */
  p2p: "off" | "connecting" | "on";
  p2pOffReason?: string;
  /** Whether this client uploads to peers. */
  uploadAllowed: boolean;
  /** Current upload budget in bits per second. */
  uploadBudgetBps: number;
  /**
   * Upload capacity in bits per second measured while the network, not the
   * budget, limited uploads (reported to the edge when below the declared
   * capacity); 0 until measured.
   */
  measuredUploadBps: number;
  /** Peers in the swarm (the coordinator's count, us included). */
  swarmSize: number;
  /**
   * Bitrate in bits per second of the stream this client plays in its
   * swarm, as declared to the edge (x_caps.bitrate_bps): the level hls.js
   * loads, or FetchOptions.bitrateBps; 0 when none was declared.
   */
  bitrateBps: number;
}

/** A transfer, for the "transfer" event. */
export interface TransferEvent {
  source: "edge" | "peer";
  direction: "down" | "up";
  bytes: number;
  peerId?: string;
}

/** A peer event. */
export interface PeerEvent {
  peerId: string;
  state: "connected" | "disconnected" | "dropped";
  reason?: string;
}

/** A chunk that failed verification. */
export interface VerifyFailureEvent {
  peerId: string;
  objectId: string;
  chunk: number;
}

/** Events of a Client. */
export interface ClientEvents {
  /** Stats, about once a second while anything changes. */
  stats: Stats;
  transfer: TransferEvent;
  peer: PeerEvent;
  verifyfailure: VerifyFailureEvent;
}

/** Options of Client.fetch. */
export interface FetchOptions {
  /** Needed within this many ms from now. Default: the client's defaultDeadlineMs. */
  deadlineMs?: number;
  /** Needed now: straight from the edge, never refused. Default false. */
  urgent?: boolean;
  /** Byte range [start, end) of the object. Default: the whole object. */
  range?: [number, number];
  signal?: AbortSignal;
  /**
   * Bitrate in bits per second of the stream the object belongs to (a
   * media segment of a rendition: its BANDWIDTH). Declared to the edge for
   * the client's swarm (x_caps.bitrate_bps) where it differs from the last
   * one declared: where the site configures no bitrate, the edge keeps
   * this viewer's floor, what it always serves urgently, at this rate.
   * Default: none (the last declaration stands).
   */
  bitrateBps?: number;
}

/** Minimal view of a media element, for deadlines. */
interface MediaLike {
  currentTime: number;
  playbackRate: number;
}

/** Hooks a P2P engine registers on its Client. @internal */
export interface P2PEngine extends SwarmView {
  destroy(): void;
  stats(s: Stats): void;
  setSwarm(name: string): void;
  /** Upload was turned off or on. */
  uploadChanged(allowed: boolean): void;
  /** The declared stream bitrate (Client.bitrateBps) changed. */
  bitrateChanged(): void;
}

/**
 * Client is one page's peer-assist agent: it loads objects from peers and
 * the edge, shares what it verified, and reports to the edge.
 *
 * Create one per page (or per player). Not usable as a zero value; all
 * methods are safe to call from any task of the page's event loop. No
 * method throws into the caller except fetch(), whose promise rejects
 * with the edge's error when the edge itself fails.
 */
export class Client extends Emitter<ClientEvents> {
  /** @internal */ readonly log: Log;
  /** @internal */ readonly opts: Required<Omit<ClientOptions, "logger" | "logLevel" | "swarm" | "announceURL">> & { announceURL: string; swarm?: string };
  /** @internal */ readonly edgeHTTP: EdgeHTTP;
  /** @internal */ readonly fetcher: Fetcher;
  /** @internal */ readonly counters: Stats;
  private engine: P2PEngine | undefined;
  private media: MediaLike | undefined;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private lastStats = "";
  private destroyed = false;
  private unwatchConnection: (() => void) | undefined;
  /** @internal */ sessionId: string | undefined;
  /** The swarm joined last (join), whose stream bitrateBps describes. */
  private swarmName: string | undefined;
  /** @internal The declared stream bitrate in bits/s; 0: none. */
  bitrateBps = 0;

  constructor(options: ClientOptions = {}) {
    super();
    this.log = new Log(options.logger, options.logLevel ?? "warn");
    this.onListenerError = (err) => this.log.warn("event listener threw:", errorText(err));
    const base = typeof location !== "undefined" ? location.href : "http://localhost/";
    const edge = new URL(options.edge ?? base, base);
    const ws = new URL("/pa/v1/announce", edge);
    ws.protocol = edge.protocol === "https:" ? "wss:" : "ws:";
    this.opts = {
      edge: edge.origin,
      announceURL: options.announceURL ?? ws.href,
      swarm: options.swarm,
      p2p: options.p2p ?? true,
      upload: options.upload ?? "auto",
      uploadCapacityBps: positive(options.uploadCapacityBps, 0),
      uploadFraction: clamp(options.uploadFraction ?? 1 / 3, 0, 1),
      urgentWindowMs: positive(options.urgentWindowMs, 4000),
      defaultDeadlineMs: positive(options.defaultDeadlineMs, 10000),
      maxPeers: Math.floor(positive(options.maxPeers, 8)),
      cacheBytes: positive(options.cacheBytes, 64 << 20),
      iceServers: options.iceServers ?? [],
    };
    this.edgeHTTP = new EdgeHTTP(this.opts.edge, () => this.sessionId, this.log);
    const tune = { urgentWindowMs: this.opts.urgentWindowMs, seedPeers: 3, chunkParallelism: 4, minPeerBytesPerSec: 256 << 10 };
    this.fetcher = new Fetcher(this.edgeHTTP, new ChunkStore(this.opts.cacheBytes), this.sink(), tune, this.log);
    this.counters = {
      bytesFromEdge: 0,
      bytesFromPeers: 0,
      bytesUploaded: 0,
      peersConnected: 0,
      verificationFailures: 0,
      edgeRefusals: 0,
      p2p: "off",
      uploadAllowed: this.uploadAllowed(),
      uploadBudgetBps: 0,
      measuredUploadBps: 0,
      swarmSize: 1,
      bitrateBps: 0,
    };
    if (!this.opts.p2p) this.counters.p2pOffReason = "disabled by option";
    if (this.opts.swarm) this.join(this.opts.swarm);
    this.statsTimer = setInterval(() => this.publishStats(), 1000);
    this.watchConnection();
  }

  /**
   * With upload "auto", follows navigator.connection's change event: data
   * saver or a metered or cellular network turns upload off, and back on
   * when it ends.
   */
  private watchConnection(): void {
    const c = networkInformation();
    if (this.opts.upload !== "auto" || !c || typeof c.addEventListener !== "function") return;
    const onChange = () => {
      const allowed = this.uploadAllowed();
      if (allowed === this.counters.uploadAllowed) return;
      this.counters.uploadAllowed = allowed;
      this.engine?.uploadChanged(allowed);
    };
    try {
      c.addEventListener("change", onChange);
      this.unwatchConnection = () => c.removeEventListener?.("change", onChange);
    } catch (err) {
      this.log.info("navigator.connection:", errorText(err));
    }
  }

  private sink() {
    return {
      edgeBytes: (n: number) => {
        this.counters.bytesFromEdge += n;
        this.emit("transfer", { source: "edge", direction: "down", bytes: n });
      },
      peerBytes: (peerId: string, n: number) => {
        this.counters.bytesFromPeers += n;
        this.emit("transfer", { source: "peer", direction: "down", bytes: n, peerId });
      },
      verifyFailed: (peerId: string, objectId: string, chunk: number) => {
        this.counters.verificationFailures++;
        this.emit("verifyfailure", { peerId, objectId, chunk });
      },
      edgeRefused: () => {
        this.counters.edgeRefusals++;
      },
    };
  }

  /** @internal Counts an upload (the P2P engine calls it). */
  uploaded(peerId: string, n: number): void {
    this.counters.bytesUploaded += n;
    this.emit("transfer", { source: "peer", direction: "up", bytes: n, peerId });
  }

  /** @internal */
  peerEvent(e: PeerEvent): void {
    this.emit("peer", e);
  }

  /** Whether this client may upload now (option, data saver, metered network). */
  uploadAllowed(): boolean {
    const o = this.opts.upload;
    if (o === true || o === false) return o;
    const c = networkInformation() ?? {};
    return !(c.saveData || c.metered || c.type === "cellular");
  }

  /**
   * Joins the swarm of name (idempotent; a new name switches swarms). Called
   * by the hls.js integration with the stream's URL; call it yourself to
   * share files before the first fetch.
   */
  join(name: string): void {
    if (this.destroyed) return;
    // A declared bitrate is that of the swarm's stream: another swarm
    // starts without one.
    if (name !== this.swarmName) this.bitrateBps = 0;
    this.swarmName = name;
    if (this.engine) {
      this.engine.setSwarm(name);
      return;
    }
    this.startP2P(name);
  }

  private startP2P(name: string): void {
    if (!this.opts.p2p) return;
    if (!this.fetcher.canVerify) {
      this.counters.p2pOffReason = "crypto.subtle unavailable (not a secure context): cannot verify chunks";
      this.log.warn("peer assistance off:", this.counters.p2pOffReason);
      return;
    }
    if (typeof RTCPeerConnection === "undefined") {
      this.counters.p2pOffReason = "WebRTC unavailable";
      this.log.info("peer assistance off:", this.counters.p2pOffReason);
      return;
    }
    try {
      this.engine = new P2P(this, name);
      this.fetcher.swarm = this.engine;
      this.counters.p2p = "connecting";
      this.counters.p2pOffReason = undefined;
    } catch (err) {
      this.counters.p2pOffReason = "P2P start failed: " + errorText(err);
      this.log.warn(this.counters.p2pOffReason);
    }
  }

  /**
   * @internal Declares the bitrate in bits/s of the stream this client
   * plays in its swarm (the hls.js loader calls it with the level it
   * loads). A change is announced to the edge at once, at most once per
   * couple of seconds (the P2P engine paces it); invalid values are ignored.
   */
  declareBitrate(bps: number): void {
    if (this.destroyed || typeof bps !== "number" || !Number.isFinite(bps) || bps < 1) return;
    const b = Math.min(Math.round(bps), maxBitrateBps);
    if (b === this.bitrateBps) return;
    this.log.info(`stream bitrate ${Math.round(b / 1000)} kbit/s (was ${this.bitrateBps ? Math.round(this.bitrateBps / 1000) + " kbit/s" : "none"})`);
    this.bitrateBps = b;
    this.engine?.bitrateChanged();
  }

  /** Tells the client which media element plays, so deadlines follow playback. */
  attachMedia(media: MediaLike | null | undefined): void {
    this.media = media ?? undefined;
  }

  /** @internal Deadline (now() clock) of media that starts at startSec of the timeline. */
  deadlineFor(startSec: number | undefined): number {
    const m = this.media;
    if (!m || startSec === undefined || !Number.isFinite(startSec)) return now() + this.opts.defaultDeadlineMs;
    const rate = Math.max(m.playbackRate || 1, 0.25);
    return now() + (Math.max(0, startSec - m.currentTime) * 1000) / rate;
  }

  /**
   * Fetches a file like window.fetch, from peers and the edge. The Response
   * has status 200 (or 206 for a range) and the bytes verified against the
   * edge's manifest. Rejects when the edge fails (HTTP error, network) or
   * the signal aborts.
   */
  async fetch(url: string | URL, o: FetchOptions = {}): Promise<Response> {
    const u = this.edgeHTTP.resolve(String(url));
    if (!this.engine && !this.opts.swarm && this.edgeHTTP.isEdge(u)) this.join(this.edgeHTTP.objectPath(u));
    if (o.bitrateBps !== undefined) this.declareBitrate(o.bitrateBps);
    const range = o.range;
    if (range !== undefined && !validRange(range)) {
      // Plain JS may pass anything: a header string, one number, floats.
      throw new TypeError(`fetch ${u.href}: range must be [start, end) of whole byte offsets with 0 <= start <= end, got ${JSON.stringify(range)}`);
    }
    const deadlineAt = now() + (o.deadlineMs ?? this.opts.defaultDeadlineMs);
    const r = await this.load(u, { deadlineAt, urgent: o.urgent, start: range?.[0], end: range?.[1], signal: o.signal });
    const headers: Record<string, string> = { "Content-Length": String(r.data.length) };
    if (r.contentType) headers["Content-Type"] = r.contentType;
    return new Response(r.data as Uint8Array<ArrayBuffer>, { status: o.range ? 206 : 200, headers });
  }

  /** @internal */
  load(u: URL, r: Parameters<Fetcher["load"]>[1]) {
    return this.fetcher.load(u, r);
  }

  /**
   * hls.js configuration that routes every request through this client:
   * `new Hls({ ...client.hlsConfig(), ...yourConfig })`.
   */
  hlsConfig(): { loader: HlsLoaderClass } {
    return { loader: hlsLoaderClass(this) };
  }

  /** A snapshot of the counters. */
  stats(): Stats {
    const s = { ...this.counters, sessionId: this.sessionId, uploadAllowed: this.uploadAllowed(), bitrateBps: this.bitrateBps };
    this.engine?.stats(s);
    return s;
  }

  private publishStats(): void {
    const s = this.stats();
    const key = JSON.stringify(s);
    if (key === this.lastStats) return;
    this.lastStats = key;
    this.emit("stats", s);
  }

  /** Leaves the swarm, closes every connection and stops timers. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.statsTimer);
    this.unwatchConnection?.();
    try {
      this.engine?.destroy();
    } catch (err) {
      this.log.warn("destroy:", errorText(err));
    }
    this.engine = undefined;
    this.fetcher.swarm = undefined;
  }
}

/** The parts of navigator.connection (Network Information API) the client reads. */
interface NetworkInformationLike {
  saveData?: boolean;
  type?: string;
  metered?: boolean;
  addEventListener?(type: "change", fn: () => void): void;
  removeEventListener?(type: "change", fn: () => void): void;
}

function networkInformation(): NetworkInformationLike | undefined {
  try {
    return typeof navigator !== "undefined" ? (navigator as unknown as { connection?: NetworkInformationLike }).connection : undefined;
  } catch {
    return undefined;
  }
}

/** Declared bitrates are capped here (100 Gbit/s): the edge bounds them far lower, this keeps them integers it accepts. */
const maxBitrateBps = 1e11;

function positive(v: number | undefined, def: number): number {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : def;
}

function clamp(v: number, lo: number, hi: number): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
}

/** validRange reports whether r is a byte range [start, end) fetch() can load. */
function validRange(r: unknown): r is [number, number] {
  return (
    Array.isArray(r) &&
    r.length === 2 &&
    Number.isSafeInteger(r[0]) &&
    Number.isSafeInteger(r[1]) &&
    r[0] >= 0 &&
    r[1] >= r[0]
  );
}
