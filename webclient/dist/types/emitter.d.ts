/**
 * A minimal typed event emitter. Listener exceptions are caught and logged:
 * events are raised from inside the delivery path, which must never throw
 * into the player.
 */
export declare class Emitter<M extends {
    [K in keyof M]: unknown;
}> {
    private readonly listeners;
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof M>(event: K, fn: (value: M[K]) => void): () => void;
    /** Removes a listener added with on. */
    off<K extends keyof M>(event: K, fn: (value: M[K]) => void): void;
}
