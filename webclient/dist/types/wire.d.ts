/**
 * The peer data protocol (peerassist/PROTOCOL.md, "Peer data protocol"):
 * binary frames of at most 16 KiB exchanged over a DataChannel. This is the
 * browser twin of the Go package peerassist/wire; both are tested against
 * peerassist/wire/testdata/vectors.json.
 *
 *   byte 0  version (1)
 *   byte 1  type
 *   2..     body, integers big-endian; objects are the edge's 64-bit object
 *           IDs, carried here as 16 lowercase hex digits
 *
 * @internal
 */
export declare const MaxFrameBytes: number;
export declare const MaxPayloadBytes: number;
export declare const MaxBitfieldCount: number;
export declare const enum T {
    Hello = 1,
    Have = 2,
    Bitfield = 3,
    Request = 4,
    Data = 5,
    Absent = 6,
    Cancel = 7
}
export declare const typeNames: string[];
export declare const enum Reason {
    NotHeld = 1,
    OverBudget = 2,
    Busy = 3,
    Cancelled = 4
}
export declare const reasonNames: string[];
/** HELLO flag: the sender answers requests (uploads). */
export declare const FlagServes = 1;
/** One frame; which fields matter depends on type (as in the Go package). */
export interface Frame {
    type: T;
    maxVersion: number;
    flags: number;
    maxRequests: number;
    object: string;
    chunk: number;
    offset: number;
    count: number;
    bits: Uint8Array;
    payload: Uint8Array;
    reason: number;
}
export declare const hello: (flags: number, maxRequests: number) => Frame;
export declare const have: (object: string, chunk: number) => Frame;
export declare const request: (object: string, chunk: number) => Frame;
export declare const cancel: (object: string, chunk: number) => Frame;
export declare const absent: (object: string, chunk: number, reason: Reason) => Frame;
export declare const data: (object: string, chunk: number, offset: number, payload: Uint8Array) => Frame;
export declare const bitfield: (object: string, first: number, count: number, bits: Uint8Array) => Frame;
/** A malformed frame; code is one of the Go package's Code constants. */
export declare class WireError extends Error {
    readonly code: string;
    constructor(code: string, msg: string);
}
/** Whether a BITFIELD frame marks chunk as held. */
export declare function bitfieldHas(f: Frame, chunk: number): boolean;
/** Checks f against the rules decode enforces. */
export declare function validate(f: Frame): void;
/** Encodes a frame; throws WireError for a frame a peer would reject. */
export declare function encode(f: Frame): Uint8Array;
/** Decodes one frame; throws WireError for any malformed input. Payload and bits alias b. */
export declare function decode(b: Uint8Array): Frame;
