/** The edge's integrity manifest of one object (peerassist/manifest). */
export interface Manifest {
    /** Path and query of the object on the edge. */
    url: string;
    /** Edge object ID: 16 lowercase hex digits. */
    objectId: string;
    etag?: string;
    /** Object length in bytes. */
    size: number;
    /** Chunk size in bytes; chunk i is [i*chunkBytes, min(size, (i+1)*chunkBytes)). */
    chunkBytes: number;
    /** SHA-256 of each chunk. */
    sha256: Uint8Array[];
}
/** Largest chunk the client accepts: bounds the memory one chunk can take. */
export declare const MaxChunkBytes: number;
/** Largest chunk count accepted (a 1 TiB object of 1 MiB chunks). */
export declare const MaxChunks: number;
/** A manifest that does not parse or is inconsistent. */
export declare class ManifestError extends Error {
    constructor(msg: string);
}
/** Validates a decoded manifest document, as the Go Manifest.Validate does, plus limits. */
export declare function parseManifest(doc: unknown): Manifest;
export declare function numChunks(m: Manifest): number;
/** Byte range [start, end) of chunk i. */
export declare function chunkRange(m: Manifest, i: number): [number, number];
