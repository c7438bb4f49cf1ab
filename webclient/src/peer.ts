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
import { Pacer } from "./pacer";
import { ChunkStore } from "./store";
import { abortError, errorText, now } from "./util";
import * as w from "./wire";

/** Most requests we queue from one neighbor. */
const serveQueue = 16;
/** Send no more while this much is buffered in the channel. */
const highWaterBytes = 1 << 20;
const lowWaterBytes = 256 << 10;

interface Pending {
  buf: Uint8Array;
  got: number;
  resolve(b: Uint8Array): void;
  reject(e: Error): void;
  started: number;
}

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

export class Peer implements PeerSource {
  /** Hex peer_id. */
  readonly id: string;
  private dc: RTCDataChannel | undefined;
  private readonly holds = new Map<string, Set<number>>();
  private readonly pending = new Map<string, Pending>();
  private readonly queue: { objectId: string; index: number; ctl: AbortController }[] = [];
  private sending = false;
  private closedReason: string | undefined;
  private remoteServes = false;
  private remoteMaxRequests = 4;
  private rate = 0;
  open = false;

  constructor(
    readonly peerId: string,
    idHex: string,
    readonly pc: RTCPeerConnection,
    private readonly store: ChunkStore,
    private readonly pacer: Pacer,
    private readonly hooks: PeerHooks,
    private readonly log: Log,
  ) {
    this.id = idHex;
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === "failed" || s === "closed") this.close("connection " + s);
    };
  }

  /** Attaches the DataChannel (ours as offerer, or the one the offerer opened). */
  attach(dc: RTCDataChannel): void {
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
    return this.remoteServes && !!this.holds.get(objectId)?.has(index);
  }

  get inflight(): number {
    return this.pending.size;
  }

  get rateBytesPerSec(): number {
    return this.rate;
  }

  /** Whether it can take another request now. */
  get available(): boolean {
    return this.open && this.remoteServes && this.pending.size < this.remoteMaxRequests;
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
      if (!this.open || this.pending.has(key)) return reject(new Error("peer unavailable"));
      const p: Pending = { buf: new Uint8Array(bytes), got: 0, resolve, reject, started: now() };
      this.pending.set(key, p);
      const onAbort = () => {
        if (this.pending.get(key) !== p) return;
        this.pending.delete(key);
        this.send(w.cancel(objectId, index));
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

  private onMessage(data: unknown): void {
    if (this.closedReason) return;
    if (!(data instanceof ArrayBuffer)) return this.drop("text message on the data channel");
    let f: w.Frame;
    try {
      f = w.decode(new Uint8Array(data));
    } catch (err) {
      return this.drop("malformed frame: " + errorText(err));
    }
    switch (f.type) {
      case w.T.Hello:
        this.remoteServes = (f.flags & w.FlagServes) !== 0;
        this.remoteMaxRequests = Math.max(1, Math.min(f.maxRequests, 64));
        return;
      case w.T.Have:
        return this.noteHave(f.object, f.chunk);
      case w.T.Bitfield:
        for (let i = 0; i < f.count; i++) if (w.bitfieldHas(f, f.chunk + i)) this.noteHave(f.object, f.chunk + i);
        return;
      case w.T.Request:
        return this.onRequest(f.object, f.chunk);
      case w.T.Cancel: {
        const k = this.queue.findIndex((q) => q.objectId === f.object && q.index === f.chunk);
        if (k >= 0) {
          this.queue[k].ctl.abort();
          this.queue.splice(k, 1);
        }
        this.send(w.absent(f.object, f.chunk, w.Reason.Cancelled));
        return;
      }
      case w.T.Absent: {
        const key = f.object + "/" + f.chunk;
        const p = this.pending.get(key);
        if (p) {
          this.pending.delete(key);
          this.holds.get(f.object)?.delete(f.chunk);
          p.reject(new Error("absent: " + (w.reasonNames[f.reason] ?? f.reason)));
        }
        return;
      }
      case w.T.Data: {
        const key = f.object + "/" + f.chunk;
        const p = this.pending.get(key);
        if (!p) return; // Late data of a cancelled request.
        if (f.offset + f.payload.length > p.buf.length) {
          this.pending.delete(key);
          p.reject(new Error("data past the chunk's end"));
          return this.drop(`data past the end of chunk ${key}`);
        }
        p.buf.set(f.payload, f.offset);
        p.got += f.payload.length;
        if (p.got >= p.buf.length) {
          this.pending.delete(key);
          const ms = Math.max(1, now() - p.started);
          const r = (p.buf.length * 1000) / ms;
          this.rate = this.rate ? 0.7 * this.rate + 0.3 * r : r;
          p.resolve(p.buf);
        }
        return;
      }
    }
  }

  private noteHave(objectId: string, index: number): void {
    let s = this.holds.get(objectId);
    if (!s) {
      if (this.holds.size >= 4096) return; // Bound memory per neighbor.
      this.holds.set(objectId, (s = new Set()));
    }
    s.add(index);
    this.hooks.have(this, objectId, index);
  }

  private onRequest(objectId: string, index: number): void {
    if (!this.hooks.serving()) return void this.send(w.absent(objectId, index, w.Reason.OverBudget));
    if (!this.store.has(objectId, index)) return void this.send(w.absent(objectId, index, w.Reason.NotHeld));
    if (this.queue.length >= serveQueue) return void this.send(w.absent(objectId, index, w.Reason.Busy));
    this.queue.push({ objectId, index, ctl: new AbortController() });
    if (!this.sending) this.pump();
  }

  /** Sends queued chunks one DATA frame at a time, paced and flow-controlled. */
  private async pump(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closedReason) {
        const job = this.queue[0];
        const c = this.store.get(job.objectId, job.index);
        if (!c) {
          this.queue.shift();
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
        if (this.queue[0] === job) this.queue.shift();
      }
    } finally {
      this.sending = false;
    }
  }

  /** Waits while the channel buffers more than the high-water mark. */
  private drain(): Promise<void> {
    const dc = this.dc;
    if (!dc || dc.bufferedAmount <= highWaterBytes) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        dc.removeEventListener("bufferedamountlow", done);
        dc.removeEventListener("close", done);
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
    for (const p of this.pending.values()) p.reject(new Error("peer closed: " + reason));
    this.pending.clear();
    for (const q of this.queue) q.ctl.abort();
    this.queue.length = 0;
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
