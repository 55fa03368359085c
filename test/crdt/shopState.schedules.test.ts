// Random schedules of shop operations over three ShopState replicas, whose states
// travel only as encoded bytes (as through LevelDB and the wire) and may arrive
// stale, duplicated, reordered, or never. Each replica's changed keys are encoded
// after every operation (as a group commit would) into a log that deliveries pick
// from.
//   After every step: G1 (no stock, credit or right below zero in any view), G4 (no
//   order token spent twice, no order charged twice), and a refusal reported nothing.
//   After a final full exchange: G3 (identical encodings everywhere) and G2 (every
//   stock and credit = what was acknowledged added - what was acknowledged taken,
//   within the generation each key ends in). batch_init steps make keys "0", "1", ...
//   that stay computed from their record until they change; grants move rights.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BoundedCounter } from "../../crdt/boundedCounter.js";
import type { Generation } from "../../crdt/generation.js";
import { type Refusal, ShopState, type StateKey, isRefusal, itemKey, userKey } from "../../crdt/shopState.js";

const replicaCount = 3;
/** Created at setUp ("i0", "u0") and made by batch_init steps ("0", "1"). */
const itemIds = ["i0", "i1", "0", "1"] as const;
const itemPrices: Record<string, number> = { i0: 3, i1: 5 };
const userIds = ["u0", "u1", "0", "1"] as const;
const batchOrderIds = ["0", "1", "2", "3"];

type Step =
  | { readonly kind: "addStock"; readonly replica: number; readonly item: number; readonly amount: number }
  | { readonly kind: "subtractStock"; readonly replica: number; readonly item: number; readonly amount: number }
  | { readonly kind: "addFunds"; readonly replica: number; readonly user: number; readonly amount: number }
  | { readonly kind: "pay"; readonly replica: number; readonly user: number; readonly amount: number }
  | { readonly kind: "createOrder"; readonly replica: number; readonly user: number }
  | { readonly kind: "addItem"; readonly replica: number; readonly order: number; readonly item: number; readonly quantity: number }
  | { readonly kind: "checkout"; readonly replica: number; readonly order: number }
  | { readonly kind: "batchInit"; readonly replica: number; readonly of: "i" | "u" | "o"; readonly amount: number }
  | { readonly kind: "grant"; readonly replica: number; readonly to: number; readonly key: number; readonly amount: number }
  | { readonly kind: "deliver"; readonly from: number; readonly to: number; readonly entry: number };

const replicaArb = fc.nat({ max: replicaCount - 1 });
const itemArb = fc.nat({ max: itemIds.length - 1 });
const userArb = fc.nat({ max: userIds.length - 1 });

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("addStock" as const), replica: replicaArb, item: itemArb, amount: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ kind: fc.constant("subtractStock" as const), replica: replicaArb, item: itemArb, amount: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ kind: fc.constant("addFunds" as const), replica: replicaArb, user: userArb, amount: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ kind: fc.constant("pay" as const), replica: replicaArb, user: userArb, amount: fc.integer({ min: 0, max: 20 }) }),
  fc.record({ kind: fc.constant("createOrder" as const), replica: replicaArb, user: userArb }),
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("addItem" as const),
      replica: replicaArb,
      order: fc.nat(),
      item: itemArb,
      quantity: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("checkout" as const), replica: replicaArb, order: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("deliver" as const), from: replicaArb, to: replicaArb, entry: fc.nat() }) },
  fc.record({
    kind: fc.constant("batchInit" as const),
    replica: replicaArb,
    of: fc.constantFrom("i" as const, "u" as const, "o" as const),
    amount: fc.integer({ min: 0, max: 30 }),
  }),
  fc.record({ kind: fc.constant("grant" as const), replica: replicaArb, to: replicaArb, key: fc.nat(), amount: fc.integer({ min: 1, max: 5 }) }),
);

/** Keys a grant step may move rights on. */
const grantKeys: StateKey[] = [...itemIds.map(itemKey), ...userIds.map(userKey), ...batchOrderIds.map((id) => `o:${id}`)];

class Replica {
  readonly changes: StateKey[] = [];
  readonly shop: ShopState;
  /** Every committed state of every changed key: what the network may (re)deliver. */
  readonly log: [StateKey, Uint8Array][] = [];
  constructor(actor: string, peers: string[]) {
    this.shop = new ShopState(actor, (key) => this.changes.push(key));
    this.shop.spreadActors = [actor, ...peers];
  }

  /** What a group commit does after an operation: encode each changed key once. */
  commit(): void {
    for (const key of new Set(this.changes)) this.log.push([key, this.shop.encode(key)]);
    this.changes.length = 0;
  }
}

/**
 * What the clients were told succeeded, per key and generation ("i0@0/"): a
 * batch_init replaces a key's state whole, so only the generation a key ends in counts.
 */
class Acknowledged {
  readonly stockAdded = new Map<string, number>();
  readonly stockTaken = new Map<string, number>();
  readonly creditAdded = new Map<string, number>();
  readonly creditTaken = new Map<string, number>();
  readonly chargesByOrder = new Map<string, number>();
  readonly orderIds: string[] = [];

  add(map: Map<string, number>, key: string, amount: number): void {
    map.set(key, (map.get(key) ?? 0) + amount);
  }
}

const seen = { checkoutsCharged: 0, checkoutsRefused: 0, staleDeliveries: 0, batchKeysChanged: 0 };

function check(condition: boolean, message: () => string): void {
  if (!condition) throw new Error(`broken: ${message()}`);
}

function checkCounter(counter: BoundedCounter, what: string): void {
  check(counter.value() >= 0, () => `${what} is ${counter.value()}`);
  for (const [actor, rights] of counter.rightsByActor()) check(rights >= 0, () => `${what}: rights of ${actor} are ${rights}`);
}

function setUp(): [Replica[], Acknowledged] {
  const actors = Array.from({ length: replicaCount }, (_, index) => `r${index}`);
  const replicas = actors.map(
    (actor) =>
      new Replica(
        actor,
        actors.filter((other) => other !== actor),
      ),
  );
  const origin = replicas[0]!;
  for (const id of ["i0", "i1"]) origin.shop.createItem(id, itemPrices[id]!);
  for (const id of ["u0", "u1"]) origin.shop.createUser(id);
  origin.commit();
  for (const replica of replicas.slice(1)) for (const [key, bytes] of origin.log) replica.shop.mergeEncoded(key, bytes);
  for (const replica of replicas) replica.changes.length = 0;
  return [replicas, new Acknowledged()];
}

/** Applies one operation; returns its result (null or a refusal), or undefined for a delivery. */
function runStep(replicas: Replica[], acknowledged: Acknowledged, step: Step): Refusal | null | undefined {
  if (step.kind === "deliver") {
    const from = replicas[step.from]!;
    if (from.log.length === 0) return undefined;
    const index = step.entry % from.log.length;
    if (index < from.log.length - 1) seen.staleDeliveries += 1;
    const [key, bytes] = from.log[index]!;
    const to = replicas[step.to]!;
    to.shop.mergeEncoded(key, bytes);
    to.commit();
    return undefined;
  }
  const { shop } = replicas[step.replica]!;
  const orders = [...acknowledged.orderIds, ...batchOrderIds];
  const orderId = (seed: number): string => orders[seed % orders.length]!;
  const item = (id: string) => `${id}@${generationOf(shop.item(id)?.generation)}`;
  const user = (id: string) => `${id}@${generationOf(shop.user(id)?.generation)}`;
  switch (step.kind) {
    case "addStock": {
      const result = shop.addStock(itemIds[step.item]!, step.amount);
      if (result === null) acknowledged.add(acknowledged.stockAdded, item(itemIds[step.item]!), step.amount);
      return result;
    }
    case "subtractStock": {
      const result = shop.subtractStock(itemIds[step.item]!, step.amount);
      if (result === null) acknowledged.add(acknowledged.stockTaken, item(itemIds[step.item]!), step.amount);
      return result;
    }
    case "addFunds": {
      const result = shop.addFunds(userIds[step.user]!, step.amount);
      if (result === null) acknowledged.add(acknowledged.creditAdded, user(userIds[step.user]!), step.amount);
      return result;
    }
    case "pay": {
      const result = shop.pay(userIds[step.user]!, step.amount);
      if (result === null) acknowledged.add(acknowledged.creditTaken, user(userIds[step.user]!), step.amount);
      return result;
    }
    case "batchInit":
      return batchInit(shop, acknowledged, step.of, step.amount);
    case "grant": {
      const key = grantKeys[step.key % grantKeys.length]!;
      shop.grantRights(replicas[step.to]!.shop.actor, [[key, step.amount]], (_key, rights) => rights);
      return null;
    }
    case "createOrder": {
      const id = `o${acknowledged.orderIds.length}`;
      const result = shop.createOrder(id, ["u0", "u1"][step.user % 2]!);
      check(result === null, () => `createOrder ${id} refused: ${result?.message}`);
      acknowledged.orderIds.push(id);
      return result;
    }
    case "addItem":
      return shop.addItem(orderId(step.order), itemIds[step.item]!, step.quantity);
    case "checkout":
      return checkout(shop, acknowledged, orderId(step.order));
  }
}

function generationOf(generation: Generation | undefined): string {
  return generation === undefined ? "none" : `${generation.counter}/${generation.actor}`;
}

/** Two items, two users or four orders (over those items and users), at the next generation. */
function batchInit(shop: ShopState, acknowledged: Acknowledged, of: "i" | "u" | "o", amount: number): Refusal | null {
  const random = (n: number) => (amount * 7919) % n;
  const result = of === "i" ? shop.batchInitItems(2, amount, 4) : of === "u" ? shop.batchInitUsers(2, amount) : shop.batchInitOrders(4, 2, 2, 4, random);
  if (result !== null || of === "o") return result;
  for (const id of ["0", "1"]) {
    const generation = generationOf((of === "i" ? shop.item(id) : shop.user(id))!.generation);
    acknowledged.add(of === "i" ? acknowledged.stockAdded : acknowledged.creditAdded, `${id}@${generation}`, amount);
  }
  return result;
}

function checkout(shop: ShopState, acknowledged: Acknowledged, orderId: string): Refusal | null {
  const before = shop.findOrder(orderId);
  const generations = checkoutGenerations(shop, orderId);
  const result = shop.checkout(orderId);
  if (result !== null) {
    seen.checkoutsRefused += 1;
    return result;
  }
  check(!isRefusal(before), () => `checkout of unknown order ${orderId} succeeded`);
  if (isRefusal(before) || before.paid) return result; // answered as done again: nothing taken
  seen.checkoutsCharged += 1;
  const order = `${orderId}@${generations.order}`;
  acknowledged.add(acknowledged.chargesByOrder, order, 1);
  check(acknowledged.chargesByOrder.get(order) === 1, () => `order ${order} charged twice`); // G4
  for (const [itemId, quantity] of before.items) acknowledged.add(acknowledged.stockTaken, `${itemId}@${generations.items.get(itemId)}`, quantity);
  acknowledged.add(acknowledged.creditTaken, `${before.user_id}@${generations.user}`, before.total_cost);
  return result;
}

/** The generations a checkout of `orderId` would charge, as this replica sees them before it. */
function checkoutGenerations(shop: ShopState, orderId: string): { order: string; user: string; items: Map<string, string> } {
  const order = shop.order(orderId);
  const items = new Map<string, string>();
  for (const [itemId] of order?.lines ?? []) items.set(itemId, generationOf(shop.item(itemId)?.generation));
  return { order: generationOf(order?.generation), user: generationOf(order === undefined ? undefined : shop.user(order.userId)?.generation), items };
}

/** G1 and G4 in every replica's view. */
function checkEveryView(replicas: Replica[]): void {
  for (const { shop } of replicas) {
    for (const [id, item] of shop.itemEntries()) checkCounter(item.stock, `${shop.actor}: stock of ${id}`);
    for (const [id, user] of shop.userEntries()) checkCounter(user.credit, `${shop.actor}: credit of ${id}`);
    for (const [id, order] of shop.orderEntries()) {
      checkCounter(order.token, `${shop.actor}: token of ${id}`);
      let spent = 0;
      for (const amount of order.token.decrements.values()) spent += amount;
      check(spent <= 1 && order.token.value() <= 1, () => `${shop.actor}: token of ${id} spent ${spent} times`);
    }
  }
}

function fullExchange(replicas: Replica[]): void {
  const states: [StateKey, Uint8Array][] = [];
  for (const { shop } of replicas) {
    for (const key of shop.keptKeys()) states.push([key, shop.encode(key)]);
  }
  for (const replica of replicas) {
    for (const [key, bytes] of states) replica.shop.mergeEncoded(key, bytes);
    replica.commit();
  }
}

/**
 * G3: the same keys, and equal states under each, as the states' equals() sees them.
 * (Not the encoded bytes: encoding follows map insertion order, so replicas that
 * learned the same entries in different orders encode equal states differently.)
 */
function checkIdentical(replicas: Replica[]): void {
  const reference = replicas[0]!.shop;
  const ids = (entries: Iterable<[string, unknown]>): string =>
    [...entries]
      .map(([id]) => id)
      .sort()
      .join(",");
  const keys = (shop: ShopState): string => [ids(shop.itemEntries()), ids(shop.userEntries()), ids(shop.orderEntries())].join("|");
  for (const { shop } of replicas) {
    expect(keys(shop)).toBe(keys(reference));
    for (const [id, item] of shop.itemEntries()) expect(item.equals(reference.item(id)!), `item ${id}`).toBe(true);
    for (const [id, user] of shop.userEntries()) expect(user.equals(reference.user(id)!), `user ${id}`).toBe(true);
    for (const [id, order] of shop.orderEntries()) expect(order.equals(reference.order(id)!), `order ${id}`).toBe(true);
  }
}

describe("ShopState under random schedules of 3 replicas exchanging encoded states", () => {
  it("G1, G4 and silent refusals after every step; G3 and G2 after a full exchange", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60, size: "max" }), (steps) => {
        const [replicas, acknowledged] = setUp();
        for (const step of steps) {
          const result = runStep(replicas, acknowledged, step);
          if (step.kind !== "deliver") {
            const replica = replicas[step.replica]!;
            check(result === null || replica.changes.length === 0, () => `refused ${step.kind} reported ${replica.changes.join(",")}`);
            seen.batchKeysChanged += replica.changes.filter((key) => /^[iuo]:\d/.test(key)).length;
            replica.commit();
          }
          checkEveryView(replicas);
        }
        fullExchange(replicas);
        checkEveryView(replicas);

        checkIdentical(replicas); // G3
        const { shop } = replicas[0]!;
        const net = (added: Map<string, number>, taken: Map<string, number>, id: string): number => (added.get(id) ?? 0) - (taken.get(id) ?? 0);
        for (const id of itemIds) {
          const key = `${id}@${generationOf(shop.item(id)?.generation)}`;
          if (shop.item(id) !== undefined) expect(shop.findItem(id)).toMatchObject({ stock: net(acknowledged.stockAdded, acknowledged.stockTaken, key) }); // G2
        }
        for (const id of userIds) {
          const key = `${id}@${generationOf(shop.user(id)?.generation)}`;
          if (shop.user(id) !== undefined) expect(shop.findUser(id)).toMatchObject({ credit: net(acknowledged.creditAdded, acknowledged.creditTaken, key) }); // G2
        }
        for (const id of [...acknowledged.orderIds, ...batchOrderIds]) {
          const order = shop.order(id);
          if (order !== undefined) expect(order.paid).toBe(acknowledged.chargesByOrder.has(`${id}@${generationOf(order.generation)}`)); // G4
        }
      }),
      { numRuns: 500 },
    );
    expect(seen.checkoutsCharged).toBeGreaterThan(100);
    expect(seen.checkoutsRefused).toBeGreaterThan(100);
    expect(seen.staleDeliveries).toBeGreaterThan(1000);
    expect(seen.batchKeysChanged).toBeGreaterThan(100);
  });
});
