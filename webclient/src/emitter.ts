/**
 * A minimal typed event emitter. Listener exceptions are caught and logged:
 * events are raised from inside the delivery path, which must never throw
 * into the player.
 */
export class Emitter<M extends { [K in keyof M]: unknown }> {
  private readonly listeners = new Map<keyof M, Set<(v: never) => void>>();
  /** @internal */
  protected onListenerError: (err: unknown) => void = () => {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof M>(event: K, fn: (value: M[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as (v: never) => void);
    return () => this.off(event, fn);
  }

  /** Removes a listener added with on. */
  off<K extends keyof M>(event: K, fn: (value: M[K]) => void): void {
    this.listeners.get(event)?.delete(fn as (v: never) => void);
  }

  /** @internal */
  protected emit<K extends keyof M>(event: K, value: M[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (v: M[K]) => void)(value);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
