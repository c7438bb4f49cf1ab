import { now } from "./util";

/** Samples shorter than this or smaller than minSampleBytes say little. */
const minSampleMs = 50;
const minSampleBytes = 64 << 10;
/** Samples kept (the most recent). */
const maxSamples = 16;

interface Sample {
  channel: object;
  startMs: number;
  endMs: number;
  bytesPerSec: number;
}

/**
 * UploadMeter estimates the upload capacity from what the network took
 * while the sender waited. A DataChannel whose send buffer is above its
 * high-water mark drains at the rate the path allows (the uplink, or the
 * receiver), not at the pacer's rate, so a sample exists only when the
 * network, not the budget, limited the upload: the estimate never follows
 * the budget down. Samples of channels that drained at the same time add
 * up (they shared the uplink); the estimate is the best such total among
 * recent samples, and none (0) when no channel was network-limited within
 * maxAgeMs.
 *
 * @internal Not usable as a zero value; single-threaded.
 */
export class UploadMeter {
  private readonly samples: Sample[] = [];

  constructor(
    private readonly maxAgeMs = 60_000,
    private readonly clock: () => number = now,
  ) {}

  /** A channel drained bytes between startMs and endMs (clock time) while the sender waited. */
  sample(channel: object, bytes: number, startMs: number, endMs: number): void {
    const ms = endMs - startMs;
    if (!(ms >= minSampleMs) || !(bytes >= minSampleBytes)) return;
    this.samples.push({ channel, startMs, endMs, bytesPerSec: (bytes * 1000) / ms });
    if (this.samples.length > maxSamples) this.samples.shift();
  }

  /** The estimated upload capacity in bits per second; 0 when unknown. */
  estimateBps(): number {
    const since = this.clock() - this.maxAgeMs;
    const live = this.samples.filter((s) => s.endMs >= since);
    let best = 0;
    for (const s of live) {
      // What the channels draining alongside s achieved, one sample per channel.
      const byChannel = new Map<object, number>();
      for (const o of live) {
        if (o.startMs < s.endMs && s.startMs < o.endMs) byChannel.set(o.channel, Math.max(byChannel.get(o.channel) ?? 0, o.bytesPerSec));
      }
      let total = 0;
      for (const v of byChannel.values()) total += v;
      best = Math.max(best, total);
    }
    return Math.round(best * 8);
  }
}
