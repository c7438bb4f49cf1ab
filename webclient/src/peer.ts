/**
 * One neighbor: an RTCPeerConnection with one DataChannel speaking the peer
 * data protocol (wire.ts). It tracks what the neighbor holds, runs our
 * requests to it and serves its requests from the chunk store, paced and
 * flow-controlled (bufferedAmount thresholds).
 *
 * @internal Single-threaded; created by the P2P engine.
 */
import type { PeerSource } from "./fetcher";
import { Log } from "./log";
import { MaxChunks } from "./manifest";
import type { UploadMeter } from "./meter";
import { Pacer } from "./pacer";
import { ChunkStore } from "./store";
import { abortError, errorText, now } from "./util";
import * as w from "./wire";

/** Most requests we queue from one neighbor. */
const serveQueue = 16;
/** Send no more while this much is buffered in the channel. */
const highWaterBytes = 1 << 20;
const lowWaterBytes = 256 << 10;
/** Queue no more than this much sending time at the budget: answer over_budget instead (PROTOCOL.md). */
const maxQueueDelayMs = 2000;
/** Bounds on what a neighbor's HAVE and BITFIELD frames may make us keep (PROTOCOL.md rule 8). */
const maxObjectsPerPeer = 4096;
const maxBitsetBytesPerPeer = 4 << 20;

interface Pending {
  buf: Uint8Array;
  got: number;
  resolve(b: Uint8Array): void;
  reject(e: Error): void;
  started: number;
}

/** A request we cancelled: what arrives for it is dropped until its last piece or an ABSENT. */
interface Cancelled {
  got: number;
  size: number;
}

/**
 * ChunkBits records which chunks of which objects a neighbor announced, in
 * bitsets bounded in total bytes so a hostile neighbor cannot make us
 * allocate without bound.
 */
class ChunkBits {
  private readonly sets = new Map<string, Uint8Array>();
  private bytes = 0;

  has(objectId: string, index: number): boolean {
    const b = this.sets.get(objectId);
    return !!b && index >> 3 < b.length && (b[index >> 3] & (0x80 >> (index & 7))) !== 0;
  }

  /** Marks a chunk; returns false when the bounds leave no room (ignored, not an error). */
  add(objectId: string, index: number): boolean {
    if (index >= MaxChunks) return false;
    let b = this.sets.get(objectId);
    const need = (index >> 3) + 1;
    if (!b || b.length < need) {
      if (!b && this.sets.size >= maxObjectsPerPeer) return false;
      // Grow by doubling, within the per-neighbor budget.
      const size = Math.max(need, Math.min(2 * (b?.length ?? 0), MaxChunks >> 3), 16);
      if (this.bytes - (b?.length ?? 0) + size > maxBitsetBytesPerPeer) return false;
      const nb = new Uint8Array(size);
      if (b) nb.set(b);
      this.bytes += size - (b?.length ?? 0);
      this.sets.set(objectId, (b = nb));
    }
    b[index >> 3] |= 0x80 >> (index & 7);
    return true;
  }

  delete(objectId: string, index: number): void {
    const b = this.sets.get(objectId);
    if (b && index >> 3 < b.length) b[index >> 3] &= ~(0x80 >> (index & 7));
  }
}

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

export class Peer implements PeerSource {
  /** Hex peer_id. */
  readonly id: string;
  private dc: RTCDataChannel | undefined;
  private readonly holds = new ChunkBits();
  private readonly pending = new Map<string, Pending>();
  private readonly cancelled = new Map<string, Cancelled>();
  private readonly queue: { objectId: string; index: number; bytes: number; ctl: AbortController }[] = [];
  private queuedBytes = 0;
  private sending = false;
  private closedReason: string | undefined;
  private helloSeen = false;
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private remoteServes = false;
  private remoteMaxRequests = 4;
  private rate = 0;
  open = false;

  constructor(
    readonly peerId: string,
    idHex: string,
    readonly pc: RTCPeerConnection,
    /** Whether we made the offer of this connection (else we answered). */
    readonly offered: boolean,
    private readonly store: ChunkStore,
    private readonly pacer: Pacer,
    private readonly hooks: PeerHooks,
    private readonly log: Log,
    private readonly meter?: UploadMeter,
  ) {
    this.id = idHex;
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === "failed" || s === "closed") this.close("connection " + s);
    };
  }

  /** Closes the connection unless its channel opens within ms. */
  giveUpUnlessOpenWithin(ms: number): void {
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      if (!this.open) this.close("connection timed out");
    }, ms);
  }

  /** Attaches the DataChannel (ours as offerer, or the one the offerer opened). */
  attach(dc: RTCDataChannel): void {
    if (this.dc || this.closedReason) {
      // One channel per connection: the answerer uses the first the offerer opens.
      this.log.info(`peer ${this.id}: extra data channel ${JSON.stringify(dc.label)} closed`);
      try {
        dc.close();
      } catch {
        // Already closed.
      }
      return;
    }
    this.dc = dc;
    dc.binaryType = "arraybuffer";
    dc.bufferedAmountLowThreshold = lowWaterBytes;
    dc.onopen = () => this.onOpen();
    dc.onclose = () => this.close("channel closed");
    dc.onerror = () => this.close("channel error");
    dc.onmessage = (e) => this.onMessage(e.data);
    if (dc.readyState === "open") this.onOpen();
  }

  private onOpen(): void {
    if (this.open || this.closedReason) return;
    clearTimeout(this.openTimer);
    const refused = this.hooks.accept(this);
    if (refused !== undefined) return this.close(refused);
    this.open = true;
    this.send(w.hello(this.hooks.serving() ? w.FlagServes : 0, this.hooks.serving() ? serveQueue : 0));
    // Announce what we hold, object by object.
    const byObject = new Map<string, number[]>();
    for (const k of this.store.keys()) {
      const [o, i] = k;
      let l = byObject.get(o);
      if (!l) byObject.set(o, (l = []));
      l.push(i);
    }
    for (const [o, idx] of byObject) this.sendBitfield(o, idx);
    this.hooks.opened(this);
  }

  private sendBitfield(objectId: string, idx: number[]): void {
    idx.sort((a, b) => a - b);
    for (let s = 0; s < idx.length; ) {
      const first = idx[s];
      let e = s;
      while (e + 1 < idx.length && idx[e + 1] - first < w.MaxBitfieldCount) e++;
      const count = idx[e] - first + 1;
      const bits = new Uint8Array(Math.ceil(count / 8));
      for (let k = s; k <= e; k++) {
        const i = idx[k] - first;
        bits[i >> 3] |= 0x80 >> (i & 7);
      }
      this.send(w.bitfield(objectId, first, count, bits));
      s = e + 1;
    }
  }

  /** Tells the neighbor we hold a chunk. */
  announce(objectId: string, index: number): void {
    if (this.open) this.send(w.have(objectId, index));
  }

  has(objectId: string, index: number): boolean {
    return this.remoteServes && this.holds.has(objectId, index);
  }

  /** Requests this neighbor owes us, cancelled ones included until they end. */
  get inflight(): number {
    return this.pending.size + this.cancelled.size;
  }

  get rateBytesPerSec(): number {
    return this.rate;
  }

  /** Whether it can take another request now. */
  get available(): boolean {
    return this.open && this.remoteServes && this.inflight < this.remoteMaxRequests;
  }

  private send(f: w.Frame): boolean {
    const dc = this.dc;
    if (!dc || dc.readyState !== "open") return false;
    try {
      dc.send(w.encode(f) as Uint8Array<ArrayBuffer>);
      return true;
    } catch (err) {
      this.log.info(`peer ${this.id}: send:`, errorText(err));
      return false;
    }
  }

  request(objectId: string, index: number, bytes: number, signal: AbortSignal): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const key = objectId + "/" + index;
      if (signal.aborted) return reject(abortError());
      if (!this.open || this.pending.has(key) || this.cancelled.has(key)) return reject(new Error("peer unavailable"));
      const p: Pending = { buf: new Uint8Array(bytes), got: 0, resolve, reject, started: now() };
      this.pending.set(key, p);
      const onAbort = () => {
        if (this.pending.get(key) !== p) return;
        this.pending.delete(key);
        if (this.send(w.cancel(objectId, index))) this.cancelled.set(key, { got: p.got, size: p.buf.length });
        reject(abortError());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const done = (fn: () => void) => {
        signal.removeEventListener("abort", onAbort);
        fn();
      };
      p.resolve = (b) => done(() => resolve(b));
      p.reject = (e) => done(() => reject(e));
      if (!this.send(w.request(objectId, index))) {
        this.pending.delete(key);
        p.reject(new Error("peer channel not open"));
      }
    });
  }

  /** Handles one message; a protocol error drops the neighbor. Never throws. */
  private onMessage(data: unknown): void {
    if (this.closedReason) return;
    try {
      const err = this.handle(data);
      if (err) this.drop(err);
    } catch (err) {
      this.drop("handling a frame: " + errorText(err));
    }
  }

  /** Applies one message; returns a protocol error, if any. */
  private handle(data: unknown): string | undefined {
    if (!(data instanceof ArrayBuffer)) return typeof data === "string" ? "text message on the data channel" : "message that is not binary";
    let f: w.Frame;
    try {
      f = w.decode(new Uint8Array(data));
    } catch (err) {
      return "malformed frame: " + errorText(err);
    }
    if (!this.helloSeen && f.type !== w.T.Hello) return `first frame is ${w.typeNames[f.type]}, want hello (${this.offered ? "offerer" : "answerer"}, channel ${this.open ? "open" : "not open yet"})`;
    switch (f.type) {
      case w.T.Hello:
        if (this.helloSeen) return "second hello";
        this.helloSeen = true;
        this.remoteServes = (f.flags & w.FlagServes) !== 0;
        this.remoteMaxRequests = Math.max(1, Math.min(f.maxRequests, 64));
        return;
      case w.T.Have:
        this.noteHave(f.object, f.chunk);
        return;
      case w.T.Bitfield:
        for (let i = 0; i < f.count; i++) if (w.bitfieldHas(f, f.chunk + i)) this.noteHave(f.object, f.chunk + i);
        return;
      case w.T.Request:
        this.onRequest(f.object, f.chunk);
        return;
      case w.T.Cancel: {
        // Still queued or being sent: stop and say so; already sent: ignored.
        const k = this.queue.findIndex((q) => q.objectId === f.object && q.index === f.chunk);
        if (k < 0) return;
        const [job] = this.queue.splice(k, 1);
        this.queuedBytes -= job.bytes;
        job.ctl.abort();
        this.send(w.absent(f.object, f.chunk, w.Reason.Cancelled));
        return;
      }
      case w.T.Absent: {
        const key = f.object + "/" + f.chunk;
        if (this.cancelled.delete(key)) return;
        const p = this.pending.get(key);
        if (p) {
          this.pending.delete(key);
          if (f.reason === w.Reason.NotHeld) this.holds.delete(f.object, f.chunk);
          p.reject(new Error("absent: " + (w.reasonNames[f.reason] ?? f.reason)));
        }
        // An ABSENT for nothing we track is a late answer: harmless.
        return;
      }
      case w.T.Data:
        return this.onData(f);
    }
  }

  private onData(f: w.Frame): string | undefined {
    const key = f.object + "/" + f.chunk;
    const c = this.cancelled.get(key);
    if (c) {
      if (f.offset !== c.got || c.got + f.payload.length > c.size) return `data for cancelled chunk ${key} at offset ${f.offset}, want ${c.got} of ${c.size}`;
      c.got += f.payload.length;
      if (c.got === c.size) this.cancelled.delete(key);
      return;
    }
    const p = this.pending.get(key);
    if (!p) return `data for chunk ${key}, which was not requested`;
    if (f.offset !== p.got || p.got + f.payload.length > p.buf.length) {
      return `data for chunk ${key} at [${f.offset}, ${f.offset + f.payload.length}), want offset ${p.got} of ${p.buf.length} bytes`;
    }
    p.buf.set(f.payload, f.offset);
    p.got += f.payload.length;
    if (p.got === p.buf.length) {
      this.pending.delete(key);
      const ms = Math.max(1, now() - p.started);
      const r = (p.buf.length * 1000) / ms;
      this.rate = this.rate ? 0.7 * this.rate + 0.3 * r : r;
      p.resolve(p.buf);
    }
    return;
  }

  private noteHave(objectId: string, index: number): void {
    if (this.holds.add(objectId, index)) this.hooks.have(this, objectId, index);
  }

  private onRequest(objectId: string, index: number): void {
    // A request for a chunk already queued is ignored (PROTOCOL.md rule 7).
    if (this.queue.some((q) => q.objectId === objectId && q.index === index)) return;
    if (!this.hooks.serving()) return void this.send(w.absent(objectId, index, w.Reason.OverBudget));
    const c = this.store.get(objectId, index);
    if (!c) return void this.send(w.absent(objectId, index, w.Reason.NotHeld));
    if (this.queue.length >= serveQueue) return void this.send(w.absent(objectId, index, w.Reason.Busy));
    // Refuse what the budget cannot send within about 2 s, so the requester asks elsewhere in time.
    const bytesPerSec = this.pacer.budgetBps / 8;
    if (this.queuedBytes > 0 && ((this.queuedBytes + c.data.length) * 1000) / bytesPerSec > maxQueueDelayMs) {
      return void this.send(w.absent(objectId, index, w.Reason.OverBudget));
    }
    this.queue.push({ objectId, index, bytes: c.data.length, ctl: new AbortController() });
    this.queuedBytes += c.data.length;
    if (!this.sending) void this.pump();
  }

  /** Sends queued chunks one DATA frame at a time, paced and flow-controlled. */
  private async pump(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closedReason) {
        const job = this.queue[0];
        const c = this.store.get(job.objectId, job.index);
        if (!c) {
          this.dequeue(job);
          this.send(w.absent(job.objectId, job.index, w.Reason.NotHeld));
          continue;
        }
        for (let off = 0; off < c.data.length && !job.ctl.signal.aborted && !this.closedReason; ) {
          const n = Math.min(w.MaxPayloadBytes, c.data.length - off);
          if (!(await this.pacer.take(n, job.ctl.signal).catch(() => false))) break;
          await this.drain();
          if (job.ctl.signal.aborted) break;
          if (!this.send(w.data(job.objectId, job.index, off, c.data.subarray(off, off + n)))) break;
          this.hooks.uploaded(this, n);
          off += n;
        }
        if (!job.ctl.signal.aborted && this.pacer.budgetBps <= 0) this.send(w.absent(job.objectId, job.index, w.Reason.OverBudget));
        this.dequeue(job);
      }
    } catch (err) {
      this.log.warn(`peer ${this.id}: sending:`, errorText(err));
    } finally {
      this.sending = false;
    }
  }

  private dequeue(job: (typeof this.queue)[number]): void {
    const k = this.queue.indexOf(job);
    if (k < 0) return;
    this.queue.splice(k, 1);
    this.queuedBytes -= job.bytes;
  }

  /** Waits while the channel buffers more than the high-water mark. */
  private drain(): Promise<void> {
    const dc = this.dc;
    if (!dc || dc.bufferedAmount <= highWaterBytes) return Promise.resolve();
    // The network, not the budget, limits us now: what drains while we
    // wait measures the uplink.
    const startMs = now();
    const startBytes = dc.bufferedAmount;
    return new Promise((resolve) => {
      const done = () => {
        dc.removeEventListener("bufferedamountlow", done);
        dc.removeEventListener("close", done);
        if (dc.readyState === "open") this.meter?.sample(dc, startBytes - dc.bufferedAmount, startMs, now());
        resolve();
      };
      dc.addEventListener("bufferedamountlow", done);
      dc.addEventListener("close", done);
    });
  }

  /** Drops a misbehaving neighbor. */
  drop(reason: string): void {
    this.log.warn(`dropping peer ${this.id}: ${reason}`);
    this.close(reason, true);
  }

  close(reason: string, dropped = false): void {
    if (this.closedReason) return;
    this.closedReason = (dropped ? "dropped: " : "") + reason;
    this.open = false;
    clearTimeout(this.openTimer);
    for (const p of this.pending.values()) p.reject(new Error("peer closed: " + reason));
    this.pending.clear();
    for (const q of this.queue) q.ctl.abort();
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.cancelled.clear();
    try {
      this.dc?.close();
      this.pc.close();
    } catch {
      // Already closed.
    }
    this.hooks.closed(this, this.closedReason);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }
}
