import type { Client } from "./client";
/** The parts of hls.js's LoaderContext this loader reads. */
export interface HlsLoaderContext {
    url: string;
    responseType: string;
    type?: string;
    rangeStart?: number;
    rangeEnd?: number;
    /** Present for media fragments: start (s) on the timeline. */
    frag?: {
        start: number;
        duration: number;
        type?: string;
    };
}
/** hls.js LoaderStats. */
export interface HlsLoaderStats {
    aborted: boolean;
    loaded: number;
    retry: number;
    total: number;
    chunkCount: number;
    bwEstimate: number;
    loading: {
        start: number;
        first: number;
        end: number;
    };
    parsing: {
        start: number;
        end: number;
    };
    buffering: {
        start: number;
        first: number;
        end: number;
    };
}
/** hls.js LoaderConfiguration (the fields used). */
export interface HlsLoaderConfiguration {
    loadPolicy?: {
        maxTimeToFirstByteMs?: number;
        maxLoadTimeMs?: number;
    };
    timeout?: number;
}
/** hls.js LoaderCallbacks. */
export interface HlsLoaderCallbacks<C> {
    onSuccess(response: {
        url: string;
        data: string | ArrayBuffer;
        code: number;
    }, stats: HlsLoaderStats, context: C, networkDetails: unknown): void;
    onError(error: {
        code: number;
        text: string;
    }, context: C, networkDetails: unknown, stats: HlsLoaderStats): void;
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
/**
 * Builds the hls.js loader class bound to client: media fragments go through
 * the deadline-aware fetcher (peers, then the edge), everything else
 * (playlists, keys) straight to the edge, urgent. The first master playlist
 * loaded names the swarm. Callbacks are never called after abort or
 * destroy, and errors become onError, never exceptions.
 */
export declare function hlsLoaderClass(client: Client): HlsLoaderClass;
/** The swarm of a stream: its master playlist URL without query. */
export declare function swarmName(u: URL): string;
