// Random schedules over 3-5 in-memory replicas of one bounded counter. Each replica
// is its own actor with its own copy. Local increments, decrements and transfers go
// through the counter's own methods, which refuse exactly when production would; a
// network delivers stale, duplicated, reordered states or drops them (every past
// snapshot of a replica stays in a log and any of them may be delivered, any number
// of times, or never).
//   After every step: G1 (no value, no actor's rights below zero, in any view) and
//   no replica ever loses its own writes.
//   After a final full exchange: G3 (all replicas equal) and G2 (value = sum of
//   increments - sum of successful decrements, entry by entry).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Actor, BoundedCounter } from "../../crdt/boundedCounter.js";

const replicaActors: readonly Actor[] = ["r0", "r1", "r2", "r3", "r4"];

/** How much a decrement or transfer asks for: a fixed amount, or a share of the replica's own rights. */
type AmountSpec = { readonly fixed: number } | { readonly shareOfRights: "all" | "half" };

type Step =
  | { readonly kind: "increment"; readonly replica: number; readonly amount: number }
  | { readonly kind: "decrement"; readonly replica: number; readonly amount: AmountSpec }
  | { readonly kind: "transfer"; readonly replica: number; readonly to: number; readonly amount: AmountSpec }
  /** Deliver the `age`-th newest logged snapshot of `from` (modulo the log length) to `to`. */
  | { readonly kind: "deliver"; readonly from: number; readonly to: number; readonly age: number };

const indexArb = fc.nat({ max: replicaActors.length - 1 });
const amountSpecArb: fc.Arbitrary<AmountSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ fixed: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ shareOfRights: fc.constantFrom("all" as const, "half" as const) }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("increment" as const), replica: indexArb, amount: fc.integer({ min: 0, max: 10 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("decrement" as const), replica: indexArb, amount: amountSpecArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("transfer" as const), replica: indexArb, to: indexArb, amount: amountSpecArb }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("deliver" as const), from: indexArb, to: indexArb, age: fc.nat({ max: 20 }) }) },
);

const scheduleArb = fc.record({
  replicaCount: fc.integer({ min: 3, max: 5 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 80, size: "max" }),
  /** Order in which the final full exchange merges the replicas' states. */
  finalOrderSeed: fc.nat(),
});

class Replica {
  readonly counter = new BoundedCounter();
  /** Every state this replica has had, oldest first: what a network may still deliver. */
  readonly log: BoundedCounter[] = [new BoundedCounter()];
  incrementsAcknowledged = 0;
  decrementsAcknowledged = 0;
  constructor(readonly actor: Actor) {}

  snapshot(): void {
    this.log.push(this.counter.clone());
  }
}

/**
 * A plain assertion for the hot path (vitest's expect costs too much when called
 * ~100 times per run over thousands of runs); fast-check reports the failing schedule.
 */
function check(condition: boolean, message: () => string): void {
  if (!condition) throw new Error(`broken: ${message()}`);
}

/** Totals over all runs, to show the schedules really exercise every path. */
const seen = { decrementsApplied: 0, decrementsRefused: 0, transfersApplied: 0, transfersRefused: 0, staleDeliveries: 0 };

function resolveAmount(spec: AmountSpec, rights: number): number {
  if ("fixed" in spec) return spec.fixed;
  return spec.shareOfRights === "all" ? rights : Math.ceil(rights / 2);
}

function runStep(replicas: Replica[], step: Step): void {
  const count = replicas.length;
  if (step.kind === "deliver") {
    const from = replicas[step.from % count]!;
    const to = replicas[step.to % count]!;
    const index = Math.max(0, from.log.length - 1 - step.age);
    if (index < from.log.length - 1) seen.staleDeliveries += 1;
    to.counter.merge(from.log[index]!);
    to.snapshot();
    return;
  }
  const replica = replicas[step.replica % count]!;
  const counter = replica.counter;
  const rightsBefore = counter.rights(replica.actor);
  const before = counter.clone();
  if (step.kind === "increment") {
    check(counter.increment(replica.actor, step.amount) === null, () => "an increment of a small amount succeeds");
    replica.incrementsAcknowledged += step.amount;
  } else if (step.kind === "decrement") {
    const amount = resolveAmount(step.amount, rightsBefore);
    const refusal = counter.decrement(replica.actor, amount);
    // G5: refused exactly when the replica's own rights do not cover it.
    check((refusal === null) === rightsBefore >= amount, () => `decrement of ${amount} with rights ${rightsBefore}: ${refusal}`);
    if (refusal === null) {
      replica.decrementsAcknowledged += amount;
      seen.decrementsApplied += 1;
    } else {
      check(counter.equals(before), () => "a refused decrement changed the state");
      seen.decrementsRefused += 1;
    }
  } else {
    const to = replicas[step.to % count]!;
    const amount = resolveAmount(step.amount, rightsBefore);
    const refusal = counter.transfer(replica.actor, to.actor, amount);
    if (to === replica) check(refusal === "self-transfer", () => `self-transfer answered ${refusal}`);
    else check((refusal === null) === rightsBefore >= amount, () => `transfer of ${amount} with rights ${rightsBefore}: ${refusal}`);
    if (refusal === null) {
      check(counter.rights(replica.actor) === rightsBefore - amount, () => "a transfer moves exactly its amount");
      seen.transfersApplied += 1;
    } else {
      check(counter.equals(before), () => "a refused transfer changed the state");
      seen.transfersRefused += 1;
    }
  }
  replica.snapshot();
}

/** G1 in every view, and every replica's view holds all of its own writes. */
function checkEveryView(replicas: Replica[]): void {
  for (const replica of replicas) {
    const view = replica.counter;
    check(view.value() >= 0, () => `${replica.actor} sees value ${view.value()}`);
    let rightsTotal = 0;
    for (const actor of replicaActors) {
      const rights = view.rights(actor);
      check(rights >= 0, () => `${replica.actor} sees rights ${rights} of ${actor}`);
      rightsTotal += rights;
    }
    // Transfers only move rights: all rights together are the value.
    check(rightsTotal === view.value(), () => `${replica.actor} sees rights summing to ${rightsTotal}, value ${view.value()}`);
    check(view.invalidity() === null, () => `${replica.actor} sees an invalid state: ${view.invalidity()}`);
    check((view.increments.get(replica.actor) ?? 0) === replica.incrementsAcknowledged, () => `${replica.actor} lost own increments`);
    check((view.decrements.get(replica.actor) ?? 0) === replica.decrementsAcknowledged, () => `${replica.actor} lost own decrements`);
  }
}

/** Every replica merges the current state of every replica, in an order given by `seed`. */
function fullExchange(replicas: Replica[], seed: number): void {
  const states = replicas.map((replica) => replica.counter.clone());
  const offset = seed % states.length;
  const reversed = seed % 2 === 1;
  for (const [position, replica] of replicas.entries()) {
    for (let index = 0; index < states.length; index++) {
      const turn = (index + offset + position) % states.length;
      replica.counter.merge(states[reversed ? states.length - 1 - turn : turn]!);
    }
  }
}

describe("BoundedCounter under random schedules of 3-5 replicas", () => {
  it("G1 after every step; G3 and G2 after a full exchange, whatever was stale, duplicated, reordered or dropped", () => {
    fc.assert(
      fc.property(scheduleArb, ({ replicaCount, steps, finalOrderSeed }) => {
        const replicas = replicaActors.slice(0, replicaCount).map((actor) => new Replica(actor));
        for (const step of steps) {
          runStep(replicas, step);
          checkEveryView(replicas);
        }
        fullExchange(replicas, finalOrderSeed);
        checkEveryView(replicas);

        const first = replicas[0]!.counter;
        for (const replica of replicas) expect(replica.counter.equals(first)).toBe(true); // G3
        let incremented = 0;
        let decremented = 0;
        for (const replica of replicas) {
          incremented += replica.incrementsAcknowledged;
          decremented += replica.decrementsAcknowledged;
          expect(first.increments.get(replica.actor) ?? 0).toBe(replica.incrementsAcknowledged);
          expect(first.decrements.get(replica.actor) ?? 0).toBe(replica.decrementsAcknowledged);
        }
        expect(first.value()).toBe(incremented - decremented); // G2
      }),
      { numRuns: 1500 },
    );
    // The schedules must reach both outcomes of every guarded operation, and stale states.
    expect(seen.decrementsApplied).toBeGreaterThan(2000);
    expect(seen.decrementsRefused).toBeGreaterThan(2000);
    expect(seen.transfersApplied).toBeGreaterThan(1000);
    expect(seen.transfersRefused).toBeGreaterThan(1000);
    expect(seen.staleDeliveries).toBeGreaterThan(5000);
  });
});
