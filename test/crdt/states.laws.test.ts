// Merge laws of ItemState, UserState and OrderState within one generation, and of
// mergeGenerational across generations (newer wins whole, one generation merges,
// never a mix). Commutative, associative and idempotent merges are what make
// replicas converge whatever order or duplication states arrive with (G3).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BoundedCounter } from "../../crdt/boundedCounter.js";
import { type GenerationalState, compareGenerations, mergeGenerational, sameGeneration } from "../../crdt/generation.js";
import { ItemState } from "../../crdt/itemState.js";
import { OrderState } from "../../crdt/orderState.js";
import { UserState } from "../../crdt/userState.js";
import { type Triple, itemArb, itemTripleArb, orderArb, orderTripleArb, relatedOrderTripleArb, userArb, userTripleArb } from "./arbitraries.js";

const numRuns = 1000;

interface Mergeable<T> extends GenerationalState<T> {
  clone(): T;
  equals(other: T): boolean;
}

/** mergeSameGeneration as a pure function. */
function mergedSame<T extends Mergeable<T>>(a: T, b: T): T {
  const result = a.clone();
  result.mergeSameGeneration(b);
  return result;
}

/** mergeGenerational as a pure function (it may hand back its `incoming` argument, so clone both). */
function mergedGenerational<T extends Mergeable<T>>(a: T, b: T): T {
  return mergeGenerational(a.clone(), b.clone()).kept;
}

/** Commutative, associative, idempotent (with absorption of a duplicate), and the argument untouched. */
function checkLaws<T extends Mergeable<T>>(arb: fc.Arbitrary<Triple<T>>, merge: (a: T, b: T) => T): void {
  fc.assert(
    fc.property(arb, ([a, b, c]) => {
      const bBefore = b.clone();
      const ab = merge(a, b);
      expect(b.equals(bBefore)).toBe(true);
      expect(ab.equals(merge(b, a))).toBe(true);
      expect(merge(ab, c).equals(merge(a, merge(b, c)))).toBe(true);
      expect(merge(a, a).equals(a)).toBe(true);
      expect(merge(ab, b).equals(ab)).toBe(true);
      expect(merge(ab, a).equals(ab)).toBe(true);
    }),
    { numRuns },
  );
}

describe("merge laws within one generation (G3)", () => {
  it("G3: ItemState merge is commutative, associative, idempotent", () => {
    checkLaws(itemTripleArb, mergedSame);
  });

  it("G3: UserState merge is commutative, associative, idempotent", () => {
    checkLaws(userTripleArb, mergedSame);
  });

  it("G3: OrderState merge is commutative, associative, idempotent", () => {
    checkLaws(orderTripleArb, mergedSame);
  });

  it("G4: views of one order whose token is passed around merge to a valid token, paid at most once", () => {
    fc.assert(
      fc.property(relatedOrderTripleArb, ([a, b, c]) => {
        const all = mergedSame(mergedSame(a, b), c);
        expect(all.token.invalidity()).toBeNull();
        expect(all.token.value()).toBeLessThanOrEqual(1);
        let payments = 0;
        for (const amount of all.token.decrements.values()) payments += amount;
        expect(payments).toBeLessThanOrEqual(1);
        expect(all.paid).toBe(payments === 1);
      }),
      { numRuns },
    );
  });
});

describe("mergeGenerational laws across generations (G3)", () => {
  const triple = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<Triple<T>> => fc.tuple(arb, arb, arb);

  it("G3: is commutative, associative, idempotent for items of mixed generations", () => {
    checkLaws(triple(itemArb), mergedGenerational);
  });

  it("G3: is commutative, associative, idempotent for users of mixed generations", () => {
    checkLaws(triple(userArb), mergedGenerational);
  });

  it("G3: is commutative, associative, idempotent for orders of mixed generations", () => {
    checkLaws(triple(orderArb), mergedGenerational);
  });

  /** Newer wins whole, one generation merges, and nothing of the older generation leaks in. */
  function checkNewerWins<T extends Mergeable<T>>(arb: fc.Arbitrary<T>): void {
    fc.assert(
      fc.property(arb, arb, (local, incoming) => {
        const kept = mergedGenerational(local, incoming);
        const order = compareGenerations(local.generation, incoming.generation);
        if (order < 0) expect(kept.equals(incoming)).toBe(true);
        else if (order > 0) expect(kept.equals(local)).toBe(true);
        else expect(kept.equals(mergedSame(local, incoming))).toBe(true);
        const newer = order < 0 ? incoming : local;
        expect(sameGeneration(kept.generation, newer.generation)).toBe(true);
      }),
      { numRuns },
    );
  }

  it("G3: items: a newer generation replaces the state whole; the same generation merges", () => {
    checkNewerWins(itemArb);
  });

  it("G3: users: a newer generation replaces the state whole; the same generation merges", () => {
    checkNewerWins(userArb);
  });

  it("G3: orders: a newer generation replaces the state whole; the same generation merges", () => {
    checkNewerWins(orderArb);
  });

  it("keeps the incoming state when there is no local one, and hands back the local object otherwise", () => {
    const incoming = new UserState({ counter: 1, actor: "a" });
    expect(mergeGenerational(undefined, incoming)).toEqual({ kept: incoming, changed: true });
    const local = new UserState({ counter: 2, actor: "a" });
    expect(mergeGenerational(local, incoming).kept).toBe(local);
    expect(mergeGenerational(local, incoming).changed).toBe(false);
    const sameLocal = new UserState({ counter: 1, actor: "a" });
    expect(mergeGenerational(sameLocal, incoming)).toEqual({ kept: sameLocal, changed: false });
    expect(mergeGenerational(incoming, local)).toEqual({ kept: local, changed: true });
  });

  it("orders generations by counter, then by actor", () => {
    expect(compareGenerations({ counter: 1, actor: "z" }, { counter: 2, actor: "a" })).toBe(-1);
    expect(compareGenerations({ counter: 2, actor: "a" }, { counter: 2, actor: "b" })).toBe(-1);
    expect(compareGenerations({ counter: 2, actor: "b" }, { counter: 2, actor: "a" })).toBe(1);
    expect(compareGenerations({ counter: 2, actor: "b" }, { counter: 2, actor: "b" })).toBe(0);
    expect(compareGenerations({ counter: 0, actor: "" }, { counter: 0, actor: "a" })).toBe(-1);
  });
});

describe("equals of the states is not vacuous (so the law tests can fail)", () => {
  const counter = (amount: number): BoundedCounter => {
    const result = new BoundedCounter();
    result.increment("a", amount);
    return result;
  };
  const generation = { counter: 1, actor: "a" };

  it("ItemState.equals sees generation, price and stock", () => {
    const item = new ItemState(generation, 5, counter(3));
    expect(item.equals(new ItemState({ counter: 1, actor: "a" }, 5, counter(3)))).toBe(true);
    expect(item.equals(new ItemState({ counter: 2, actor: "a" }, 5, counter(3)))).toBe(false);
    expect(item.equals(new ItemState({ counter: 1, actor: "b" }, 5, counter(3)))).toBe(false);
    expect(item.equals(new ItemState(generation, 6, counter(3)))).toBe(false);
    expect(item.equals(new ItemState(generation, 5, counter(4)))).toBe(false);
  });

  it("UserState.equals sees generation and credit", () => {
    const user = new UserState(generation, counter(3));
    expect(user.equals(new UserState({ counter: 1, actor: "a" }, counter(3)))).toBe(true);
    expect(user.equals(new UserState({ counter: 0, actor: "a" }, counter(3)))).toBe(false);
    expect(user.equals(new UserState(generation, counter(2)))).toBe(false);
  });

  it("OrderState.equals sees generation, user, lines, total, version and token", () => {
    const base = (): OrderState => new OrderState(generation, "u1", [["i1", 2]], 10, 1, counter(1));
    expect(base().equals(base())).toBe(true);
    const variants: ((order: OrderState) => OrderState)[] = [
      (o) => new OrderState({ counter: 3, actor: "a" }, o.userId, o.lines, o.totalCost, o.version, o.token),
      (o) => new OrderState(o.generation, "u2", o.lines, o.totalCost, o.version, o.token),
      (o) => new OrderState(o.generation, o.userId, [["i2", 2]], o.totalCost, o.version, o.token),
      (o) => new OrderState(o.generation, o.userId, [["i1", 3]], o.totalCost, o.version, o.token),
      (o) =>
        new OrderState(
          o.generation,
          o.userId,
          [
            ["i1", 2],
            ["i1", 2],
          ],
          o.totalCost,
          o.version,
          o.token,
        ),
      (o) => new OrderState(o.generation, o.userId, o.lines, 11, o.version, o.token),
      (o) => new OrderState(o.generation, o.userId, o.lines, o.totalCost, 2, o.token),
      (o) => new OrderState(o.generation, o.userId, o.lines, o.totalCost, o.version, counter(0)),
    ];
    for (const change of variants) {
      expect(change(base()).equals(base())).toBe(false);
      expect(base().equals(change(base()))).toBe(false);
    }
  });

  it("OrderState merge keeps the content of the higher version and copies its lines", () => {
    const older = OrderState.create(generation, "u1", "a");
    const newer = older.clone();
    newer.lines.push(["i1", 1]);
    newer.totalCost = 4;
    newer.version = 1;
    const kept = mergedSame(older, newer);
    expect(kept.equals(newer)).toBe(true);
    kept.lines.push(["i2", 1]);
    expect(newer.lines).toEqual([["i1", 1]]);
    expect(mergedSame(newer, older).equals(newer)).toBe(true);
  });
});
