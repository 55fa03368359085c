// "Idle": the time until a set of processes together use less than a fraction of
// one core over a whole window, sampled from /proc.
import { setTimeout as sleep } from "node:timers/promises";
import { cpuMsSum } from "./procStats.js";

export interface QuietOptions {
  /** Fraction of one core below which the processes count as idle (0.1 = 10 %). */
  readonly coreFractionMax: number;
  /** How long the CPU use must stay below that. */
  readonly windowMs: number;
  /** Give up after this long (from `sinceMs`). */
  readonly waitMsMax: number;
}

const sampleEveryMs = 100;

/**
 * Samples the CPU time of `pids()` every 100 ms and resolves with the time from
 * `sinceMs` (a performance.now()) to the start of the first window of
 * `windowMs` in which they used less than `coreFractionMax` of a core, or null if
 * there was none within `waitMsMax`.
 */
export async function msUntilQuiet(pids: () => readonly number[], sinceMs: number, options: QuietOptions): Promise<number | null> {
  const samples: { atMs: number; cpuMs: number }[] = [{ atMs: performance.now(), cpuMs: cpuMsSum(pids()) }];
  while (performance.now() - sinceMs < options.waitMsMax) {
    await sleep(sampleEveryMs);
    const now = { atMs: performance.now(), cpuMs: cpuMsSum(pids()) };
    samples.push(now);
    // The latest sample at least a window old.
    let start: { atMs: number; cpuMs: number } | undefined;
    while (samples.length > 1 && now.atMs - samples[1]!.atMs >= options.windowMs) samples.shift();
    if (now.atMs - samples[0]!.atMs >= options.windowMs) start = samples[0];
    if (start !== undefined && now.cpuMs - start.cpuMs < options.coreFractionMax * (now.atMs - start.atMs)) {
      return Math.max(0, start.atMs - sinceMs);
    }
  }
  return null;
}
