import { Log } from "./log";
import { Pacer } from "./pacer";
import { ChunkStore } from "./store";
export interface PeerHooks {
    /** A neighbor announced a chunk. */
    have(p: Peer, objectId: string, index: number): void;
    /** Bytes we sent. */
    uploaded(p: Peer, n: number): void;
    /** The connection is gone (or was dropped for misbehaviour). */
    closed(p: Peer, reason: string): void;
    /** The channel opened. */
    opened(p: Peer): void;
    /** Whether we serve requests now. */
    serving(): boolean;
}
export declare class Peer implements PeerSource {
    readonly peerId: string;
    readonly pc: RTCPeerConnection;
    private readonly store;
    private readonly pacer;
    private readonly hooks;
    private readonly log;
    /** Hex peer_id. */
    readonly id: string;
    private dc;
    private readonly holds;
    private readonly pending;
    private readonly queue;
    private sending;
    private closedReason;
    private remoteServes;
    private remoteMaxRequests;
    private rate;
    open: boolean;
    constructor(peerId: string, idHex: string, pc: RTCPeerConnection, store: ChunkStore, pacer: Pacer, hooks: PeerHooks, log: Log);
    /** Attaches the DataChannel (ours as offerer, or the one the offerer opened). */
    attach(dc: RTCDataChannel): void;
    private onOpen;
    private sendBitfield;
    /** Tells the neighbor we hold a chunk. */
    announce(objectId: string, index: number): void;
    has(objectId: string, index: number): boolean;
    get inflight(): number;
    get rateBytesPerSec(): number;
    /** Whether it can take another request now. */
    get available(): boolean;
    private send;
    request(objectId: string, index: number, bytes: number, signal: AbortSignal): Promise<Uint8Array>;
    private onMessage;
    private noteHave;
    private onRequest;
    /** Sends queued chunks one DATA frame at a time, paced and flow-controlled. */
    private pump;
    /** Waits while the channel buffers more than the high-water mark. */
    private drain;
    /** Drops a misbehaving neighbor. */
    drop(reason: string): void;
    close(reason: string, dropped?: boolean): void;
    get closed(): boolean;
}
