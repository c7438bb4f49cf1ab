import { sleep } from "./util";

/** Smallest burst: a few 16 KiB pieces. */
const minBurstBytes = 64 << 10;

/**
 * Pacer is a token bucket that keeps uploads at the budget the edge gives.
 * A rate of 0 stops uploads. Shared by every neighbor of a client.
 *
 * The bucket holds one second of the budget (at least 64 KiB) unless a
 * burst is given: browsers run the timers of hidden tabs at most once a
 * second, and a tab that serves its peers from the background (the first
 * tab of the demo, once the user opens the second) must be able to send a
 * second's worth per wake-up to keep its budget.
 *
 * @internal Single-threaded; not usable as a zero value.
 */
export class Pacer {
  private tokens: number;
  private last: number;
  private bytesPerSec: number;

  constructor(budgetBps: number, private readonly fixedBurstBytes?: number) {
    this.bytesPerSec = Math.max(0, budgetBps / 8);
    this.tokens = this.burstBytes;
    this.last = Date.now();
  }

  get budgetBps(): number {
    return this.bytesPerSec * 8;
  }

  /** Most bytes sent at once after a pause. */
  get burstBytes(): number {
    return this.fixedBurstBytes ?? Math.max(minBurstBytes, this.bytesPerSec);
  }

  setBudget(bps: number): void {
    this.refill();
    this.bytesPerSec = Math.max(0, bps / 8);
    this.tokens = Math.min(this.tokens, this.burstBytes);
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
      const burst = this.burstBytes;
      if (this.tokens >= Math.min(n, burst)) {
        this.tokens -= n;
        return true;
      }
      const need = Math.min(n, burst) - this.tokens;
      await sleep(Math.max(5, (need / this.bytesPerSec) * 1000), signal);
    }
  }
}
