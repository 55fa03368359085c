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

interface Entry {
  count: number;
  overcount: number;
}

export class HotKeys {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** One more occurrence of `key`: O(1), or O(capacity) when a new key takes over the smallest. */
  touch(key: string, amount = 1): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      entry.count += amount;
      return;
    }
    if (this.entries.size < this.capacity) {
      this.entries.set(key, { count: amount, overcount: 0 });
      return;
    }
    let smallestKey: string | undefined;
    let smallest: Entry | undefined;
    for (const [candidateKey, candidate] of this.entries) {
      if (smallest === undefined || candidate.count < smallest.count) {
        smallestKey = candidateKey;
        smallest = candidate;
      }
    }
    this.entries.delete(smallestKey!);
    this.entries.set(key, { count: smallest!.count + amount, overcount: smallest!.count });
  }

  /** The `limit` keys with the largest counts, largest first. */
  top(limit: number): HotKey[] {
    return [...this.entries]
      .map(([key, entry]) => ({ key, count: entry.count, overcount: entry.overcount }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1))
      .slice(0, limit);
  }
}
