import { Log } from "./log";

/** Names shared with the edge (edge/hooks.go). */
export const SessionHeader = "X-PA-Session";
export const SessionParam = "pa_session";
export const UrgentHeader = "X-PA-Urgent";
export const UrgentParam = "pa_urgent";
export const UsePeersHeader = "X-PA-Use-Peers";

/** The edge answered with an HTTP error status. */
export class EdgeHTTPError extends Error {
  constructor(readonly status: number, readonly url: string, detail: string) {
    super(`edge: GET ${url}: HTTP ${status}${detail ? ": " + detail : ""}`);
    this.name = "EdgeHTTPError";
  }
}

/** The edge refused a non-urgent request (429) and asks us to use peers or retry later. */
export class EdgeRefusedError extends Error {
  constructor(readonly url: string, readonly retryAfterMs: number, readonly usePeers: boolean) {
    super(`edge: GET ${url}: refused (429), retry after ${retryAfterMs} ms${usePeers ? ", use peers" : ""}`);
    this.name = "EdgeRefusedError";
  }
}

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
 * @internal Safe to share; it holds no per-request state.
 */
export class EdgeHTTP {
  readonly origin: string;
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

  /** GETs url (resolved, any origin) and returns the body. Rejects with EdgeRefusedError on a 429, EdgeHTTPError on other errors. */
  async get(url: URL, o: EdgeGet): Promise<EdgeBody> {
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
    if (res.status === 429) {
      const usePeers = res.headers.get(UsePeersHeader) === "1";
      const retry = parseRetryAfter(res.headers.get("Retry-After"), 1000);
      await res.body?.cancel().catch(() => {});
      throw new EdgeRefusedError(url.href, retry, usePeers);
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
}

function baseURL(): string {
  return typeof location !== "undefined" ? location.href : "http://localhost/";
}
