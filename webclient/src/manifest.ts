import { fromHex } from "./util";

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
export const MaxChunkBytes = 16 << 20;
/** Largest chunk count accepted (a 1 TiB object of 1 MiB chunks). */
export const MaxChunks = 1 << 20;

/** A manifest that does not parse or is inconsistent. */
export class ManifestError extends Error {
  constructor(msg: string) {
    super("manifest: " + msg);
    this.name = "ManifestError";
  }
}

/** Validates a decoded manifest document, as the Go Manifest.Validate does, plus limits. */
export function parseManifest(doc: unknown): Manifest {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new ManifestError("not a JSON object");
  const d = doc as Record<string, unknown>;
  const url = d.url;
  const objectId = d.object_id;
  const size = d.size;
  const chunkBytes = d.chunk_size;
  const sums = d.sha256;
  if (typeof url !== "string") throw new ManifestError("url: want a string");
  if (typeof objectId !== "string" || !/^[0-9a-f]{16}$/.test(objectId)) throw new ManifestError(`object_id: want 16 lowercase hex digits`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw new ManifestError(`size: want a non-negative integer`);
  if (typeof chunkBytes !== "number" || !Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > MaxChunkBytes)
    throw new ManifestError(`chunk_size: want an integer in 1..${MaxChunkBytes}`);
  if (!Array.isArray(sums)) throw new ManifestError("sha256: want an array");
  const want = Math.ceil(size / chunkBytes);
  if (want > MaxChunks) throw new ManifestError(`${want} chunks exceed the limit of ${MaxChunks}`);
  if (sums.length !== want) throw new ManifestError(`${sums.length} digests for ${size} bytes in ${chunkBytes}-byte chunks, want ${want}`);
  const sha256: Uint8Array[] = [];
  for (let i = 0; i < sums.length; i++) {
    const h = sums[i];
    const b = typeof h === "string" && h.length === 64 ? fromHex(h) : undefined;
    if (!b) throw new ManifestError(`sha256[${i}]: want 64 hex digits`);
    sha256.push(b);
  }
  const etag = typeof d.etag === "string" ? d.etag : undefined;
  return { url, objectId, etag, size, chunkBytes, sha256 };
}

export function numChunks(m: Manifest): number {
  return m.sha256.length;
}

/** Byte range [start, end) of chunk i. */
export function chunkRange(m: Manifest, i: number): [number, number] {
  const start = i * m.chunkBytes;
  return [start, Math.min(start + m.chunkBytes, m.size)];
}
