import { Emitter } from "./emitter";
import { HlsLoaderClass } from "./hls";
import { LogLevel, Logger } from "./log";
/** The library version (package.json). */
export declare const version: string;
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
/**
 * Client is one page's peer-assist agent: it loads objects from peers and
 * the edge, shares what it verified, and reports to the edge.
 *
 * Create one per page (or per player). Not usable as a zero value; all
 * methods are safe to call from any task of the page's event loop. No
 * method throws into the caller except fetch(), whose promise rejects
 * with the edge's error when the edge itself fails.
 */
export declare class Client extends Emitter<ClientEvents> {
    private engine;
    private media;
    private statsTimer;
    private lastStats;
    private destroyed;
    private unwatchConnection;
    /** The swarm joined last (join), whose stream bitrateBps describes. */
    private swarmName;
    constructor(options?: ClientOptions);
    /**
     * With upload "auto", follows navigator.connection's change event: data
     * saver or a metered or cellular network turns upload off, and back on
     * when it ends.
     */
    private watchConnection;
    private sink;
    /** Whether this client may upload now (option, data saver, metered network). */
    uploadAllowed(): boolean;
    /**
     * Joins the swarm of name (idempotent; a new name switches swarms). Called
     * by the hls.js integration with the stream's URL; call it yourself to
     * share files before the first fetch.
     */
    join(name: string): void;
    private startP2P;
    /** Tells the client which media element plays, so deadlines follow playback. */
    attachMedia(media: MediaLike | null | undefined): void;
    /**
     * Fetches a file like window.fetch, from peers and the edge. The Response
     * has status 200 (or 206 for a range) and the bytes verified against the
     * edge's manifest. Rejects when the edge fails (HTTP error, network) or
     * the signal aborts.
     */
    fetch(url: string | URL, o?: FetchOptions): Promise<Response>;
    /**
     * hls.js configuration that routes every request through this client:
     * `new Hls({ ...client.hlsConfig(), ...yourConfig })`.
     */
    hlsConfig(): {
        loader: HlsLoaderClass;
    };
    /** A snapshot of the counters. */
    stats(): Stats;
    private publishStats;
    /** Leaves the swarm, closes every connection and stops timers. */
    destroy(): void;
}
export {};
