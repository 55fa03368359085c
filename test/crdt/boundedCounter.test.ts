// Unit tests of the bounded counter's operations: the arithmetic of value and
// rights, the refusals that keep rights non-negative (G1), and equals/clone, which
// the property tests rely on.
import { describe, expect, it } from "vitest";
import { BoundedCounter } from "../../crdt/boundedCounter.js";

function counterOf(build: (counter: BoundedCounter) => void): BoundedCounter {
  const counter = new BoundedCounter();
  build(counter);
  return counter;
}

describe("BoundedCounter operations", () => {
  it("value and rights follow the increments, transfers and decrements", () => {
    const counter = new BoundedCounter();
    expect(counter.increment("a", 10)).toBeNull();
    expect(counter.increment("b", 4)).toBeNull();
    expect(counter.transfer("a", "c", 3)).toBeNull();
    expect(counter.transfer("c", "b", 1)).toBeNull();
    expect(counter.decrement("b", 5)).toBeNull();
    expect(counter.value()).toBe(9);
    expect(counter.rights("a")).toBe(7);
    expect(counter.rights("b")).toBe(0);
    expect(counter.rights("c")).toBe(2);
    expect(counter.rights("nobody")).toBe(0);
    expect([...counter.rightsByActor()].sort()).toEqual([
      ["a", 7],
      ["b", 0],
      ["c", 2],
    ]);
  });

  it("G1: a decrement beyond the actor's own rights is refused and changes nothing, even when the value would cover it", () => {
    const counter = counterOf((c) => {
      c.increment("a", 5);
      c.increment("b", 1);
    });
    const before = counter.clone();
    expect(counter.decrement("b", 2)).toBe("insufficient-rights");
    expect(counter.equals(before)).toBe(true);
    expect(counter.decrement("b", 1)).toBeNull();
    expect(counter.rights("b")).toBe(0);
  });

  it("G1: a transfer beyond the sender's rights is refused and changes nothing", () => {
    const counter = counterOf((c) => c.increment("a", 2));
    const before = counter.clone();
    expect(counter.transfer("a", "b", 3)).toBe("insufficient-rights");
    expect(counter.transfer("b", "a", 1)).toBe("insufficient-rights");
    expect(counter.equals(before)).toBe(true);
    expect(counter.transfers.size).toBe(0);
  });

  it("refuses a self-transfer", () => {
    const counter = counterOf((c) => c.increment("a", 2));
    expect(counter.transfer("a", "a", 1)).toBe("self-transfer");
    expect(counter.rights("a")).toBe(2);
    expect(counter.transfers.size).toBe(0);
  });

  it("zero amounts succeed without adding entries", () => {
    const counter = new BoundedCounter();
    expect(counter.increment("a", 0)).toBeNull();
    expect(counter.decrement("a", 0)).toBeNull();
    expect(counter.transfer("a", "b", 0)).toBeNull();
    expect(counter.equals(new BoundedCounter())).toBe(true);
    expect(counter.actors().size).toBe(0);
  });

  it("refuses an increment past the largest safe integer and changes nothing", () => {
    const counter = counterOf((c) => c.increment("a", Number.MAX_SAFE_INTEGER - 1));
    const before = counter.clone();
    expect(counter.increment("b", 2)).toBe("overflow");
    expect(counter.increment("a", 2)).toBe("overflow");
    expect(counter.equals(before)).toBe(true);
    expect(counter.increment("b", 1)).toBeNull();
    expect(counter.value()).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("throws on amounts that are negative, fractional or unsafe (callers validate first)", () => {
    const counter = counterOf((c) => c.increment("a", 5));
    for (const amount of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => counter.increment("a", amount)).toThrow(/invariant broken/);
      expect(() => counter.decrement("a", amount)).toThrow(/invariant broken/);
      expect(() => counter.transfer("a", "b", amount)).toThrow(/invariant broken/);
    }
    expect(counter.value()).toBe(5);
  });

  it("invalidity names forged states and accepts correct ones", () => {
    expect(counterOf((c) => c.increment("a", 1)).invalidity()).toBeNull();
    const overspent = counterOf((c) => c.increment("a", 1));
    overspent.decrements.set("a", 2);
    expect(overspent.invalidity()).toMatch(/rights of a are negative/);
    const overgiven = counterOf((c) => c.increment("a", 1));
    overgiven.transfers.set("a", new Map([["b", 2]]));
    expect(overgiven.invalidity()).toMatch(/rights of a are negative/);
    const selfTransfer = counterOf((c) => c.increment("a", 1));
    selfTransfer.transfers.set("a", new Map([["a", 1]]));
    expect(selfTransfer.invalidity()).toMatch(/itself/);
    const fractional = new BoundedCounter();
    fractional.increments.set("a", 1.5);
    expect(fractional.invalidity()).toMatch(/increment of a/);
    // Value zero, yet b decremented what it never held.
    const hidden = counterOf((c) => c.increment("a", 1));
    hidden.decrements.set("b", 1);
    expect(hidden.value()).toBe(0);
    expect(hidden.invalidity()).toMatch(/rights of b are negative/);
  });
});

describe("BoundedCounter equals and clone", () => {
  const base = (): BoundedCounter =>
    counterOf((c) => {
      c.increment("a", 5);
      c.transfer("a", "b", 2);
      c.decrement("b", 1);
    });

  it("equals tells apart states that differ in a single entry (so the law tests can fail)", () => {
    expect(base().equals(base())).toBe(true);
    const variants: ((c: BoundedCounter) => void)[] = [
      (c) => c.increments.set("a", 6),
      (c) => c.increments.set("z", 0),
      (c) => c.decrements.set("b", 2),
      (c) => c.decrements.set("a", 0),
      (c) => c.transfers.get("a")!.set("b", 3),
      (c) => c.transfers.get("a")!.set("c", 1),
      (c) => c.transfers.set("b", new Map([["a", 1]])),
    ];
    for (const change of variants) {
      const changed = base();
      change(changed);
      expect(changed.equals(base())).toBe(false);
      expect(base().equals(changed)).toBe(false);
    }
  });

  it("a clone shares no maps with its original", () => {
    const original = base();
    const copy = original.clone();
    expect(copy.equals(original)).toBe(true);
    copy.increment("a", 1);
    copy.transfer("a", "b", 1);
    copy.decrement("b", 1);
    expect(original.equals(base())).toBe(true);
  });

  it("merge copies rows instead of sharing them", () => {
    const source = base();
    const target = new BoundedCounter();
    target.merge(source);
    target.transfer("a", "b", 1);
    expect(source.equals(base())).toBe(true);
  });
});
