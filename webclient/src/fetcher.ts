import { EdgeHTTP, EdgeRefusedError } from "./edge";
import { Log } from "./log";
import { Manifest, ManifestError, chunkRange, numChunks, parseManifest } from "./manifest";
import { Chunk, ChunkStore } from "./store";
import { abortError, anySignal, deadlineSignal, equalBytes, errorText, hasSubtleCrypto, isAbort, now, sha256, sleep } from "./util";

/** A connected neighbor that can serve chunks. @internal */
export interface PeerSource {
  readonly id: string;
  /** Requests chunk index of objectId; resolves with its bytes, unverified. */
  request(objectId: string, index: number, bytes: number, signal: AbortSignal): Promise<Uint8Array>;
  /** Requests in flight to this peer. */
  readonly inflight: number;
  /** Recent receive rate from this peer in bytes per second (0 when unknown). */
  readonly rateBytesPerSec: number;
}

/** What the fetcher needs from the swarm. @internal */
export interface SwarmView {
  /** Connected neighbors that announced the chunk, best first. */
  holders(objectId: string, index: number): PeerSource[];
  /** Connected neighbors. */
  neighbors(): number;
  /**
   * True while what neighbors hold is not known yet: others are in the
   * swarm but none is connected, or one connected a moment ago and its
   * announcements are still arriving.
   */
  warming(): boolean;
  /** Peers in the swarm, us included, as the coordinator last said (>= 1). */
  size(): number;
  /** Resolves when a neighbor announces the chunk; rejects when signal fires. */
  waitHave(objectId: string, index: number, signal: AbortSignal): Promise<void>;
  /** A chunk from peer failed verification: report it and drop the peer. */
  badChunk(peer: PeerSource, objectId: string, index: number): void;
  /** A verified chunk was stored: tell neighbors. */
  stored(objectId: string, index: number): void;
}

/** Counters the fetcher feeds. @internal */
export interface FetchSink {
  edgeBytes(n: number): void;
  peerBytes(peerId: string, n: number): void;
  verifyFailed(peerId: string, objectId: string, index: number): void;
  edgeRefused(): void;
}

/** Scheduling parameters. @internal */
export interface FetchTuning {
  urgentWindowMs: number;
  seedPeers: number; // Slurpie k
  chunkParallelism: number;
  minPeerBytesPerSec: number;
}

/** @internal */
export interface LoadRequest {
  /** When the bytes are needed, on the now() clock. */
  deadlineAt: number;
  /** Needed now regardless of the deadline. */
  urgent?: boolean;
  /** Byte range [start, end); whole object when absent. */
  start?: number;
  end?: number;
  signal?: AbortSignal;
}

/** @internal */
export interface Loaded {
  data: Uint8Array;
  contentType: string | null;
  peerBytes: number;
  edgeBytes: number;
  chunks: number;
}

const maxManifests = 512;

/**
 * The edge's bytes of an object no longer match the manifest a load
 * started with (the object changed at the origin, or the manifest is
 * wrong): the load is served from the edge alone.
 */
class ObjectChangedError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = "ObjectChangedError";
  }
}

/**
 * Fetcher delivers objects before their deadline: from its own store, from
 * neighbors while the deadline is outside the urgent window, and from the
 * edge otherwise (or when no neighbor can help). Every chunk from a peer is
 * checked against the edge manifest before use.
 *
 * @internal Safe for concurrent loads on the browser's single thread.
 */
export class Fetcher {
  private readonly manifests = new Map<string, Promise<Manifest>>();
  swarm: SwarmView | undefined;

  constructor(
    private readonly edge: EdgeHTTP,
    readonly store: ChunkStore,
    private readonly sink: FetchSink,
    private readonly tune: FetchTuning,
    private readonly log: Log,
    private readonly fetchFn: typeof fetch = (...a) => fetch(...a),
    private readonly random: () => number = Math.random,
  ) {}

  /** Whether peers can take part: we need crypto.subtle to verify their chunks. */
  get canVerify(): boolean {
    return hasSubtleCrypto();
  }

  /** The manifest of an edge object, cached. */
  manifest(u: URL, signal?: AbortSignal): Promise<Manifest> {
    const path = this.edge.objectPath(u);
    let p = this.manifests.get(path);
    if (p) {
      // Refresh recency.
      this.manifests.delete(path);
      this.manifests.set(path, p);
      return p;
    }
    p = this.fetchManifest(path, signal);
    this.manifests.set(path, p);
    p.catch(() => this.manifests.delete(path));
    while (this.manifests.size > maxManifests) this.manifests.delete(this.manifests.keys().next().value as string);
    return p;
  }

  private async fetchManifest(path: string, signal?: AbortSignal): Promise<Manifest> {
    const url = this.edge.origin + "/pa/v1/manifest?url=" + encodeURIComponent(path);
    const res = await this.fetchFn(url, { signal, credentials: "omit" });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new ManifestError(`GET ${url}: HTTP ${res.status}`);
    }
    let doc: unknown;
    try {
      doc = await res.json();
    } catch (err) {
      throw new ManifestError(`GET ${url}: ${errorText(err)}`);
    }
    const m = parseManifest(doc);
    if (m.url !== path) throw new ManifestError(`GET ${url}: manifest of ${JSON.stringify(m.url.slice(0, 200))}, asked for ${JSON.stringify(path)}`);
    return m;
  }

  /** Loads an object (or a byte range of it) by its deadline. */
  async load(u: URL, r: LoadRequest): Promise<Loaded> {
    const swarm = this.swarm;
    const urgent = !!r.urgent || r.deadlineAt - now() <= this.tune.urgentWindowMs;
    const p2p = !!swarm && this.edge.isEdge(u) && this.canVerify;
    if (p2p && !urgent && (swarm.neighbors() > 0 || swarm.warming())) {
      let m: Manifest | undefined;
      try {
        m = await this.manifest(u, r.signal);
      } catch (err) {
        if (isAbort(err)) throw err;
        this.log.warn("no manifest, loading from the edge:", errorText(err));
      }
      if (m) {
        try {
          return await this.loadChunks(u, m, r);
        } catch (err) {
          if (!(err instanceof ObjectChangedError)) throw err;
          this.log.warn(`${errorText(err)}; loading ${u.pathname} from the edge alone`);
          return this.loadFromEdge(u, r, r.deadlineAt - now() <= this.tune.urgentWindowMs, p2p);
        }
      }
    }
    return this.loadFromEdge(u, r, urgent, p2p);
  }

  /** Whole object (or range) from the edge in one request, then shared. */
  private async loadFromEdge(u: URL, r: LoadRequest, urgent: boolean, share: boolean): Promise<Loaded> {
    for (;;) {
      try {
        const body = await this.edge.get(u, { urgent, start: r.start, end: r.end, signal: r.signal });
        this.sink.edgeBytes(body.data.length);
        if (share && r.start === undefined) this.shareEdgeCopy(u, body.data);
        return { data: body.data, contentType: body.contentType, peerBytes: 0, edgeBytes: body.data.length, chunks: 0 };
      } catch (err) {
        if (!(err instanceof EdgeRefusedError)) throw err;
        if (err.asked) this.sink.edgeRefused();
        // Refused while urgent (the viewer's floor is spent): the edge
        // waits for its Retry-After before asking again (EdgeHTTP).
        if (urgent) continue;
        // Refused while not urgent: wait for the hint or for the urgent window, whichever is first.
        const untilUrgent = r.deadlineAt - this.tune.urgentWindowMs - now();
        const waitMs = Math.max(0, Math.min(err.retryAfterMs, untilUrgent));
        await sleep(waitMs, r.signal);
        // Timers may fire a little early: having waited for the urgent window is reaching it.
        urgent = urgent || waitMs >= untilUrgent || r.deadlineAt - now() <= this.tune.urgentWindowMs;
      }
    }
  }

  /** Verifies an object fetched whole from the edge and stores its chunks for peers. */
  private shareEdgeCopy(u: URL, body: Uint8Array): void {
    // Copy now: the player may transfer (detach) the buffer it is given.
    const data = body.slice();
    this.manifest(u)
      .then(async (m) => {
        if (m.size !== data.length) {
          this.log.info(`edge copy of ${m.url} (${data.length} bytes) does not match its manifest (${m.size} bytes); not shared`);
          return;
        }
        for (let i = 0; i < numChunks(m); i++) {
          if (this.store.has(m.objectId, i)) continue;
          const [s, e] = chunkRange(m, i);
          const c = data.slice(s, e);
          if (!equalBytes(await sha256(c), m.sha256[i])) {
            this.log.warn("edge copy of", m.url, "chunk", i, "does not match its manifest; not shared");
            return;
          }
          if (this.store.put(m.objectId, i, c, "edge")) this.swarm?.stored(m.objectId, i);
        }
      })
      .catch((err) => this.log.debug("not sharing", u.href, errorText(err)));
  }

  private async loadChunks(u: URL, m: Manifest, r: LoadRequest): Promise<Loaded> {
    const start = Math.max(0, r.start ?? 0);
    const end = Math.min(m.size, r.end ?? m.size);
    if (end < start) throw new RangeError(`bad range ${start}-${end} of ${m.size} bytes`);
    const first = Math.floor(start / m.chunkBytes);
    const last = end === start ? first - 1 : Math.floor((end - 1) / m.chunkBytes);
    const out = new Uint8Array(end - start);
    const totals = { peer: 0, edge: 0 };
    const { signal, dispose } = anySignal([r.signal]);
    const ctl = new AbortController();
    const both = anySignal([signal, ctl.signal]);
    let next = first;
    const worker = async () => {
      while (next <= last) {
        const i = next++;
        const got = await this.chunk(u, m, i, r.deadlineAt, both.signal);
        totals[got.from] += got.data.length;
        const [cs] = chunkRange(m, i);
        const from = Math.max(start, cs) - cs;
        const to = Math.min(end, cs + got.data.length) - cs;
        out.set(got.data.subarray(from, to), cs + from - start);
      }
    };
    try {
      const n = Math.min(this.tune.chunkParallelism, last - first + 1);
      await Promise.all(Array.from({ length: Math.max(0, n) }, worker));
    } catch (err) {
      ctl.abort();
      throw err;
    } finally {
      dispose();
      both.dispose();
    }
    return { data: out, contentType: null, peerBytes: totals.peer, edgeBytes: totals.edge, chunks: last - first + 1 };
  }

  /** One verified chunk, by its deadline. */
  private async chunk(u: URL, m: Manifest, i: number, deadlineAt: number, signal: AbortSignal): Promise<Chunk> {
    const [cs, ce] = chunkRange(m, i);
    const bytes = ce - cs;
    const tried = new Set<string>();
    let seedDecided = false;
    let refusedUntil = 0;
    for (;;) {
      if (signal.aborted) throw abortError();
      const held = this.store.get(m.objectId, i);
      if (held) return held;
      const t = now();
      const edgeAt = deadlineAt - this.tune.urgentWindowMs;
      const swarm = this.swarm;
      if (!swarm || t >= edgeAt || (swarm.neighbors() === 0 && !swarm.warming())) return this.urgentEdgeChunk(u, m, i, signal);
      const holders = swarm.holders(m.objectId, i).filter((p) => !tried.has(p.id));
      if (holders.length > 0) {
        const peer = holders[0];
        tried.add(peer.id);
        const rate = Math.max(peer.rateBytesPerSec, this.tune.minPeerBytesPerSec);
        const budget = Math.min(edgeAt - t, 1000 + (1000 * bytes) / rate);
        const data = await this.fromPeer(peer, m, i, bytes, budget, signal);
        if (data) {
          if (!equalBytes(await sha256(data), m.sha256[i])) {
            // Blame the peer only once the edge's copy matches the
            // manifest: a manifest the object outgrew (it throws
            // ObjectChangedError) is nobody's fault.
            const fromEdge = await this.urgentEdgeChunk(u, m, i, signal);
            this.log.warn(`chunk ${m.objectId}/${i} from peer ${peer.id} failed verification; dropping the peer`);
            this.sink.verifyFailed(peer.id, m.objectId, i);
            swarm.badChunk(peer, m.objectId, i);
            return fromEdge;
          }
          this.sink.peerBytes(peer.id, data.length);
          if (this.store.put(m.objectId, i, data, "peer")) swarm.stored(m.objectId, i);
          return { data, from: "peer" };
        }
        continue;
      }
      // Nobody we know holds it. About k peers of the swarm fetch it from the
      // edge (Slurpie); the others wait for it to appear among neighbors.
      if (!seedDecided && t >= refusedUntil && !swarm.warming()) {
        seedDecided = true;
        if (this.random() < Math.min(1, this.tune.seedPeers / Math.max(1, swarm.size() - 1))) {
          try {
            return await this.edgeChunk(u, m, i, false, signal);
          } catch (err) {
            if (!(err instanceof EdgeRefusedError)) throw err;
            if (err.asked) this.sink.edgeRefused();
            refusedUntil = now() + err.retryAfterMs;
          }
        }
      }
      const wait = deadlineSignal(signal, Math.min(edgeAt - now(), 1000));
      try {
        await swarm.waitHave(m.objectId, i, wait.signal);
        tried.clear();
      } catch (err) {
        if (signal.aborted) throw err;
        // Timed out: look again (holders may have changed, the deadline moved closer).
        if (now() >= refusedUntil && refusedUntil > 0) {
          seedDecided = false;
          refusedUntil = 0;
        }
      } finally {
        wait.dispose();
      }
    }
  }

  private async fromPeer(peer: PeerSource, m: Manifest, i: number, bytes: number, budgetMs: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const s = deadlineSignal(signal, budgetMs);
    try {
      const data = await peer.request(m.objectId, i, bytes, s.signal);
      if (data.length !== bytes) {
        this.log.warn(`chunk ${m.objectId}/${i} from peer ${peer.id}: ${data.length} bytes, want ${bytes}`);
        return undefined;
      }
      return data;
    } catch (err) {
      if (signal.aborted) throw err;
      this.log.debug(`chunk ${m.objectId}/${i} from peer ${peer.id}:`, errorText(err));
      return undefined;
    } finally {
      s.dispose();
    }
  }

  /**
   * Chunk i from the edge, urgent: a refusal (the viewer's floor is spent)
   * is asked again once its Retry-After has passed (EdgeHTTP waits).
   */
  private async urgentEdgeChunk(u: URL, m: Manifest, i: number, signal: AbortSignal): Promise<Chunk> {
    for (;;) {
      try {
        return await this.edgeChunk(u, m, i, true, signal);
      } catch (err) {
        if (!(err instanceof EdgeRefusedError)) throw err;
        if (err.asked) this.sink.edgeRefused();
      }
    }
  }

  /** Chunk i from the edge, checked against the manifest; ObjectChangedError when it does not match. */
  private async edgeChunk(u: URL, m: Manifest, i: number, urgent: boolean, signal: AbortSignal): Promise<Chunk> {
    const [s, e] = chunkRange(m, i);
    const body = await this.edge.get(u, { urgent, start: s, end: e, signal });
    this.sink.edgeBytes(body.data.length);
    let mismatch = "";
    if (body.totalBytes !== undefined && body.totalBytes !== m.size) mismatch = `the edge has ${body.totalBytes} bytes, the manifest ${m.size}`;
    else if (body.data.length !== e - s) mismatch = `${body.data.length} bytes from the edge, want ${e - s}`;
    else if (!equalBytes(await sha256(body.data), m.sha256[i])) mismatch = "its SHA-256 differs";
    if (mismatch) {
      // Drop the manifest and what was verified against it: neighbors
      // that follow the new one would find our copies wrong.
      this.manifests.delete(this.edge.objectPath(u));
      this.store.deleteObject(m.objectId);
      throw new ObjectChangedError(`chunk ${m.objectId}/${i} from the edge does not match the manifest of ${m.url} (${mismatch}); the object changed?`);
    }
    if (this.store.put(m.objectId, i, body.data, "edge")) this.swarm?.stored(m.objectId, i);
    return { data: body.data, from: "edge" };
  }
}
