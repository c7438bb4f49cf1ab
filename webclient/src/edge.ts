import { Log } from "./log";
import { now, sleep } from "./util";

/** Names shared with the edge (edge/hooks.go). */
export const SessionHeader = "X-PA-Session";
export const SessionParam = "pa_session";
export const UrgentHeader = "X-PA-Urgent";
export const UrgentParam = "pa_urgent";
export const UsePeersHeader = "X-PA-Use-Peers";
export const ReasonHeader = "X-PA-Reason";

/** The edge answered with an HTTP error status. */
export class EdgeHTTPError extends Error {
  constructor(readonly status: number, readonly url: string, detail: string) {
    super(`edge: GET ${url}: HTTP ${status}${detail ? ": " + detail : ""}`);
    this.name = "EdgeHTTPError";
  }
}

/**
 * The edge refused a request (429: a non-urgent one over the session's
 * allowance, or an urgent one beyond the viewer's floor) and asks us to use
 * peers or retry later. asked is false when the client did not send the
 * request because the edge's last refusal or policy still applies.
 */
export class EdgeRefusedError extends Error {
  constructor(
    readonly url: string,
    readonly retryAfterMs: number,
    readonly usePeers: boolean,
    readonly reason = "",
    readonly asked = true,
  ) {
    super(`edge: GET ${url}: refused (429${asked ? "" : ", not asked again yet"}), retry after ${retryAfterMs} ms${usePeers ? ", use peers" : ""}${reason ? ": " + reason : ""}`);
    this.name = "EdgeRefusedError";
  }
}

/** The longest an urgent request waits on a refusal: the edge's floor admits again within seconds. */
const maxUrgentWaitMs = 10_000;
/** How long a non-urgent request is not sent while the edge's policy allows urgent requests only. */
const noAllowanceRetryMs = 1000;

/** @internal */
export interface EdgeGet {
  /** Needed now: never refused by the edge. */
  urgent: boolean;
  /** Byte range [start, end) of the object; whole object when absent. */
  start?: number;
  end?: number;
  signal?: AbortSignal;
}

/** @internal */
export interface EdgeBody {
  status: number;
  data: Uint8Array;
  contentType: string | null;
  /** Total object size where the response says it (Content-Range or Content-Length of a 200). */
  totalBytes: number | undefined;
}

/** Parses Retry-After (seconds or HTTP date) into milliseconds; fallback when absent or bad. */
export function parseRetryAfter(v: string | null, fallbackMs: number, nowMs = Date.now()): number {
  if (!v) return fallbackMs;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Math.min(Number(s) * 1000, 3600_000);
  const t = Date.parse(s);
  if (Number.isNaN(t)) return fallbackMs;
  return Math.max(0, Math.min(t - nowMs, 3600_000));
}

/** Parses "bytes a-b/total"; undefined when malformed. */
export function parseContentRange(v: string | null): { start: number; end: number; total: number | undefined } | undefined {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]) + 1;
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (end <= start || (total !== undefined && end > total)) return undefined;
  return { start, end, total };
}

/**
 * EdgeHTTP fetches objects from the edge with the peer-assist session and
 * the urgency marker. Same-origin requests carry them as headers; requests
 * to an edge on another origin carry them as query parameters, which needs
 * no CORS preflight (a custom header would cost a preflight per URL).
 *
 * The edge limits a session, not a request: a refusal's Retry-After holds
 * back every request it applies to (a refused non-urgent request holds the
 * non-urgent ones; a refused urgent one, the viewer's floor spent, holds
 * both), as does a policy that allows urgent requests only (x_policy
 * edge_allowance_bps 0). Held-back non-urgent requests fail at once with
 * EdgeRefusedError (asked false) and urgent ones wait; asking sooner only
 * earns more 429s.
 *
 * @internal Shared by one Client's loads; single-threaded.
 */
export class EdgeHTTP {
  readonly origin: string;
  /** Until when (now() clock) the edge's last refusals hold back non-urgent and urgent requests. */
  private nonUrgentHeldUntil = 0;
  private urgentHeldUntil = 0;
  private heldReason = "";
  /** The edge's policy allows urgent requests only (edge_allowance_bps 0). */
  private urgentOnly = false;
  constructor(
    edgeURL: string,
    private readonly session: () => string | undefined,
    private readonly log: Log,
    private readonly fetchFn: typeof fetch = (...a) => fetch(...a),
  ) {
    this.origin = new URL(edgeURL, baseURL()).origin;
  }

  /** Resolves url against the page. */
  resolve(url: string): URL {
    return new URL(url, baseURL());
  }

  /** Whether url is served by the edge (and so has a manifest and takes a session). */
  isEdge(u: URL): boolean {
    return u.origin === this.origin;
  }

  /** The object's name for the manifest endpoint: path and query, without our parameters. */
  objectPath(u: URL): string {
    const c = new URL(u.href);
    c.searchParams.delete(SessionParam);
    c.searchParams.delete(UrgentParam);
    c.hash = "";
    return c.pathname + c.search;
  }

  /**
   * Follows the edge's policy (x_policy): an allowance of 0 bits/s means
   * urgent requests only until the edge says otherwise.
   */
  setEdgeAllowance(allowanceBps: number): void {
    this.urgentOnly = allowanceBps === 0;
  }

  /**
   * GETs url (resolved, any origin) and returns the body. Rejects with
   * EdgeRefusedError on a 429 or while a refusal holds non-urgent requests
   * back (see the class comment), EdgeHTTPError on other errors.
   */
  async get(url: URL, o: EdgeGet): Promise<EdgeBody> {
    if (this.isEdge(url)) {
      const t = now();
      if (o.urgent && this.urgentHeldUntil > t) {
        await sleep(Math.min(this.urgentHeldUntil - t, maxUrgentWaitMs), o.signal);
      } else if (!o.urgent && this.nonUrgentHeldUntil > t) {
        throw new EdgeRefusedError(url.href, Math.ceil(this.nonUrgentHeldUntil - t), true, this.heldReason, false);
      } else if (!o.urgent && this.urgentOnly) {
        throw new EdgeRefusedError(url.href, noAllowanceRetryMs, true, "the edge's policy allows urgent requests only", false);
      }
    }
    const u = new URL(url.href);
    const headers: Record<string, string> = {};
    const sameOrigin = typeof location !== "undefined" && u.origin === location.origin;
    if (this.isEdge(u)) {
      const sid = this.session();
      if (sameOrigin) {
        if (sid) headers[SessionHeader] = sid;
        if (o.urgent) headers[UrgentHeader] = "1";
      } else {
        if (sid) u.searchParams.set(SessionParam, sid);
        if (o.urgent) u.searchParams.set(UrgentParam, "1");
      }
    }
    const ranged = o.start !== undefined && o.end !== undefined;
    if (ranged) headers["Range"] = `bytes=${o.start}-${o.end! - 1}`;
    const res = await this.fetchFn(u.href, { headers, signal: o.signal, credentials: "omit", cache: "default" });
    // Another server's 429 is its own business: an HTTP error like others.
    if (res.status === 429 && this.isEdge(url)) {
      const usePeers = res.headers.get(UsePeersHeader) === "1";
      const reason = (res.headers.get(ReasonHeader) ?? "").slice(0, 128);
      let retry = parseRetryAfter(res.headers.get("Retry-After"), 1000);
      if (o.urgent) retry = Math.min(retry, maxUrgentWaitMs);
      await res.body?.cancel().catch(() => {});
      this.hold(o.urgent, retry, reason);
      throw new EdgeRefusedError(url.href, retry, usePeers, reason);
    }
    if (res.status !== 200 && res.status !== 206) {
      let detail = "";
      try {
        detail = (await res.text()).slice(0, 200).trim();
      } catch {
        // The status says enough.
      }
      throw new EdgeHTTPError(res.status, url.href, detail);
    }
    let data = new Uint8Array(await res.arrayBuffer());
    let totalBytes: number | undefined;
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get("Content-Range"));
      if (!cr || !ranged || cr.start !== o.start || cr.end !== Math.min(o.end!, cr.total ?? o.end!) || data.length !== cr.end - cr.start) {
        throw new EdgeHTTPError(206, url.href, `unexpected Content-Range ${res.headers.get("Content-Range")} for bytes ${o.start}-${o.end! - 1} (${data.length} bytes)`);
      }
      totalBytes = cr.total;
    } else {
      totalBytes = data.length;
      if (ranged) {
        // The server ignored Range: keep the part we asked for.
        this.log.debug("edge ignored Range for", url.href);
        data = data.subarray(o.start!, Math.min(o.end!, data.length));
      }
    }
    return { status: res.status, data, contentType: res.headers.get("Content-Type"), totalBytes };
  }

  private hold(urgent: boolean, retryMs: number, reason: string): void {
    const until = now() + retryMs;
    this.nonUrgentHeldUntil = Math.max(this.nonUrgentHeldUntil, until);
    if (urgent) this.urgentHeldUntil = Math.max(this.urgentHeldUntil, until);
    this.heldReason = reason;
  }
}

function baseURL(): string {
  return typeof location !== "undefined" ? location.href : "http://localhost/";
}
