/** @internal Helpers without a better home. */
export declare function isAbort(err: unknown): boolean;
/** Resolves after ms, or rejects with an AbortError when signal fires. */
export declare function sleep(ms: number, signal?: AbortSignal): Promise<void>;
/** A signal that fires when any of the given signals fires. */
export declare function anySignal(signals: (AbortSignal | undefined)[]): {
    signal: AbortSignal;
    dispose(): void;
};
/** A signal that fires after ms or when parent fires; dispose clears the timer. */
export declare function deadlineSignal(parent: AbortSignal, ms: number): {
    signal: AbortSignal;
    dispose(): void;
};
export declare function toHex(b: Uint8Array): string;
/** Decodes lowercase or uppercase hex; returns undefined on bad input. */
export declare function fromHex(s: string): Uint8Array | undefined;
/** Milliseconds on a monotonic clock. */
export declare const now: () => number;
/** SHA-256 of data, or undefined where crypto.subtle is missing (insecure context). */
export declare function sha256(data: Uint8Array): Promise<Uint8Array>;
export declare function hasSubtleCrypto(): boolean;
export declare function equalBytes(a: Uint8Array, b: Uint8Array): boolean;
export declare function errorText(err: unknown): string;
