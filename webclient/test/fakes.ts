// In-memory stand-ins for what Node lacks: RTCPeerConnection with
// DataChannels that connect when an offer and its answer meet, a WebSocket
// to a scriptable tracker, and navigator.connection. Enough of each for the
// P2P engine; every message crosses a task boundary as in a browser.

type Handler = ((ev: any) => void) | null;

class Events {
  private readonly listeners = new Map<string, Set<(ev: any) => void>>();
  addEventListener(type: string, fn: (ev: any) => void): void {
    let s = this.listeners.get(type);
    if (!s) this.listeners.set(type, (s = new Set()));
    s.add(fn);
  }
  removeEventListener(type: string, fn: (ev: any) => void): void {
    this.listeners.get(type)?.delete(fn);
  }
  protected fire(type: string, ev: any = {}): void {
    const on = (this as any)["on" + type] as Handler;
    on?.call(this, ev);
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(ev);
  }
}

const later = (fn: () => void, ms = 0) => setTimeout(fn, ms);

export class FakeDataChannel extends Events {
  readyState: "connecting" | "open" | "closing" | "closed" = "connecting";
  binaryType = "blob";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  onopen: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  onmessage: Handler = null;
  remote: FakeDataChannel | undefined;
  /** Every message this side sent, as sent. */
  readonly sent: (ArrayBuffer | string)[] = [];
  constructor(readonly label: string) {
    super();
  }
  send(data: Uint8Array | ArrayBuffer | string): void {
    if (this.readyState !== "open") throw new DOMException("channel not open", "InvalidStateError");
    const copy = typeof data === "string" ? data : data instanceof ArrayBuffer ? data.slice(0) : data.slice().buffer;
    this.sent.push(copy);
    const r = this.remote;
    later(() => r?.deliver(copy));
  }
  /** Delivers a message as if the remote had sent it. */
  deliver(data: ArrayBuffer | string): void {
    if (this.readyState === "open") this.fire("message", { data });
  }
  open(): void {
    if (this.readyState !== "connecting") return;
    this.readyState = "open";
    this.fire("open");
  }
  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.fire("close");
    const r = this.remote;
    later(() => r?.close());
  }
}

/** SDPs by their text, to find the other end when a description is applied. */
const bySDP = new Map<string, FakePeerConnection>();
let nextPC = 0;

export class FakePeerConnection extends Events {
  /** Every connection made, in order. */
  static all: FakePeerConnection[] = [];
  /** false: connections never form (as between hidden addresses that do not resolve). */
  static connectable = true;
  static reset(): void {
    FakePeerConnection.all = [];
    FakePeerConnection.connectable = true;
    bySDP.clear();
  }

  readonly id = ++nextPC;
  connectionState: RTCPeerConnectionState = "new";
  iceGatheringState: RTCIceGatheringState = "new";
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  onconnectionstatechange: Handler = null;
  ondatachannel: Handler = null;
  readonly channels: FakeDataChannel[] = [];
  other: FakePeerConnection | undefined;

  constructor(_config?: unknown) {
    super();
    FakePeerConnection.all.push(this);
  }
  createDataChannel(label: string): FakeDataChannel {
    const dc = new FakeDataChannel(label);
    this.channels.push(dc);
    return dc;
  }
  async createOffer() {
    return { type: "offer", sdp: `v=0 fake offer ${this.id}` };
  }
  async createAnswer() {
    return { type: "answer", sdp: `v=0 fake answer ${this.id}` };
  }
  async setLocalDescription(d: { type: string; sdp: string }) {
    this.localDescription = d;
    this.iceGatheringState = "complete";
    bySDP.set(d.sdp, this);
  }
  async setRemoteDescription(d: { type: string; sdp: string }) {
    if (this.connectionState === "closed") throw new DOMException("closed", "InvalidStateError");
    const other = bySDP.get(d.sdp);
    if (!other || !d.sdp.startsWith(`v=0 fake ${d.type}`)) throw new DOMException(`cannot parse ${d.type}`, "OperationError");
    this.remoteDescription = d;
    if (d.type === "answer") later(() => FakePeerConnection.connect(this, other));
  }
  private static connect(offerer: FakePeerConnection, answerer: FakePeerConnection): void {
    if (!FakePeerConnection.connectable || offerer.connectionState === "closed" || answerer.connectionState === "closed") return;
    offerer.other = answerer;
    answerer.other = offerer;
    for (const pc of [offerer, answerer]) pc.setState("connected");
    for (const dc of offerer.channels) {
      const r = new FakeDataChannel(dc.label);
      dc.remote = r;
      r.remote = dc;
      answerer.channels.push(r);
      answerer.ondatachannel?.({ channel: r });
      later(() => {
        r.open();
        dc.open();
      });
    }
  }
  private setState(s: RTCPeerConnectionState): void {
    if (this.connectionState === s || this.connectionState === "closed") return;
    this.connectionState = s;
    this.fire("connectionstatechange");
  }
  /** Whether this connection is up and its channels are open. */
  get live(): boolean {
    return this.connectionState === "connected" && this.channels.some((c) => c.readyState === "open");
  }
  close(): void {
    if (this.connectionState === "closed") return;
    this.connectionState = "closed";
    for (const dc of this.channels) dc.close();
    const o = this.other;
    later(() => o?.setState("failed"));
  }
}

/** An announce or answer a client sent, as the tracker received it. */
export interface Received {
  ws: FakeWebSocket;
  msg: any;
}

/**
 * FakeTracker answers announces as the edge's coordinator does and holds
 * relayed offers and answers until the test delivers them, so a test
 * decides the order in which they cross.
 */
export class FakeTracker {
  readonly sockets: FakeWebSocket[] = [];
  readonly received: Received[] = [];
  /** Offers received, not yet relayed: from peer_id, with the announce's info_hash. */
  readonly offers: { from: string; infoHash: string; offerId: string; offer: any }[] = [];
  /** Answers received, not yet relayed. */
  readonly answers: { from: string; to: string; infoHash: string; offerId: string; answer: any }[] = [];
  /** Relay answers as soon as they arrive. */
  autoAnswers = true;
  private readonly byPeer = new Map<string, FakeWebSocket>();

  receive(ws: FakeWebSocket, text: string): void {
    const msg = JSON.parse(text);
    this.received.push({ ws, msg });
    if (msg.action !== "announce") return;
    this.byPeer.set(msg.peer_id, ws);
    if (msg.answer) {
      this.answers.push({ from: msg.peer_id, to: msg.to_peer_id, infoHash: msg.info_hash, offerId: msg.offer_id, answer: msg.answer });
      if (this.autoAnswers) this.relayAnswers();
      return;
    }
    for (const o of msg.offers ?? []) this.offers.push({ from: msg.peer_id, infoHash: msg.info_hash, offerId: o.offer_id, offer: o.offer });
    const n = this.byPeer.size;
    ws.push({ action: "announce", interval: 120, info_hash: msg.info_hash, complete: 0, incomplete: n, x_session: "sess-" + ws.id });
  }

  /** Relays the first held offer of from to to. */
  relayOffer(from: string, to: string): void {
    const k = this.offers.findIndex((o) => o.from === from);
    if (k < 0) throw new Error("no offer held from that peer");
    const [o] = this.offers.splice(k, 1);
    this.byPeer.get(to)!.push({ action: "announce", info_hash: o.infoHash, peer_id: o.from, offer_id: o.offerId, offer: o.offer });
  }

  relayAnswers(): void {
    for (const a of this.answers.splice(0)) {
      this.byPeer.get(a.to)?.push({ action: "announce", info_hash: a.infoHash, peer_id: a.from, offer_id: a.offerId, answer: a.answer });
    }
  }

  /** Sends a message (raw text, binary, or an object as JSON) to one peer's socket. */
  byPeerPush(peerId: string, m: unknown): void {
    this.byPeer.get(peerId)?.push(m);
  }

  /** Sends raw text (or binary) to every socket. */
  broadcast(data: string | ArrayBuffer): void {
    for (const ws of this.sockets) ws.push(data);
  }

  peerIds(): string[] {
    return [...this.byPeer.keys()];
  }
}

let nextWS = 0;

export class FakeWebSocket {
  static tracker = new FakeTracker();
  readonly id = ++nextWS;
  readyState = 0;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  constructor(readonly url: string) {
    FakeWebSocket.tracker.sockets.push(this);
    later(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(text: string): void {
    if (this.readyState !== 1) throw new DOMException("not open", "InvalidStateError");
    const t = FakeWebSocket.tracker;
    later(() => t.receive(this, text));
  }
  /** A message from the tracker: an object is sent as JSON. */
  push(m: unknown): void {
    const data = typeof m === "string" || m instanceof ArrayBuffer ? m : JSON.stringify(m);
    later(() => {
      if (this.readyState === 1) this.onmessage?.({ data });
    });
  }
  close(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    later(() => this.onclose?.({}));
  }
}

/** A navigator.connection whose fields a test sets, firing "change". */
export class FakeConnection extends Events {
  saveData = false;
  type = "wifi";
  set(fields: { saveData?: boolean; type?: string }): void {
    Object.assign(this, fields);
    this.fire("change");
  }
}

/** Installs the fakes as globals. */
export function installFakes(): { connection: FakeConnection } {
  const g = globalThis as any;
  g.RTCPeerConnection = FakePeerConnection;
  g.WebSocket = FakeWebSocket;
  const connection = new FakeConnection();
  Object.defineProperty(globalThis, "navigator", { value: { connection }, configurable: true, writable: true });
  return { connection };
}

export const tick = (ms = 0) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls cond every 5 ms until it holds; fails after ms. */
export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await tick(5);
  }
}
