export declare const IDLen = 20;
/** A random 20-byte binary string; prefix (ASCII) first. */
export declare function randomID(prefix?: string): string;
/** The swarm's info_hash: the first 20 bytes of SHA-256(name), as a binary string. */
export declare function infoHashOf(name: string): Promise<string>;
export declare function isID(v: unknown): v is string;
/** Hex of a binary-string ID, for logs and reports. */
export declare function idHex(id: string): string;
export interface SessionDescription {
    type: "offer" | "answer";
    sdp: string;
}
export interface Policy {
    uploadBudgetBps: number;
    edgeAllowanceBps: number;
    usePeers: boolean;
    reason?: string;
}
export interface Report {
    from_peers_bytes: number;
    from_edge_bytes: number;
    uploaded_bytes: number;
    bad_chunks?: {
        peer_id: string;
        object: string;
        chunk: number;
    }[];
}
export interface Caps {
    upload_bps: number;
    upload: boolean;
    device: "desktop" | "mobile" | "tv" | "stb" | "other";
    /** Bitrate of the stream played in the announce's swarm, bits/s; absent: none. */
    bitrate_bps?: number;
}
/** What the tracker sent, validated. */
export type Incoming = {
    kind: "announce";
    infoHash: string;
    interval: number;
    complete: number;
    incomplete: number;
    session?: string;
    policy?: Policy;
} | {
    kind: "offer";
    infoHash: string;
    peerId: string;
    offerId: string;
    offer: SessionDescription;
} | {
    kind: "answer";
    infoHash: string;
    peerId: string;
    offerId: string;
    answer: SessionDescription;
} | {
    kind: "policy";
    infoHash: string;
    policy: Policy;
} | {
    kind: "failure";
    reason: string;
} | {
    kind: "ignored";
    why: string;
};
/** Validates one tracker message. Never throws. */
export declare function parseIncoming(text: string): Incoming;
/**
 * Tracker is one signaling socket to the edge, reconnecting with backoff.
 * Not usable as a zero value; single-threaded (the page's event loop).
 */
export declare class Tracker {
    private readonly url;
    private readonly log;
    private ws;
    private closed;
    private backoffMs;
    onMessage: (m: Incoming) => void;
    onOpen: () => void;
    constructor(url: string, log: Log);
    get open(): boolean;
    private connect;
    private retry;
    /** Sends a message if the socket is open; returns whether it was sent. */
    send(m: Record<string, unknown>): boolean;
    close(): void;
}
