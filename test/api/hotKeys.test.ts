import { describe, expect, it } from "vitest";
import { HotKeys } from "../../api/hotKeys.js";
import { Random } from "../harness/random.js";

describe("HotKeys (Space-Saving)", () => {
  it("keeps every key seen more than total/capacity times, each count at most its overcount above the truth", () => {
    const random = new Random(7);
    const hot = new HotKeys(16);
    const truth = new Map<string, number>();
    let total = 0;
    for (let index = 0; index < 20_000; index++) {
      // A few heavy keys among a long tail of keys seen once or twice.
      const key = random.chance(0.3) ? `hot${random.int(0, 4)}` : `cold${random.int(0, 50_000)}`;
      hot.touch(key);
      truth.set(key, (truth.get(key) ?? 0) + 1);
      total += 1;
    }
    const top = hot.top(16);
    const kept = new Set(top.map((entry) => entry.key));
    for (const [key, count] of truth) if (count > total / 16) expect(kept.has(key), key).toBe(true);
    for (const entry of top) {
      const real = truth.get(entry.key)!;
      expect(entry.count).toBeGreaterThanOrEqual(real);
      expect(entry.count - entry.overcount).toBeLessThanOrEqual(real);
    }
    expect(
      top
        .slice(0, 5)
        .map((entry) => entry.key)
        .sort(),
    ).toEqual(["hot0", "hot1", "hot2", "hot3", "hot4"]);
    expect(top.map((entry) => entry.count)).toEqual([...top.map((entry) => entry.count)].sort((a, b) => b - a));
  });
});
