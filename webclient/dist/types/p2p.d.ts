import type { PeerSource } from "./fetcher";
import { Peer, PeerHooks } from "./peer";
export declare class P2P implements P2PEngine, PeerHooks {
    private readonly client;
    private readonly tracker;
    private readonly peerId;
    private infoHash;
    private swarmName;
    /** Neighbors whose channel is open, one per binary peer_id. */
    private readonly peers;
    /** Connections whose channel is not open yet (answered offers, answers to ours). */
    private readonly connecting;
    private readonly offers;
    private readonly banned;
    private readonly waiters;
    private readonly badChunks;
    private readonly pacer;
    private readonly meter;
    private readonly capsTimer;
    private announcedCapacityBps;
    private policy;
    private swarmPeers;
    private intervalMs;
    private announceTimer;
    /** When the pending announce is due (Date.now() clock); Infinity when none is. */
    private announceDue;
    private reportTimer;
    /** When the last announce was sent (Date.now() clock). */
    private lastAnnounceAt;
    /** Announces being prepared (offers gathering): they send the caps current when they go. */
    private preparing;
    private destroyed;
    private started;
    private lastOpen;
    private readonly startedAt;
    constructor(client: Client, swarm: string);
    /**
     * The upload capacity we report (x_caps.upload_bps): the declared one,
     * or the measured one when the network showed less (or nothing was
     * declared); 0 when neither is known.
     */
    private capacityBps;
    /** The upload budget: 0 when uploads are off, else the edge's, else our share of the capacity. */
    private budgetBps;
    /** Tells the edge when the measured capacity moved by more than capsChange since last announced. */
    private checkCapacity;
    /** Upload was turned off or on (navigator.connection changed): pace, and tell the edge. */
    uploadChanged(allowed: boolean): void;
    /** The declared stream bitrate changed: tell the edge at once, paced (bitrateAnnounceGapMs). */
    bitrateChanged(): void;
    setSwarm(name: string): void;
    private caps;
    private report;
    private announce;
    /**
     * Schedules the next announce after delayMs (default: soon while short
     * of neighbors, else the tracker's interval). A sooner one already
     * pending stays: an announce reply must not postpone the announce that
     * tells the edge of a change.
     */
    private scheduleAnnounce;
    private cancelAnnounce;
    private newPC;
    private makeOffers;
    private onSignal;
    private applyPolicy;
    private answerOffer;
    private addPeer;
    /** Whether a connection to peerId through our offer (offered) or its offer is under way. */
    private isConnecting;
    /** Distinct peers we are connected or connecting to. */
    private remotes;
    private allPeers;
    accept(p: Peer): string | undefined;
    have(_p: Peer, objectId: string, index: number): void;
    uploaded(p: Peer, n: number): void;
    opened(p: Peer): void;
    closed(p: Peer, reason: string): void;
    serving(): boolean;
    private scheduleAnnounceSoon;
    private connected;
    private wakeAll;
    warming(): boolean;
    holders(objectId: string, index: number): PeerSource[];
    neighbors(): number;
    size(): number;
    waitHave(objectId: string, index: number, signal: AbortSignal): Promise<void>;
    badChunk(src: PeerSource, objectId: string, index: number): void;
    stored(objectId: string, index: number): void;
    stats(s: Stats): void;
    destroy(): void;
}
/**
 * Decides between two connections to one remote peer when offers crossed
 * (PROTOCOL.md, "The channel"): keep the one whose offerer has the smaller
 * peer_id, bytewise, so that both sides keep the same one. offered tells
 * whether we (self) were the offerer of the old and of the new connection.
 * Returns whether the new connection replaces the old one; on a tie (both
 * offered by the same side) the old one stays.
 */
export declare function keepNewConnection(self: string, remote: string, oldOffered: boolean, newOffered: boolean): boolean;
