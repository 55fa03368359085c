// The hottest keys of a stream (the items and users that checkouts touch), in
// bounded memory: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi, 2005).
// It keeps at most `capacity` counters; a new key takes over the smallest one and
// starts from its count, so a count may overestimate by at most what it took over
// (`overcount`), and every key seen more than total/capacity times is kept.

export interface HotKey {
  readonly key: string;
  readonly count: number;
  /** How much of `count` may belong to the keys it replaced. */
  readonly overcount: number;
}

/** One tracked key: its slot in the count arrays. */
interface Entry {
  readonly slot: number;
}

export class HotKeys {
  private readonly entries = new Map<string, Entry>();
  // Per slot, in plain arrays: finding the smallest is a tight scan, with no
  // allocation (a stream of new keys, as fresh checkouts make, scans on every touch).
  private readonly keys: string[] = [];
  private readonly counts: number[] = [];
  private readonly overcounts: number[] = [];

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** One more occurrence of `key`: O(1), or O(capacity) when a new key takes over the smallest. */
  touch(key: string, amount = 1): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.counts[entry.slot]! += amount;
      return;
    }
    if (this.keys.length < this.capacity) {
      this.entries.set(key, { slot: this.keys.length });
      this.keys.push(key);
      this.counts.push(amount);
      this.overcounts.push(0);
      return;
    }
    let slot = 0;
    for (let index = 1; index < this.counts.length; index++) if (this.counts[index]! < this.counts[slot]!) slot = index;
    const smallest = this.counts[slot]!;
    this.entries.delete(this.keys[slot]!);
    this.entries.set(key, { slot });
    this.keys[slot] = key;
    this.counts[slot] = smallest + amount;
    this.overcounts[slot] = smallest;
  }

  /** The `limit` keys with the largest counts, largest first. */
  top(limit: number): HotKey[] {
    return this.keys
      .map((key, slot) => ({ key, count: this.counts[slot]!, overcount: this.overcounts[slot]! }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1))
      .slice(0, limit);
  }
}
