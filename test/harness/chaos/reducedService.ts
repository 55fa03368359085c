// "Seconds of reduced service" of a chaos fault, at the replicas that stayed up:
// the time during the fault in which they served, together, fewer than half the
// 2xx answers they served before it.
//   - The run counts 2xx answers of those replicas in buckets (100 ms) aligned on the
//     fault's start: whole buckets only, before the fault (the baseline window) and
//     during it.
//   - Baseline: the median bucket before the fault (a slow first bucket or a GC
//     pause does not move it).
//   - A bucket during the fault is reduced if it holds fewer than half the baseline.
//     Reduced seconds = reduced buckets × bucket length: the total, not only the
//     longest stretch (which is reported too).
// Pure: no I/O, no clock.

export interface ReducedService {
  readonly bucketMs: number;
  /** Median 2xx per bucket before the fault; null when there was no whole bucket before it. */
  readonly baselinePerBucket: number | null;
  /** Buckets during the fault below half the baseline. */
  readonly reducedBuckets: number;
  /** reducedBuckets × bucketMs, in seconds; null without a baseline (or a baseline of 0). */
  readonly reducedSeconds: number | null;
  /** The longest run of consecutive reduced buckets, in seconds. */
  readonly longestReducedSeconds: number;
  /** Start of the first reduced bucket, ms after the fault's start; null if none. */
  readonly firstReducedAtMs: number | null;
}

/** The definition (see the top of this file), on 2xx counts per bucket before and during the fault. */
export function reducedServiceOf(before: readonly number[], during: readonly number[], bucketMs: number): ReducedService {
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs must be > 0, got ${bucketMs}`);
  const baselinePerBucket = before.length === 0 ? null : median(before);
  if (baselinePerBucket === null || baselinePerBucket === 0) {
    return { bucketMs, baselinePerBucket, reducedBuckets: 0, reducedSeconds: null, longestReducedSeconds: 0, firstReducedAtMs: null };
  }
  let reducedBuckets = 0;
  let run = 0;
  let longestRun = 0;
  let firstReduced: number | null = null;
  for (const [index, count] of during.entries()) {
    if (count < baselinePerBucket / 2) {
      reducedBuckets += 1;
      run += 1;
      longestRun = Math.max(longestRun, run);
      firstReduced ??= index;
    } else {
      run = 0;
    }
  }
  return {
    bucketMs,
    baselinePerBucket,
    reducedBuckets,
    reducedSeconds: (reducedBuckets * bucketMs) / 1000,
    longestReducedSeconds: (longestRun * bucketMs) / 1000,
    firstReducedAtMs: firstReduced === null ? null : firstReduced * bucketMs,
  };
}

export interface BucketWindows {
  /** Whole buckets from `baselineFromMs` (rounded up to a bucket boundary) to `faultStartMs`. */
  readonly before: number[];
  /** Whole buckets from `faultStartMs` to `faultEndMs`; a last partial bucket is dropped. */
  readonly during: number[];
}

/**
 * Counts `timesMs` (the end times of 2xx answers) in buckets aligned on
 * `faultStartMs`. Times outside both windows are ignored.
 */
export function bucketsAround(timesMs: readonly number[], baselineFromMs: number, faultStartMs: number, faultEndMs: number, bucketMs: number): BucketWindows {
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs must be > 0, got ${bucketMs}`);
  const beforeCount = Math.max(0, Math.floor((faultStartMs - baselineFromMs) / bucketMs));
  const duringCount = Math.max(0, Math.floor((faultEndMs - faultStartMs) / bucketMs));
  const before = new Array<number>(beforeCount).fill(0);
  const during = new Array<number>(duringCount).fill(0);
  for (const timeMs of timesMs) {
    const bucket = Math.floor((timeMs - faultStartMs) / bucketMs);
    if (bucket >= 0 && bucket < duringCount) during[bucket]! += 1;
    else if (bucket < 0 && bucket >= -beforeCount) before[beforeCount + bucket]! += 1;
  }
  return { before, during };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
