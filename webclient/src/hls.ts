import type { Client } from "./client";
import { EdgeHTTPError } from "./edge";
import { errorText, isAbort, now } from "./util";

/** The parts of hls.js's LoaderContext this loader reads. */
export interface HlsLoaderContext {
  url: string;
  responseType: string;
  type?: string;
  rangeStart?: number;
  rangeEnd?: number;
  /**
   * Present for media fragments: start (s) on the timeline; the playlist
   * type ("main", "audio", "subtitle"), the level (index into hls.levels)
   * and the media playlist's URL (baseurl) it belongs to.
   */
  frag?: { start: number; duration: number; type?: string; level?: number; baseurl?: string };
  /** Level playlists: the level's index and (hls.js 1.7 passes it; older versions may not) the level, whose bitrate is its BANDWIDTH. */
  level?: number | null;
  levelOrTrack?: { bitrate?: number } | null;
}

/** hls.js LoaderStats. */
export interface HlsLoaderStats {
  aborted: boolean;
  loaded: number;
  retry: number;
  total: number;
  chunkCount: number;
  bwEstimate: number;
  loading: { start: number; first: number; end: number };
  parsing: { start: number; end: number };
  buffering: { start: number; first: number; end: number };
}

/** hls.js LoaderConfiguration (the fields used). */
export interface HlsLoaderConfiguration {
  loadPolicy?: { maxTimeToFirstByteMs?: number; maxLoadTimeMs?: number };
  timeout?: number;
}

/** hls.js LoaderCallbacks. */
export interface HlsLoaderCallbacks<C> {
  onSuccess(response: { url: string; data: string | ArrayBuffer; code: number }, stats: HlsLoaderStats, context: C, networkDetails: unknown): void;
  onError(error: { code: number; text: string }, context: C, networkDetails: unknown, stats: HlsLoaderStats): void;
  onTimeout(stats: HlsLoaderStats, context: C, networkDetails: unknown): void;
  onAbort?(stats: HlsLoaderStats, context: C, networkDetails: unknown): void;
}

/** The hls.js Loader interface. */
export interface HlsLoader {
  context: HlsLoaderContext | null;
  stats: HlsLoaderStats;
  load(context: HlsLoaderContext, config: HlsLoaderConfiguration, callbacks: HlsLoaderCallbacks<HlsLoaderContext>): void;
  abort(): void;
  destroy(): void;
}

/** A loader class for hls.js's `loader`, `fLoader` or `pLoader` option. */
export type HlsLoaderClass = new (config?: unknown) => HlsLoader;

function newStats(): HlsLoaderStats {
  return {
    aborted: false,
    loaded: 0,
    retry: 0,
    total: 0,
    chunkCount: 0,
    bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

const isPlaylist = (c: HlsLoaderContext) => c.type === "manifest" || c.type === "level" || c.type === "audioTrack" || c.type === "subtitleTrack";

/** Most variants of a master playlist remembered (each a URL and a number). */
const maxVariants = 256;

/**
 * The bitrates of a stream's levels (variants), learnt from what the loader
 * sees: the master playlist's EXT-X-STREAM-INF BANDWIDTH by variant URL,
 * and the level hls.js passes with each level playlist load by its index.
 * Single-threaded.
 */
class LevelBitrates {
  private readonly byURL = new Map<string, number>();
  private readonly byLevel = new Map<number, number>();

  /** Starts over with a new master playlist (text at url); a media playlist has no variants. */
  master(url: string, text: string): void {
    this.byURL.clear();
    this.byLevel.clear();
    for (const v of parseVariants(text, url).slice(0, maxVariants)) this.byURL.set(v.url, v.bitrateBps);
  }

  /** A level playlist load: its bitrate (0 when unknown), remembered for its fragments. */
  level(c: HlsLoaderContext): number {
    const b = validBitrate(c.levelOrTrack?.bitrate) || this.byURL.get(withoutHash(c.url)) || 0;
    if (b > 0 && typeof c.level === "number" && Number.isInteger(c.level) && c.level >= 0 && this.byLevel.size < maxVariants) this.byLevel.set(c.level, b);
    return b;
  }

  /** A main fragment (init or media segment): the bitrate of its level (0 when unknown). */
  fragment(f: NonNullable<HlsLoaderContext["frag"]>): number {
    if (f.type !== undefined && f.type !== "main") return 0; // alternate audio or subtitles: not the variant
    return (typeof f.baseurl === "string" && this.byURL.get(withoutHash(f.baseurl))) || (typeof f.level === "number" && this.byLevel.get(f.level)) || 0;
  }
}

/** An HLS attribute list (NAME=value,NAME="quoted, value"), by name; quotes kept. */
function attributes(list: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)(?:,|$)/y;
  for (let m = re.exec(list); m && m[0] !== ""; m = re.exec(list)) out.set(m[1], m[2]);
  return out;
}

const levelsOf = new WeakMap<Client, LevelBitrates>();

function validBitrate(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 1 ? v : 0;
}

function withoutHash(url: string): string {
  const i = url.indexOf("#");
  return i < 0 ? url : url.slice(0, i);
}

/**
 * The variants of an HLS master playlist: each EXT-X-STREAM-INF's BANDWIDTH
 * (else AVERAGE-BANDWIDTH) and the URI on the next line, resolved against
 * base. Lines it cannot use are skipped; never throws.
 */
export function parseVariants(text: string, base: string): { url: string; bitrateBps: number }[] {
  const out: { url: string; bitrateBps: number }[] = [];
  let pending = -1;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("#EXT-X-STREAM-INF:")) {
      const attrs = attributes(line.slice("#EXT-X-STREAM-INF:".length));
      const bw = /^\d{1,15}$/.exec(attrs.get("BANDWIDTH") ?? "") ?? /^\d{1,15}$/.exec(attrs.get("AVERAGE-BANDWIDTH") ?? "");
      pending = bw ? Number(bw[0]) : 0;
      continue;
    }
    if (line === "" || line.startsWith("#") || pending < 0) continue;
    try {
      if (pending > 0) out.push({ url: withoutHash(new URL(line, base).href), bitrateBps: pending });
    } catch {
      // Not a URL: skip the variant.
    }
    pending = -1;
  }
  return out;
}

/**
 * Builds the hls.js loader class bound to client: media fragments go through
 * the deadline-aware fetcher (peers, then the edge), everything else
 * (playlists, keys) straight to the edge, urgent. The first master playlist
 * loaded names the swarm. Callbacks are never called after abort or
 * destroy, and errors become onError, never exceptions.
 */
export function hlsLoaderClass(client: Client): HlsLoaderClass {
  // One per client, whichever loader class (loader, pLoader, fLoader) loads what.
  let levels = levelsOf.get(client);
  if (!levels) levelsOf.set(client, (levels = new LevelBitrates()));
  return class PeerAssistHlsLoader implements HlsLoader {
    context: HlsLoaderContext | null = null;
    stats: HlsLoaderStats = newStats();
    private ctl: AbortController | undefined;
    private timer: ReturnType<typeof setTimeout> | undefined;
    private callbacks: HlsLoaderCallbacks<HlsLoaderContext> | undefined;

    constructor(_config?: unknown) {}

    load(context: HlsLoaderContext, config: HlsLoaderConfiguration, callbacks: HlsLoaderCallbacks<HlsLoaderContext>): void {
      this.context = context;
      this.callbacks = callbacks;
      this.stats = newStats();
      this.stats.loading.start = now();
      const ctl = (this.ctl = new AbortController());
      const timeoutMs = config?.loadPolicy?.maxLoadTimeMs ?? config?.timeout ?? 0;
      if (timeoutMs > 0) {
        this.timer = setTimeout(() => {
          if (this.ctl !== ctl) return;
          this.finish();
          ctl.abort();
          this.call(() => callbacks.onTimeout(this.stats, context, null));
        }, timeoutMs);
      }
      const u = client.edgeHTTP.resolve(context.url);
      const frag = context.frag && !isPlaylist(context) ? context.frag : undefined;
      if (context.type === "manifest" && client.edgeHTTP.isEdge(u) && !client.opts.swarm) client.join(swarmName(u));
      // The level hls.js loads is the stream's bitrate in this swarm
      // (x_caps.bitrate_bps): the edge keeps the viewer's floor at it.
      // Declared when it changes; the client paces the announces.
      const bitrate = context.type === "level" ? levels.level(context) : frag ? levels.fragment(frag) : 0;
      if (bitrate > 0) client.declareBitrate(bitrate);
      // As hls.js's own loaders do, a falsy rangeEnd means the whole object.
      const ranged = !!context.rangeEnd;
      const work = client.load(u, {
        deadlineAt: frag ? client.deadlineFor(frag.start) : now(),
        urgent: !frag,
        start: ranged ? (context.rangeStart ?? 0) : undefined,
        end: ranged ? context.rangeEnd : undefined,
        signal: ctl.signal,
      });
      work.then(
        (r) => {
          if (this.ctl !== ctl) return;
          this.finish();
          const t = now();
          this.stats.loading.first = Math.max(this.stats.loading.start, t - 1);
          this.stats.loading.end = t;
          this.stats.loaded = this.stats.total = r.data.length;
          this.stats.chunkCount = Math.max(1, r.chunks);
          const data = context.responseType === "arraybuffer" ? toArrayBuffer(r.data) : new TextDecoder().decode(r.data);
          if (context.type === "manifest" && typeof data === "string") levels.master(u.href, data);
          this.call(() => callbacks.onSuccess({ url: context.url, data, code: 200 }, this.stats, context, null));
        },
        (err) => {
          if (this.ctl !== ctl) return;
          this.finish();
          if (isAbort(err)) return;
          const code = err instanceof EdgeHTTPError ? err.status : 0;
          client.log.info("hls load failed:", context.url, errorText(err));
          this.call(() => callbacks.onError({ code, text: errorText(err) }, context, null, this.stats));
        },
      );
    }

    private finish(): void {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.ctl = undefined;
    }

    private call(fn: () => void): void {
      try {
        fn();
      } catch (err) {
        client.log.warn("hls.js callback threw:", errorText(err));
      }
    }

    abort(): void {
      const ctl = this.ctl;
      if (!ctl) return;
      this.finish();
      this.stats.aborted = true;
      ctl.abort();
      const cb = this.callbacks;
      const ctx = this.context;
      if (cb?.onAbort && ctx) this.call(() => cb.onAbort!(this.stats, ctx, null));
    }

    destroy(): void {
      const ctl = this.ctl;
      this.finish();
      ctl?.abort();
      this.callbacks = undefined;
      this.context = null;
    }
  };
}

/** The swarm of a stream: its master playlist URL without query. */
export function swarmName(u: URL): string {
  return u.origin + u.pathname;
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return b.slice().buffer as ArrayBuffer;
}
