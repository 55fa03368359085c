// fast-check arbitraries for the crdt/ states, shared by the property tests.
//
// States come in three flavours, because the merge laws must hold for any states:
// - built through real operations at random actors (one shared history, so valid);
// - raw entries (any numbers, self-transfers, forged rights: laws hold regardless);
// - related views: the end states of a small replicated run, with deliveries, so the
//   three merged states share history the way real replicas' states do.
import fc from "fast-check";
import { type Actor, BoundedCounter, type CounterRefusal } from "../../crdt/boundedCounter.js";
import type { Generation } from "../../crdt/generation.js";
import { ItemState } from "../../crdt/itemState.js";
import { type OrderLine, OrderState } from "../../crdt/orderState.js";
import { UserState } from "../../crdt/userState.js";

export const actorNames: readonly Actor[] = ["a", "b", "c", "d"];
export const actorArb: fc.Arbitrary<Actor> = fc.constantFrom(...actorNames);

export type Triple<T> = [T, T, T];

// ---- bounded counters

export type CounterOp =
  | { readonly kind: "increment"; readonly actor: Actor; readonly amount: number }
  | { readonly kind: "decrement"; readonly actor: Actor; readonly amount: number }
  | { readonly kind: "transfer"; readonly actor: Actor; readonly to: Actor; readonly amount: number };

const opAmountArb = fc.integer({ min: 0, max: 12 });

export const counterOpArb: fc.Arbitrary<CounterOp> = fc.oneof(
  fc.record({ kind: fc.constant("increment" as const), actor: actorArb, amount: opAmountArb }),
  fc.record({ kind: fc.constant("decrement" as const), actor: actorArb, amount: opAmountArb }),
  fc.record({ kind: fc.constant("transfer" as const), actor: actorArb, to: actorArb, amount: opAmountArb }),
);

export function applyCounterOp(counter: BoundedCounter, op: CounterOp): CounterRefusal | null {
  switch (op.kind) {
    case "increment":
      return counter.increment(op.actor, op.amount);
    case "decrement":
      return counter.decrement(op.actor, op.amount);
    case "transfer":
      return counter.transfer(op.actor, op.to, op.amount);
  }
}

/** A counter built by real operations in one history (every actor sees everything). */
export const counterByOpsArb: fc.Arbitrary<BoundedCounter> = fc.array(counterOpArb, { maxLength: 25 }).map((ops) => {
  const counter = new BoundedCounter();
  for (const op of ops) applyCounterOp(counter, op);
  return counter;
});

/** Any number a merge might meet, including ones no correct replica writes. */
const rawAmountArb: fc.Arbitrary<number> = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -3, max: 12 }) }, { weight: 1, arbitrary: fc.maxSafeInteger() });

/** A counter of arbitrary raw entries (rows are never empty, as in every real or decoded state). */
export const rawCounterArb: fc.Arbitrary<BoundedCounter> = fc
  .record({
    increments: fc.array(fc.tuple(actorArb, rawAmountArb), { maxLength: 5 }),
    decrements: fc.array(fc.tuple(actorArb, rawAmountArb), { maxLength: 5 }),
    transfers: fc.array(fc.tuple(actorArb, actorArb, rawAmountArb), { maxLength: 8 }),
  })
  .map(({ increments, decrements, transfers }) => {
    const counter = new BoundedCounter();
    for (const [actor, amount] of increments) counter.increments.set(actor, amount);
    for (const [actor, amount] of decrements) counter.decrements.set(actor, amount);
    for (const [from, to, amount] of transfers) {
      let row = counter.transfers.get(from);
      if (row === undefined) {
        row = new Map();
        counter.transfers.set(from, row);
      }
      row.set(to, amount);
    }
    return counter;
  });

/** A local operation at replica `replica` (its actor is actorNames[replica]) or a delivery. */
export type ReplicaStep =
  { readonly kind: "local"; readonly replica: number; readonly op: CounterOp } | { readonly kind: "deliver"; readonly from: number; readonly to: number };

const replicaIndexArb = fc.integer({ min: 0, max: actorNames.length - 1 });

const replicaStepArb: fc.Arbitrary<ReplicaStep> = fc.oneof(
  fc.record({ kind: fc.constant("local" as const), replica: replicaIndexArb, op: counterOpArb }),
  fc.record({ kind: fc.constant("deliver" as const), from: replicaIndexArb, to: replicaIndexArb }),
);

/**
 * The views of four replicas of one counter after a run of local operations (each
 * at the replica's own actor) and deliveries of current states. Every view is a
 * state some real replica holds, so every one is valid.
 */
export const replicatedCountersArb: fc.Arbitrary<BoundedCounter[]> = fc.array(replicaStepArb, { maxLength: 40 }).map((steps) => {
  const views = actorNames.map(() => new BoundedCounter());
  for (const step of steps) {
    if (step.kind === "deliver") {
      views[step.to]!.merge(views[step.from]!);
      continue;
    }
    const actor = actorNames[step.replica]!;
    applyCounterOp(views[step.replica]!, { ...step.op, actor });
  }
  return views;
});

function pickThree<T>(views: fc.Arbitrary<T[]>): fc.Arbitrary<Triple<T>> {
  return fc
    .tuple(views, replicaIndexArb, replicaIndexArb, replicaIndexArb)
    .map(([all, first, second, third]): Triple<T> => [all[first]!, all[second]!, all[third]!]);
}

export const relatedCounterTripleArb: fc.Arbitrary<Triple<BoundedCounter>> = pickThree(replicatedCountersArb);

export const counterTripleArb: fc.Arbitrary<Triple<BoundedCounter>> = fc.oneof(
  fc.tuple(counterByOpsArb, counterByOpsArb, counterByOpsArb),
  fc.tuple(rawCounterArb, rawCounterArb, rawCounterArb),
  relatedCounterTripleArb,
);

// ---- generations

/** A small pool, so that equal generations (which merge) are frequent. */
export const generationArb: fc.Arbitrary<Generation> = fc.constantFrom<Generation>(
  { counter: 0, actor: "" },
  { counter: 1, actor: "a" },
  { counter: 1, actor: "b" },
  { counter: 2, actor: "a" },
);

// ---- items and users

const priceArb = fc.integer({ min: 0, max: 50 });

export const itemArb: fc.Arbitrary<ItemState> = fc
  .tuple(generationArb, priceArb, fc.oneof(counterByOpsArb, rawCounterArb))
  .map(([generation, price, stock]) => new ItemState(generation, price, stock));

export const userArb: fc.Arbitrary<UserState> = fc
  .tuple(generationArb, fc.oneof(counterByOpsArb, rawCounterArb))
  .map(([generation, credit]) => new UserState(generation, credit));

/** Three items of one generation. */
export const itemTripleArb: fc.Arbitrary<Triple<ItemState>> = fc
  .tuple(generationArb, fc.tuple(priceArb, priceArb, priceArb), counterTripleArb)
  .map(([generation, prices, stocks]): Triple<ItemState> => [
    new ItemState(generation, prices[0], stocks[0]),
    new ItemState(generation, prices[1], stocks[1]),
    new ItemState(generation, prices[2], stocks[2]),
  ]);

/** Three users of one generation. */
export const userTripleArb: fc.Arbitrary<Triple<UserState>> = fc
  .tuple(generationArb, counterTripleArb)
  .map(([generation, credits]): Triple<UserState> => [
    new UserState(generation, credits[0]),
    new UserState(generation, credits[1]),
    new UserState(generation, credits[2]),
  ]);

// ---- orders

export type OrderOp =
  | { readonly kind: "addLine"; readonly actor: Actor; readonly itemId: string; readonly quantity: number; readonly price: number }
  | { readonly kind: "passToken"; readonly actor: Actor; readonly to: Actor }
  | { readonly kind: "pay"; readonly actor: Actor };

const itemIdArb = fc.constantFrom("i1", "i2", "i3");

export const orderOpArb: fc.Arbitrary<OrderOp> = fc.oneof(
  fc.record({
    kind: fc.constant("addLine" as const),
    actor: actorArb,
    itemId: itemIdArb,
    quantity: fc.integer({ min: 1, max: 5 }),
    price: priceArb,
  }),
  fc.record({ kind: fc.constant("passToken" as const), actor: actorArb, to: actorArb }),
  fc.record({ kind: fc.constant("pay" as const), actor: actorArb }),
);

/** What ShopState does to an order, on the order alone: only the token holder writes. */
export function applyOrderOp(order: OrderState, op: OrderOp): void {
  if (!order.holdsToken(op.actor)) return;
  switch (op.kind) {
    case "addLine":
      order.lines.push([op.itemId, op.quantity]);
      order.totalCost += op.quantity * op.price;
      order.version += 1;
      return;
    case "passToken":
      order.token.transfer(op.actor, op.to, 1);
      return;
    case "pay":
      order.token.decrement(op.actor, 1);
      return;
  }
}

const userIdArb = fc.constantFrom("u1", "u2");

function orderByOps(generation: Generation, userId: string, creator: Actor, ops: readonly OrderOp[]): OrderState {
  const order = OrderState.create(generation, userId, creator);
  for (const op of ops) applyOrderOp(order, op);
  return order;
}

const orderByOpsOfArb = (generation: fc.Arbitrary<Generation>): fc.Arbitrary<OrderState> =>
  fc
    .tuple(generation, userIdArb, actorArb, fc.array(orderOpArb, { maxLength: 12 }))
    .map(([gen, userId, creator, ops]) => orderByOps(gen, userId, creator, ops));

const lineArb: fc.Arbitrary<OrderLine> = fc.tuple(itemIdArb, fc.integer({ min: 0, max: 5 }));

const rawOrderOfArb = (generation: fc.Arbitrary<Generation>): fc.Arbitrary<OrderState> =>
  fc
    .tuple(generation, userIdArb, fc.array(lineArb, { maxLength: 3 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 3 }), rawCounterArb)
    .map(([gen, userId, lines, totalCost, version, token]) => new OrderState(gen, userId, lines, totalCost, version, token));

export const orderArb: fc.Arbitrary<OrderState> = fc.oneof(orderByOpsOfArb(generationArb), rawOrderOfArb(generationArb));

/** A local order operation at replica `replica`, or a delivery of its current state. */
type OrderReplicaStep =
  { readonly kind: "local"; readonly replica: number; readonly op: OrderOp } | { readonly kind: "deliver"; readonly from: number; readonly to: number };

const orderReplicaStepArb: fc.Arbitrary<OrderReplicaStep> = fc.oneof(
  fc.record({ kind: fc.constant("local" as const), replica: replicaIndexArb, op: orderOpArb }),
  fc.record({ kind: fc.constant("deliver" as const), from: replicaIndexArb, to: replicaIndexArb }),
);

/** The views of four replicas of one order (made at "a"), after passing its token around. */
const replicatedOrdersArb = (generation: Generation): fc.Arbitrary<OrderState[]> =>
  fc.tuple(userIdArb, fc.array(orderReplicaStepArb, { maxLength: 30 })).map(([userId, steps]) => {
    const created = OrderState.create(generation, userId, "a");
    const views = actorNames.map(() => created.clone());
    for (const step of steps) {
      if (step.kind === "deliver") views[step.to]!.mergeSameGeneration(views[step.from]!);
      else applyOrderOp(views[step.replica]!, { ...step.op, actor: actorNames[step.replica]! });
    }
    return views;
  });

/** Three orders of one generation: independent, raw, or views of one replicated order. */
export const orderTripleArb: fc.Arbitrary<Triple<OrderState>> = generationArb.chain((generation) => {
  const fixed = fc.constant(generation);
  return fc.oneof(
    fc.tuple(orderByOpsOfArb(fixed), orderByOpsOfArb(fixed), orderByOpsOfArb(fixed)),
    fc.tuple(rawOrderOfArb(fixed), rawOrderOfArb(fixed), rawOrderOfArb(fixed)),
    pickThree(replicatedOrdersArb(generation)),
  );
});

/** Three views of one replicated order: states real replicas hold at once. */
export const relatedOrderTripleArb: fc.Arbitrary<Triple<OrderState>> = generationArb.chain((generation) => pickThree(replicatedOrdersArb(generation)));
