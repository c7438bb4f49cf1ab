/** Log levels, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** A console-like logger. The client never lets a logger's exception escape. */
export interface Logger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** @internal */
export class Log {
  private readonly min: number;
  constructor(private readonly sink: Logger | undefined, level: LogLevel = "warn") {
    this.min = order[level] ?? order.warn;
  }
  private emit(level: Exclude<LogLevel, "silent">, args: unknown[]): void {
    if (order[level] < this.min) return;
    try {
      const s = this.sink ?? (typeof console !== "undefined" ? console : undefined);
      s?.[level]("[peerassist]", ...args);
    } catch {
      // A broken logger must not break delivery.
    }
  }
  debug(...a: unknown[]): void { this.emit("debug", a); }
  info(...a: unknown[]): void { this.emit("info", a); }
  warn(...a: unknown[]): void { this.emit("warn", a); }
  error(...a: unknown[]): void { this.emit("error", a); }
}
