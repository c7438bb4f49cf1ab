/**
 * The signaling client: the WebTorrent WebSocket tracker protocol with the
 * edge's x_ extensions (peerassist/signal, PROTOCOL.md "Signaling").
 * info_hash, peer_id and offer_id are 20-byte values carried as strings of
 * 20 code points in 0..255.
 *
 * @internal
 */
import { Log } from "./log";
import { errorText, sleep } from "./util";

export const IDLen = 20;

/** A random 20-byte binary string; prefix (ASCII) first. */
export function randomID(prefix = ""): string {
  const b = new Uint8Array(IDLen - prefix.length);
  crypto.getRandomValues(b);
  return prefix + String.fromCharCode(...b);
}

/** The swarm's info_hash: the first 20 bytes of SHA-256(name), as a binary string. */
export async function infoHashOf(name: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name)));
  return String.fromCharCode(...d.subarray(0, IDLen));
}

export function isID(v: unknown): v is string {
  if (typeof v !== "string" || v.length !== IDLen) return false;
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) > 255) return false;
  return true;
}

/** Hex of a binary-string ID, for logs and reports. */
export function idHex(id: string): string {
  let s = "";
  for (let i = 0; i < id.length; i++) s += id.charCodeAt(i).toString(16).padStart(2, "0");
  return s;
}

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
  bad_chunks?: { peer_id: string; object: string; chunk: number }[];
}

export interface Caps {
  upload_bps: number;
  upload: boolean;
  device: "desktop" | "mobile" | "tv" | "stb" | "other";
  /** Bitrate of the stream played in the announce's swarm, bits/s; absent: none. */
  bitrate_bps?: number;
}

/** What the tracker sent, validated. */
export type Incoming =
  | { kind: "announce"; infoHash: string; interval: number; complete: number; incomplete: number; session?: string; policy?: Policy }
  | { kind: "offer"; infoHash: string; peerId: string; offerId: string; offer: SessionDescription }
  | { kind: "answer"; infoHash: string; peerId: string; offerId: string; answer: SessionDescription }
  | { kind: "policy"; infoHash: string; policy: Policy }
  | { kind: "failure"; reason: string }
  | { kind: "ignored"; why: string };

const maxSDPChars = 32 << 10;

function sdp(v: unknown, type: "offer" | "answer"): SessionDescription | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.type !== type || typeof o.sdp !== "string" || o.sdp.length > maxSDPChars) return undefined;
  return { type, sdp: o.sdp };
}

const nonNeg = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

function parsePolicy(v: unknown): Policy | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const up = o.upload_budget_bps;
  const edge = o.edge_allowance_bps;
  if (up !== undefined && !nonNeg(up)) return undefined;
  if (edge !== undefined && edge !== null && !(typeof edge === "number" && edge >= -1)) return undefined;
  return {
    uploadBudgetBps: typeof up === "number" ? up : -1,
    edgeAllowanceBps: typeof edge === "number" ? edge : -1,
    usePeers: o.use_peers === true,
    reason: typeof o.reason === "string" ? o.reason.slice(0, 128) : undefined,
  };
}

/** Validates one tracker message. Never throws. */
export function parseIncoming(text: string): Incoming {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    return { kind: "ignored", why: "malformed JSON: " + errorText(err) };
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) return { kind: "ignored", why: "not a JSON object" };
  const o = m as Record<string, unknown>;
  if (typeof o["failure reason"] === "string") return { kind: "failure", reason: o["failure reason"].slice(0, 512) };
  if (o.action !== "announce") return { kind: "ignored", why: `action ${JSON.stringify(o.action)?.slice(0, 40)}` };
  if (!isID(o.info_hash)) return { kind: "ignored", why: "bad info_hash" };
  const infoHash = o.info_hash;
  if (o.offer !== undefined) {
    const offer = sdp(o.offer, "offer");
    if (!offer || !isID(o.peer_id) || !isID(o.offer_id)) return { kind: "ignored", why: "bad offer relay" };
    return { kind: "offer", infoHash, peerId: o.peer_id, offerId: o.offer_id, offer };
  }
  if (o.answer !== undefined) {
    const answer = sdp(o.answer, "answer");
    if (!answer || !isID(o.peer_id) || !isID(o.offer_id)) return { kind: "ignored", why: "bad answer relay" };
    return { kind: "answer", infoHash, peerId: o.peer_id, offerId: o.offer_id, answer };
  }
  const policy = o.x_policy === undefined ? undefined : parsePolicy(o.x_policy);
  if (o.x_policy !== undefined && !policy) return { kind: "ignored", why: "bad x_policy" };
  if (o.interval === undefined && policy) return { kind: "policy", infoHash, policy };
  if (!nonNeg(o.interval)) return { kind: "ignored", why: "bad interval" };
  const session = typeof o.x_session === "string" && o.x_session.length <= 128 ? o.x_session : undefined;
  return {
    kind: "announce",
    infoHash,
    interval: o.interval,
    complete: nonNeg(o.complete) ? o.complete : 0,
    incomplete: nonNeg(o.incomplete) ? o.incomplete : 0,
    session,
    policy,
  };
}

/**
 * Tracker is one signaling socket to the edge, reconnecting with backoff.
 * Not usable as a zero value; single-threaded (the page's event loop).
 */
export class Tracker {
  private ws: WebSocket | undefined;
  private closed = false;
  private backoffMs = 1000;
  onMessage: (m: Incoming) => void = () => {};
  onOpen: () => void = () => {};

  constructor(private readonly url: string, private readonly log: Log) {
    this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === 1;
  }

  private connect(): void {
    if (this.closed) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.log.warn("signaling:", errorText(err));
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoffMs = 1000;
      this.onOpen();
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") {
        this.log.info("signaling: binary message ignored");
        return;
      }
      const m = parseIncoming(e.data);
      if (m.kind === "ignored") this.log.info("signaling: message ignored:", m.why);
      else this.onMessage(m);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.ws = undefined;
      this.retry();
    };
    ws.onerror = () => this.log.debug("signaling: socket error");
  }

  private retry(): void {
    if (this.closed) return;
    const d = this.backoffMs * (0.5 + Math.random());
    this.backoffMs = Math.min(this.backoffMs * 2, 60_000);
    sleep(d).then(() => this.connect());
  }

  /** Sends a message if the socket is open; returns whether it was sent. */
  send(m: Record<string, unknown>): boolean {
    if (!this.open) return false;
    try {
      this.ws!.send(JSON.stringify(m));
      return true;
    } catch (err) {
      this.log.info("signaling send:", errorText(err));
      return false;
    }
  }

  close(): void {
    this.closed = true;
    try {
      this.ws?.close();
    } catch {
      // Already closed.
    }
  }
}
