import type { Client } from "./client";
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
    frag?: {
        start: number;
        duration: number;
        type?: string;
        level?: number;
        baseurl?: string;
    };
    /** Level playlists: the level's index and (hls.js 1.7 passes it; older versions may not) the level, whose bitrate is its BANDWIDTH. */
    level?: number | null;
    levelOrTrack?: {
        bitrate?: number;
    } | null;
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
 * The variants of an HLS master playlist: each EXT-X-STREAM-INF's BANDWIDTH
 * (else AVERAGE-BANDWIDTH) and the URI on the next line, resolved against
 * base. Lines it cannot use are skipped; never throws.
 */
export declare function parseVariants(text: string, base: string): {
    url: string;
    bitrateBps: number;
}[];
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
