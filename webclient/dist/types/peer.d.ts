import { Log } from "./log";
import type { UploadMeter } from "./meter";
import { Pacer } from "./pacer";
import { ChunkStore } from "./store";
export interface PeerHooks {
    /** A neighbor announced a chunk. */
    have(p: Peer, objectId: string, index: number): void;
    /** Bytes we sent. */
    uploaded(p: Peer, n: number): void;
    /** The connection is gone (or was dropped for misbehaviour). */
    closed(p: Peer, reason: string): void;
    /**
     * The channel opened: undefined to use it, else why not (a crossing
     * connection to the same peer won the tie-break); the connection closes.
     */
    accept(p: Peer): string | undefined;
    /** The channel opened and was accepted; HELLO and BITFIELDs are sent. */
    opened(p: Peer): void;
    /** Whether we serve requests now. */
    serving(): boolean;
}
export declare class Peer implements PeerSource {
    readonly peerId: string;
    readonly pc: RTCPeerConnection;
    /** Whether we made the offer of this connection (else we answered). */
    readonly offered: boolean;
    private readonly store;
    private readonly pacer;
    private readonly hooks;
    private readonly log;
    private readonly meter?;
    /** Hex peer_id. */
    readonly id: string;
    private dc;
    private readonly holds;
    private readonly pending;
    private readonly cancelled;
    private readonly queue;
    private queuedBytes;
    private sending;
    private closedReason;
    private helloSeen;
    private openTimer;
    private remoteServes;
    private remoteMaxRequests;
    private rate;
    open: boolean;
    constructor(peerId: string, idHex: string, pc: RTCPeerConnection, 
    /** Whether we made the offer of this connection (else we answered). */
    offered: boolean, store: ChunkStore, pacer: Pacer, hooks: PeerHooks, log: Log, meter?: UploadMeter | undefined);
    /** Closes the connection unless its channel opens within ms. */
    giveUpUnlessOpenWithin(ms: number): void;
    /** Attaches the DataChannel (ours as offerer, or the one the offerer opened). */
    attach(dc: RTCDataChannel): void;
    private onOpen;
    private sendBitfield;
    /** Tells the neighbor we hold a chunk. */
    announce(objectId: string, index: number): void;
    has(objectId: string, index: number): boolean;
    /** Requests this neighbor owes us, cancelled ones included until they end. */
    get inflight(): number;
    get rateBytesPerSec(): number;
    /** Whether it can take another request now. */
    get available(): boolean;
    private send;
    request(objectId: string, index: number, bytes: number, signal: AbortSignal): Promise<Uint8Array>;
    /** Handles one message; a protocol error drops the neighbor. Never throws. */
    private onMessage;
    /** Applies one message; returns a protocol error, if any. */
    private handle;
    private onData;
    private noteHave;
    private onRequest;
    /** Sends queued chunks one DATA frame at a time, paced and flow-controlled. */
    private pump;
    private dequeue;
    /** Waits while the channel buffers more than the high-water mark. */
    private drain;
    /** Drops a misbehaving neighbor. */
    drop(reason: string): void;
    close(reason: string, dropped?: boolean): void;
    get closed(): boolean;
}
