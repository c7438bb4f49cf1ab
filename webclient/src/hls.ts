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
  /** Present for media fragments: start (s) on the timeline. */
  frag?: { start: number; duration: number; type?: string };
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

/**
 * Builds the hls.js loader class bound to client: media fragments go through
 * the deadline-aware fetcher (peers, then the edge), everything else
 * (playlists, keys) straight to the edge, urgent. The first master playlist
 * loaded names the swarm. Callbacks are never called after abort or
 * destroy, and errors become onError, never exceptions.
 */
export function hlsLoaderClass(client: Client): HlsLoaderClass {
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
      if (context.type === "manifest" && client.edgeHTTP.isEdge(u)) client.join(swarmName(u));
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
