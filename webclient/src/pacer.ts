import { sleep } from "./util";

/**
 * Pacer is a token bucket that keeps uploads at the budget the edge gives.
 * A rate of 0 stops uploads. Shared by every neighbor of a client.
 *
 * @internal Single-threaded; not usable as a zero value.
 */
export class Pacer {
  private tokens: number;
  private last: number;
  private bytesPerSec: number;

  constructor(budgetBps: number, private readonly burstBytes = 64 << 10) {
    this.bytesPerSec = Math.max(0, budgetBps / 8);
    this.tokens = burstBytes;
    this.last = Date.now();
  }

  get budgetBps(): number {
    return this.bytesPerSec * 8;
  }

  setBudget(bps: number): void {
    this.refill();
    this.bytesPerSec = Math.max(0, bps / 8);
  }

  private refill(): void {
    const t = Date.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((t - this.last) / 1000) * this.bytesPerSec);
    this.last = t;
  }

  /** Waits until n bytes may be sent; rejects when signal fires. Returns false when the budget is 0. */
  async take(n: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      if (this.bytesPerSec <= 0) return false;
      this.refill();
      if (this.tokens >= Math.min(n, this.burstBytes)) {
        this.tokens -= n;
        return true;
      }
      const need = Math.min(n, this.burstBytes) - this.tokens;
      await sleep(Math.max(5, (need / this.bytesPerSec) * 1000), signal);
    }
  }
}
