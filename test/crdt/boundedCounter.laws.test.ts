// Merge laws of the bounded counter. Commutative + associative + idempotent is what
// makes a state-based merge converge whatever order, duplication or delay states
// arrive in (G3); "a merge never lowers an entry" keeps acknowledged writes (G2);
// merging valid replica views stays valid (G1).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BoundedCounter } from "../../crdt/boundedCounter.js";
import { counterTripleArb, relatedCounterTripleArb } from "./arbitraries.js";

const numRuns = 1000;

/** merge as a pure function: neither argument changes. */
function merged(a: BoundedCounter, b: BoundedCounter): BoundedCounter {
  const result = a.clone();
  result.merge(b);
  return result;
}

/** Every entry of `lower` is present in `upper` and not larger there. */
function entriesAtMost(lower: BoundedCounter, upper: BoundedCounter): boolean {
  const leq = (a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number> | undefined): boolean =>
    [...a].every(([key, amount]) => b !== undefined && b.has(key) && amount <= b.get(key)!);
  return (
    leq(lower.increments, upper.increments) &&
    leq(lower.decrements, upper.decrements) &&
    [...lower.transfers].every(([from, row]) => leq(row, upper.transfers.get(from)))
  );
}

describe("BoundedCounter merge laws (G3)", () => {
  it("G3: merge is commutative", () => {
    fc.assert(
      fc.property(counterTripleArb, ([a, b]) => {
        expect(merged(a, b).equals(merged(b, a))).toBe(true);
      }),
      { numRuns },
    );
  });

  it("G3: merge is associative", () => {
    fc.assert(
      fc.property(counterTripleArb, ([a, b, c]) => {
        expect(merged(merged(a, b), c).equals(merged(a, merged(b, c)))).toBe(true);
      }),
      { numRuns },
    );
  });

  it("G3: merge is idempotent, and a duplicate delivery changes nothing", () => {
    fc.assert(
      fc.property(counterTripleArb, ([a, b]) => {
        expect(merged(a, a).equals(a)).toBe(true);
        const once = merged(a, b);
        expect(merged(once, b).equals(once)).toBe(true);
        expect(merged(once, a).equals(once)).toBe(true);
      }),
      { numRuns },
    );
  });

  it("G2: merge never lowers an entry and never changes its argument", () => {
    fc.assert(
      fc.property(counterTripleArb, ([a, b]) => {
        const bBefore = b.clone();
        const result = merged(a, b);
        expect(entriesAtMost(a, result)).toBe(true);
        expect(entriesAtMost(b, result)).toBe(true);
        expect(b.equals(bBefore)).toBe(true);
      }),
      { numRuns },
    );
  });

  it("G1: merging views of replicas of one counter gives a valid state (no negative value or rights)", () => {
    fc.assert(
      fc.property(relatedCounterTripleArb, ([a, b, c]) => {
        for (const view of [a, b, c]) expect(view.invalidity()).toBeNull();
        const all = merged(merged(a, b), c);
        expect(all.invalidity()).toBeNull();
        expect(all.value()).toBeGreaterThanOrEqual(0);
        for (const rights of all.rightsByActor().values()) expect(rights).toBeGreaterThanOrEqual(0);
      }),
      { numRuns },
    );
  });
});
