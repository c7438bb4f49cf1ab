/** A verified chunk and where it came from. @internal */
export interface Chunk {
  data: Uint8Array;
  from: "peer" | "edge";
}

/**
 * ChunkStore keeps verified chunks in memory, bounded in bytes, evicting the
 * least recently used. Only chunks that matched the edge manifest go in: it
 * is what the client serves to other peers.
 *
 * @internal Not safe for concurrent use from several threads (browsers run it on one).
 */
export class ChunkStore {
  private readonly chunks = new Map<string, Chunk>();
  private bytes = 0;
  /** Called with (objectId, index) when a chunk is evicted. */
  onEvict: (objectId: string, index: number) => void = () => {};

  constructor(private readonly maxBytes: number) {}

  private static key(objectId: string, index: number): string {
    return objectId + "/" + index;
  }

  get(objectId: string, index: number): Chunk | undefined {
    const k = ChunkStore.key(objectId, index);
    const c = this.chunks.get(k);
    if (c) {
      // Refresh recency.
      this.chunks.delete(k);
      this.chunks.set(k, c);
    }
    return c;
  }

  has(objectId: string, index: number): boolean {
    return this.chunks.has(ChunkStore.key(objectId, index));
  }

  /** Stores a verified chunk; returns false when it is larger than the whole store. */
  put(objectId: string, index: number, data: Uint8Array, from: Chunk["from"]): boolean {
    if (data.length > this.maxBytes) return false;
    const k = ChunkStore.key(objectId, index);
    const old = this.chunks.get(k);
    if (old) {
      this.bytes -= old.data.length;
      this.chunks.delete(k);
    }
    this.chunks.set(k, { data, from });
    this.bytes += data.length;
    while (this.bytes > this.maxBytes) {
      const [ek, ev] = this.chunks.entries().next().value as [string, Chunk];
      this.chunks.delete(ek);
      this.bytes -= ev.data.length;
      const slash = ek.lastIndexOf("/");
      this.onEvict(ek.slice(0, slash), Number(ek.slice(slash + 1)));
    }
    return true;
  }

  /** Forgets every chunk of an object (its manifest turned out stale). */
  deleteObject(objectId: string): void {
    for (const i of this.indexes(objectId)) {
      const k = ChunkStore.key(objectId, i);
      const c = this.chunks.get(k);
      if (!c) continue;
      this.chunks.delete(k);
      this.bytes -= c.data.length;
      this.onEvict(objectId, i);
    }
  }

  /** Indexes of the chunks held of an object. */
  indexes(objectId: string): number[] {
    const out: number[] = [];
    const p = objectId + "/";
    for (const k of this.chunks.keys()) if (k.startsWith(p)) out.push(Number(k.slice(p.length)));
    return out.sort((a, b) => a - b);
  }

  /** Every (objectId, index) held. */
  *keys(): IterableIterator<[string, number]> {
    for (const k of this.chunks.keys()) {
      const slash = k.lastIndexOf("/");
      yield [k.slice(0, slash), Number(k.slice(slash + 1))];
    }
  }

  get sizeBytes(): number {
    return this.bytes;
  }
}
