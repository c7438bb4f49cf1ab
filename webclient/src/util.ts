/** @internal Helpers without a better home. */

/** An error raised when an AbortSignal fires. */
export function abortError(): Error {
  try {
    return new DOMException("aborted", "AbortError");
  } catch {
    const e = new Error("aborted");
    e.name = "AbortError";
    return e;
  }
}

export function isAbort(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { name?: string }).name === "AbortError";
}

/** Resolves after ms, or rejects with an AbortError when signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const t = setTimeout(done, Math.max(0, ms));
    function done() {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(abortError());
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A signal that fires when any of the given signals fires. */
export function anySignal(signals: (AbortSignal | undefined)[]): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const live = signals.filter((s): s is AbortSignal => !!s);
  const onAbort = () => ctl.abort();
  for (const s of live) {
    if (s.aborted) {
      ctl.abort();
      break;
    }
    s.addEventListener("abort", onAbort, { once: true });
  }
  return {
    signal: ctl.signal,
    dispose: () => live.forEach((s) => s.removeEventListener("abort", onAbort)),
  };
}

/** A signal that fires after ms or when parent fires; dispose clears the timer. */
export function deadlineSignal(parent: AbortSignal, ms: number): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), Math.max(1, Math.ceil(ms)));
  const any = anySignal([parent, ctl.signal]);
  return {
    signal: any.signal,
    dispose() {
      clearTimeout(t);
      any.dispose();
    },
  };
}

const hexChars = "0123456789abcdef";

export function toHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += hexChars[b[i] >> 4] + hexChars[b[i] & 15];
  return s;
}

/** Decodes lowercase or uppercase hex; returns undefined on bad input. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

/** Milliseconds on a monotonic clock. */
export const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** SHA-256 of data, or undefined where crypto.subtle is missing (insecure context). */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return new Uint8Array(d);
}

export function hasSubtleCrypto(): boolean {
  return typeof crypto !== "undefined" && !!crypto.subtle && typeof crypto.subtle.digest === "function";
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
