/** Names shared with the edge (edge/hooks.go). */
export declare const SessionHeader = "X-PA-Session";
export declare const SessionParam = "pa_session";
export declare const UrgentHeader = "X-PA-Urgent";
export declare const UrgentParam = "pa_urgent";
export declare const UsePeersHeader = "X-PA-Use-Peers";
export declare const ReasonHeader = "X-PA-Reason";
/** The edge answered with an HTTP error status. */
export declare class EdgeHTTPError extends Error {
    readonly status: number;
    readonly url: string;
    constructor(status: number, url: string, detail: string);
}
/**
 * The edge refused a request (429: a non-urgent one over the session's
 * allowance, or an urgent one beyond the viewer's floor) and asks us to use
 * peers or retry later. asked is false when the client did not send the
 * request because the edge's last refusal or policy still applies.
 */
export declare class EdgeRefusedError extends Error {
    readonly url: string;
    readonly retryAfterMs: number;
    readonly usePeers: boolean;
    readonly reason: string;
    readonly asked: boolean;
    constructor(url: string, retryAfterMs: number, usePeers: boolean, reason?: string, asked?: boolean);
}
/** Parses Retry-After (seconds or HTTP date) into milliseconds; fallback when absent or bad. */
export declare function parseRetryAfter(v: string | null, fallbackMs: number, nowMs?: number): number;
/** Parses "bytes a-b/total"; undefined when malformed. */
export declare function parseContentRange(v: string | null): {
    start: number;
    end: number;
    total: number | undefined;
} | undefined;
