// Checkers over one simulated run: per replica after every event (G1, G4), and over
// the history and the final states once everything has healed (G2, G3, G4, G6).
//
// Effects. Every add, subtract, pay and add_funds is an effect on one counter by
// the actor (replica incarnation) that ran it: certain if it was acknowledged by an
// incarnation whose storage survived, possible if its outcome is unknown (or its
// acknowledging incarnation lost its storage), none if it failed (a 4xx changes
// nothing). A checkout's effect comes from the final state: an order that ends
// paid was charged its final lines and total, once, by the actor whose token
// right paid it; its first attempt and first acknowledgement bound when.
import { type BatchRecord, batchOrder } from "../../crdt/batchRecord.js";
import type { Actor, BoundedCounter } from "../../crdt/boundedCounter.js";
import type { OrderLine, OrderState } from "../../crdt/orderState.js";
import type { ShopState } from "../../crdt/shopState.js";
import { type History, type Invocation, describeInvocation } from "./history.js";

export interface Violation {
  readonly message: string;
  /** History entries that show it. */
  readonly invocations: readonly number[];
  /** State keys it is about, to pick the history lines worth printing. */
  readonly keys: readonly string[];
}

// ---- after every event, on every running replica

/**
 * G1 (never negative, and no actor's rights below zero), G4 (a token pays once; a
 * paid order's charges are there wherever the payment is). `changed`: the keys
 * changed since the last check (all when undefined); nothing else needs a look.
 */
export function checkReplica(replicaId: string, shop: ShopState, changed?: ReadonlySet<string>): Violation[] {
  const violations: Violation[] = [];
  const fail = (key: string, message: string) => violations.push({ message: `${replicaId}: ${message}`, invocations: [], keys: [key] });
  if (changed?.size === 0) return violations;
  const keys = changed ?? [...[...shop.itemEntries()].map(([id]) => `i:${id}`), ...[...shop.userEntries()].map(([id]) => `u:${id}`)];
  for (const key of keys) {
    const id = key.slice(2);
    const counter = key[0] === "i" ? shop.item(id)?.stock : key[0] === "u" ? shop.user(id)?.credit : undefined;
    const problem = counter === undefined ? null : counterProblem(counter);
    if (problem !== null) fail(key, `${key[0] === "i" ? "stock" : "credit"} of ${id}: ${problem}`);
  }
  let charged: Map<string, Map<Actor, number>> | undefined;
  // A payment's charges can only go missing where the order changed (states of
  // users and items only grow within a generation, and no run here makes a new one).
  const orders =
    changed === undefined ? shop.orderEntries() : [...changed].filter((key) => key[0] === "o").map((key) => [key.slice(2), shop.order(key.slice(2))!] as const);
  for (const [id, order] of orders) {
    const value = order.token.value();
    if (value !== 0 && value !== 1) fail(`o:${id}`, `token of order ${id} has value ${value}`);
    if (value !== 0) continue;
    const payer = payerOf(order);
    if (payer === undefined) {
      fail(`o:${id}`, `order ${id} is paid but no single actor spent its token`);
      continue;
    }
    // Per user (and item) and actor: what the paid orders this replica sees charged there.
    charged ??= new Map();
    addCharge(charged, `u:${order.userId}`, payer, order.totalCost);
    for (const [itemId, quantity] of order.lines) addCharge(charged, `i:${itemId}`, payer, quantity);
  }
  for (const [key, byActor] of charged ?? []) {
    const counter = key[0] === "u" ? shop.user(key.slice(2))?.credit : shop.item(key.slice(2))?.stock;
    for (const [actor, amount] of byActor) {
      const decremented = counter?.decrements.get(actor) ?? 0;
      if (decremented < amount) fail(key, `paid orders charged ${amount} to ${key} at ${actor}, but ${key} shows only ${decremented} taken there`);
    }
  }
  return violations;
}

/** A negative value, or an actor with negative rights (the escrow invariant), in one pass. */
function counterProblem(counter: BoundedCounter): string | null {
  let value = 0;
  const rights = new Map<Actor, number>();
  for (const [actor, amount] of counter.increments) {
    value += amount;
    rights.set(actor, (rights.get(actor) ?? 0) + amount);
  }
  for (const [actor, amount] of counter.decrements) {
    value -= amount;
    rights.set(actor, (rights.get(actor) ?? 0) - amount);
  }
  for (const [from, row] of counter.transfers) {
    for (const [to, amount] of row) {
      rights.set(from, (rights.get(from) ?? 0) - amount);
      rights.set(to, (rights.get(to) ?? 0) + amount);
    }
  }
  if (value < 0) return `value is ${value}`;
  for (const [actor, amount] of rights) if (amount < 0) return `rights of ${actor} are ${amount}`;
  return null;
}

function addCharge(charged: Map<string, Map<Actor, number>>, key: string, actor: Actor, amount: number): void {
  const byActor = charged.get(key) ?? new Map<Actor, number>();
  byActor.set(actor, (byActor.get(actor) ?? 0) + amount);
  charged.set(key, byActor);
}

/** The actor whose token right paid the order: the only one with a decrement. */
export function payerOf(order: OrderState): Actor | undefined {
  const payers = [...order.token.decrements].filter(([, amount]) => amount > 0);
  return payers.length === 1 && payers[0]![1] === 1 ? payers[0]![0] : undefined;
}

// ---- once healed and quiet

type AnyState = { counter(): BoundedCounter; equals(other: never): boolean };

/** Every state of a kind as the shop serves it (batch keys that never changed included). */
function statesOf(shop: ShopState, kind: "items" | "users" | "orders"): Map<string, AnyState> {
  return new Map<string, AnyState>(kind === "items" ? shop.itemEntries() : kind === "users" ? shop.userEntries() : shop.orderEntries());
}

/**
 * What order `orderId` started with, if a batch_init of orders attempted before
 * `before` covers it (the sim makes one at most): its two lines (they depend on the
 * seed and the index alone) and their price. From the history, not a final state:
 * the record may be lost with every disk that held it.
 */
function batchStart(
  all: readonly Invocation[],
  orderId: string,
  before = Number.POSITIVE_INFINITY,
): { lines: readonly OrderLine[]; price: number } | undefined {
  if (!/^(0|[1-9]\d*)$/.test(orderId)) return undefined;
  const index = Number(orderId);
  for (const invocation of all) {
    const op = invocation.op;
    if (op.f !== "batchInitOrders" || invocation.outcome === "fail" || invocation.invokedAt >= before || index >= op.count) continue;
    const { count, price, itemCount, userCount, seed } = op;
    const record: BatchRecord = {
      generation: { counter: 0, actor: invocation.actor },
      count,
      spreadActors: [invocation.actor],
      amount: 0,
      price,
      itemCount,
      userCount,
      seed,
    };
    return { lines: batchOrder(record, index).lines, price };
  }
  return undefined;
}

/** G3: every replica holds the same states. */
export function checkConvergence(shops: readonly (readonly [string, ShopState])[]): Violation[] {
  const violations: Violation[] = [];
  const [first, ...rest] = shops;
  if (first === undefined) return violations;
  const [firstId, reference] = first;
  for (const [id, shop] of rest) {
    for (const kind of ["items", "users", "orders"] as const) {
      const mine = statesOf(reference, kind);
      const theirs = statesOf(shop, kind);
      const ids = new Set([...mine.keys(), ...theirs.keys()]);
      for (const key of ids) {
        const a = mine.get(key);
        const b = theirs.get(key);
        const stateKey = `${kind[0]}:${key}`;
        if (a === undefined || b === undefined) {
          violations.push({
            message: `${stateKey} is on ${a === undefined ? id : firstId} but not on ${a === undefined ? firstId : id}`,
            invocations: [],
            keys: [stateKey],
          });
        } else if (!a.equals(b as never)) {
          violations.push({ message: `${stateKey} differs between ${firstId} and ${id}`, invocations: [], keys: [stateKey] });
        }
      }
    }
  }
  return violations;
}

/** What each replica serves is what its storage holds (G2: a restart loses nothing it answered from). */
export function checkDurable(replicaId: string, served: ShopState, stored: ShopState): Violation[] {
  return checkConvergence([
    [`${replicaId} (memory)`, served],
    [`${replicaId} (storage)`, stored],
  ]);
}

/**
 * Where `stale` (a replica before every link reconnected) differs from `final`
 * (after), in anything but the rows of lost incarnations: differences those do not
 * explain. A lost incarnation's own row survives only where it had reached, and no
 * replica forwards merged states live, so it spreads only by anti-entropy on connect.
 */
export function unexplainedByLostIncarnations(replicaId: string, stale: ShopState, final: ShopState, lost: ReadonlySet<Actor>): Violation[] {
  const violations: Violation[] = [];
  const fail = (key: string, message: string) => violations.push({ message: `${replicaId}: ${key} ${message}`, invocations: [], keys: [key] });
  for (const kind of ["items", "users", "orders"] as const) {
    const staleStates = statesOf(stale, kind);
    for (const [id, after] of statesOf(final, kind)) {
      const key = `${kind[0]}:${id}`;
      const before = staleStates.get(id);
      if (before !== undefined && before.equals(after as never)) continue;
      const counterAfter = after.counter();
      const counterBefore = before?.counter();
      const lostRow = [...counterAfter.actors()].some((actor) => lost.has(actor));
      for (const actor of counterAfter.actors()) {
        if (lost.has(actor)) continue;
        const rowBefore = JSON.stringify(rowOf(counterBefore, actor));
        const rowAfter = JSON.stringify(rowOf(counterAfter, actor));
        if (rowBefore !== rowAfter) fail(key, `lacked ${actor}'s row ${rowAfter} (had ${rowBefore}), which no lost incarnation explains`);
      }
      if (before !== undefined && !lostRow && kind !== "orders") fail(key, "differed, though no lost incarnation touched it");
      if (kind === "orders" && !lostRow) fail(key, "differed, though no lost incarnation held its token");
    }
  }
  return violations;
}

function rowOf(counter: BoundedCounter | undefined, actor: Actor): [number, number, [Actor, number][]] {
  const transfers = [...(counter?.transfers.get(actor) ?? [])].filter(([, amount]) => amount > 0).sort(([a], [b]) => (a < b ? -1 : 1));
  return [counter?.increments.get(actor) ?? 0, counter?.decrements.get(actor) ?? 0, transfers];
}

/** A replica that left for good holds no rights and no order token (they would be stranded). */
export function checkNothingStranded(replicaId: string, actor: Actor, final: ShopState): Violation[] {
  const violations: Violation[] = [];
  for (const [kind, prefix] of [
    ["items", "i:"],
    ["users", "u:"],
    ["orders", "o:"],
  ] as const) {
    for (const id of statesOf(final, kind).keys()) {
      const rights = final.counterAt(`${prefix}${id}`)?.rights(actor) ?? 0;
      if (rights > 0)
        violations.push({
          message: `${replicaId} left (retired) but ${actor} still holds ${rights} rights of ${prefix}${id}: stranded`,
          invocations: [],
          keys: [`${prefix}${id}`],
        });
    }
  }
  return violations;
}

interface Effect {
  readonly key: string;
  readonly delta: number;
  readonly actor: Actor;
  /** Acknowledged by an incarnation whose storage survived (or, for a payment, the final state shows it). */
  readonly certain: boolean;
  /** Earliest time it may have happened, and (if acknowledged) by when it surely had. */
  readonly from: number;
  readonly ackedAt: number | undefined;
  readonly invocations: readonly number[];
  /** Any amount from 0 to |delta| (a checkout whose paid order was lost with its payer's disk). */
  readonly upTo?: boolean;
}

export interface HistoryContext {
  /** Intervals in which every replica ran and reached every other ([from, to)). */
  readonly connectedWindows: readonly (readonly [number, number])[];
  /** How long into a connected window replicas need to catch up before reads must see everything. */
  readonly settleMs: number;
  /** Incarnations whose storage was lost: what they acknowledged may be gone. */
  readonly lostActors: ReadonlySet<Actor>;
  /** Per order id, the incarnations its checkouts were handed to: each may have run one. */
  readonly checkoutsHandedTo?: ReadonlyMap<string, ReadonlySet<Actor>>;
}

export function checkHistory(history: History, final: ShopState, context: HistoryContext): Violation[] {
  const violations: Violation[] = [];
  const all = history.invocations;
  const certain = (invocation: Invocation) => invocation.outcome === "ok" && !context.lostActors.has(invocation.actor);
  const attempted = (invocation: Invocation) => invocation.outcome !== "fail";
  const effects = new Map<string, Effect[]>();
  const addEffect = (effect: Effect) => {
    const list = effects.get(effect.key) ?? [];
    list.push(effect);
    effects.set(effect.key, list);
  };
  for (const invocation of all) {
    if (!attempted(invocation)) continue;
    const op = invocation.op;
    const common = {
      actor: invocation.actor,
      certain: certain(invocation),
      from: invocation.invokedAt,
      ackedAt: invocation.completedAt,
      invocations: [invocation.index],
    };
    if (op.f === "addStock") addEffect({ key: `i:${op.item}`, delta: op.amount, ...common });
    else if (op.f === "subtractStock") addEffect({ key: `i:${op.item}`, delta: -op.amount, ...common });
    else if (op.f === "addFunds") addEffect({ key: `u:${op.user}`, delta: op.amount, ...common });
    else if (op.f === "pay") addEffect({ key: `u:${op.user}`, delta: -op.amount, ...common });
    else if (op.f === "batchInitItems" || op.f === "batchInitUsers") {
      for (let index = 0; index < op.count; index++) addEffect({ key: `${op.f === "batchInitItems" ? "i" : "u"}:${index}`, delta: op.amount, ...common });
    }
  }
  violations.push(...checkOrders(all, final, context, certain, attempted, addEffect));
  violations.push(...checkFinalCounters(all, final, effects, certain));
  violations.push(...checkReads(all, context, effects, certain, attempted));
  return violations;
}

function checkOrders(
  all: readonly Invocation[],
  final: ShopState,
  context: HistoryContext,
  certain: (invocation: Invocation) => boolean,
  attempted: (invocation: Invocation) => boolean,
  addEffect: (effect: Effect) => void,
): Violation[] {
  const violations: Violation[] = [];
  const byOrder = new Map<string, Invocation[]>();
  const prices = new Map<string, number>();
  for (const invocation of all) {
    const op = invocation.op;
    if (op.f === "createItem") prices.set(op.item, op.price);
    if (op.f === "batchInitItems") for (let index = 0; index < op.count; index++) prices.set(String(index), op.price);
    if (op.f !== "createOrder" && op.f !== "addItem" && op.f !== "checkout") continue;
    const list = byOrder.get(op.order) ?? [];
    list.push(invocation);
    byOrder.set(op.order, list);
  }
  for (const [orderId, invocations] of byOrder) {
    const key = `o:${orderId}`;
    const fail = (message: string, shown: readonly Invocation[]) =>
      violations.push({ message, invocations: shown.map((invocation) => invocation.index), keys: [key] });
    const order = final.order(orderId);
    const batch = batchStart(all, orderId);
    const initial = batch?.lines ?? [];
    const create = invocations.find((invocation) => invocation.op.f === "createOrder");
    if (order === undefined || !order.paid) addLostCheckouts(invocations, order?.userId, initial, context, attempted, prices, addEffect);
    if (order === undefined) {
      if (create !== undefined && certain(create)) fail(`order ${orderId} was created (acknowledged) but is gone`, [create]);
      continue;
    }
    const adds = invocations.filter((invocation) => invocation.op.f === "addItem");
    const lines = order.lines.map(([item, quantity]) => `${item}x${quantity}`);
    const start = initial.map(([item, quantity]) => `${item}x${quantity}`);
    const acked = [...start, ...adds.filter(certain).map(lineOf)];
    const possible = [...start, ...adds.filter(attempted).map(lineOf)];
    if (!isSubMultiset(acked, lines)) fail(`order ${orderId} lost an acknowledged line: has [${lines.join(" ")}], acknowledged [${acked.join(" ")}]`, adds);
    if (!isSubMultiset(lines, possible)) fail(`order ${orderId} has a line nobody added: has [${lines.join(" ")}], attempted [${possible.join(" ")}]`, adds);
    // A batch order's first lines cost what its record says, even if the items' own record was lost.
    let total = 0;
    for (const [index, [itemId, quantity]] of order.lines.entries()) {
      total += quantity * (batch !== undefined && index < initial.length ? batch.price : (final.item(itemId)?.price ?? Number.NaN));
    }
    if (total !== order.totalCost) fail(`order ${orderId} costs ${order.totalCost} but its lines cost ${total}`, adds);
    const checkouts = invocations.filter((invocation) => invocation.op.f === "checkout");
    if (!order.paid) {
      const ackedCheckout = checkouts.find(certain);
      if (ackedCheckout !== undefined) fail(`checkout of order ${orderId} was acknowledged but the order is not paid`, [ackedCheckout]);
      continue;
    }
    const tried = checkouts.filter(attempted);
    const payer = payerOf(order);
    if (tried.length === 0 || payer === undefined) {
      fail(`order ${orderId} is paid${payer === undefined ? " by no single actor" : ""} but no checkout of it was attempted`, checkouts);
      continue;
    }
    const from = Math.min(...tried.map((invocation) => invocation.invokedAt));
    const acks = checkouts.filter((invocation) => invocation.outcome === "ok").map((invocation) => invocation.completedAt!);
    const ackedAt = acks.length === 0 ? undefined : Math.min(...acks);
    const common = { actor: payer, certain: true, from, ackedAt, invocations: tried.map((invocation) => invocation.index) };
    addEffect({ key: `u:${order.userId}`, delta: -order.totalCost, ...common });
    const quantities = new Map<string, number>();
    for (const [itemId, quantity] of order.lines) quantities.set(itemId, (quantities.get(itemId) ?? 0) + quantity);
    for (const [itemId, quantity] of quantities) addEffect({ key: `i:${itemId}`, delta: -quantity, ...common });
    void context;
  }
  return violations;
}

/**
 * A checkout run by an incarnation that then lost its disk, of an order that does
 * not end paid: the paid order can be lost with every disk that held it while a
 * user or item state that carries its charges lives on at a replica that kept its
 * disk (that state changed again there and travelled alone). So the charges it
 * may have taken stay in the ledger, each anywhere from nothing to all of it
 * (what every attempted line could have cost). DESIGN.md: what a lost incarnation
 * acknowledged can be lost; the README says so.
 */
function addLostCheckouts(
  invocations: readonly Invocation[],
  finalUserId: string | undefined,
  initial: readonly OrderLine[],
  context: HistoryContext,
  attempted: (invocation: Invocation) => boolean,
  prices: ReadonlyMap<string, number>,
  addEffect: (effect: Effect) => void,
): void {
  // A checkout runs at the replica it was sent to, or at the one it was handed to (the token's holder).
  const lostRunners: { readonly actor: Actor; readonly invocation: Invocation }[] = [];
  for (const invocation of invocations) {
    if (invocation.op.f !== "checkout" || !attempted(invocation)) continue;
    const runners = new Set([invocation.actor, ...(context.checkoutsHandedTo?.get(invocation.op.order) ?? [])]);
    for (const actor of runners) if (context.lostActors.has(actor)) lostRunners.push({ actor, invocation });
  }
  if (lostRunners.length === 0) return;
  const create = invocations.find((invocation) => invocation.op.f === "createOrder");
  const userId = finalUserId ?? (create?.op.f === "createOrder" ? create.op.user : undefined);
  const quantities = new Map<string, number>();
  for (const [item, quantity] of initial) quantities.set(item, (quantities.get(item) ?? 0) + quantity);
  for (const invocation of invocations) {
    if (invocation.op.f === "addItem" && attempted(invocation))
      quantities.set(invocation.op.item, (quantities.get(invocation.op.item) ?? 0) + invocation.op.quantity);
  }
  let costMost = 0;
  for (const [itemId, quantity] of quantities) costMost += quantity * (prices.get(itemId) ?? 0);
  for (const actor of new Set(lostRunners.map((runner) => runner.actor))) {
    const mine = lostRunners.filter((runner) => runner.actor === actor).map((runner) => runner.invocation);
    const common = {
      actor,
      certain: false,
      from: Math.min(...mine.map((invocation) => invocation.invokedAt)),
      ackedAt: undefined,
      invocations: mine.map((invocation) => invocation.index),
      upTo: true,
    };
    if (userId !== undefined && costMost > 0) addEffect({ key: `u:${userId}`, delta: -costMost, ...common });
    for (const [itemId, quantity] of quantities) addEffect({ key: `i:${itemId}`, delta: -quantity, ...common });
  }
}

/** G2: each actor's increments and decrements of each counter are its acknowledged changes plus some of its unknown ones. */
function checkFinalCounters(
  all: readonly Invocation[],
  final: ShopState,
  effects: ReadonlyMap<string, readonly Effect[]>,
  certain: (invocation: Invocation) => boolean,
): Violation[] {
  const violations: Violation[] = [];
  for (const invocation of all) {
    const op = invocation.op;
    if (!certain(invocation)) continue;
    if (op.f === "createItem" && final.item(op.item) === undefined) {
      violations.push({ message: `item ${op.item} was created (acknowledged) but is gone`, invocations: [invocation.index], keys: [`i:${op.item}`] });
    }
    if (op.f === "createUser" && final.user(op.user) === undefined) {
      violations.push({ message: `user ${op.user} was created (acknowledged) but is gone`, invocations: [invocation.index], keys: [`u:${op.user}`] });
    }
    if (op.f === "batchInitItems" || op.f === "batchInitUsers" || op.f === "batchInitOrders") {
      const lookup = op.f === "batchInitItems" ? final.item.bind(final) : op.f === "batchInitUsers" ? final.user.bind(final) : final.order.bind(final);
      const gone = Array.from({ length: op.count }, (_, index) => String(index)).filter((id) => lookup(id) === undefined);
      if (gone.length > 0)
        violations.push({ message: `${op.f} was acknowledged but keys ${gone.join(", ")} are gone`, invocations: [invocation.index], keys: [] });
    }
  }
  const counters: [string, BoundedCounter][] = [
    ...[...final.itemEntries()].map(([id, item]): [string, BoundedCounter] => [`i:${id}`, item.stock]),
    ...[...final.userEntries()].map(([id, user]): [string, BoundedCounter] => [`u:${id}`, user.credit]),
  ];
  for (const [key, counter] of counters) {
    const list = effects.get(key) ?? [];
    const actors = new Set<Actor>([...counter.increments.keys(), ...counter.decrements.keys(), ...list.map((effect) => effect.actor)]);
    for (const actor of actors) {
      for (const sign of [1, -1] as const) {
        const mine = list.filter((effect) => effect.actor === actor && Math.sign(effect.delta) === sign);
        const recorded = (sign === 1 ? counter.increments : counter.decrements).get(actor) ?? 0;
        const sure = mine.filter((effect) => effect.certain).reduce((sum, effect) => sum + Math.abs(effect.delta), 0);
        const maybe = mine.filter((effect) => !effect.certain && effect.upTo !== true).map((effect) => Math.abs(effect.delta));
        const partlyMost = mine.filter((effect) => effect.upTo === true).reduce((sum, effect) => sum + Math.abs(effect.delta), 0);
        const explained = [...subsetSums(maybe)].some((sum) => sum <= recorded - sure && recorded - sure <= sum + partlyMost);
        if (!explained) {
          violations.push({
            message: `${key}: ${actor} ${sign === 1 ? "added" : "took"} ${recorded} in the end, but its acknowledged changes make ${sure}${maybe.length > 0 ? ` and its unknown ones [${maybe.join(", ")}]` : ""}${partlyMost > 0 ? `, plus up to ${partlyMost} by checkouts whose paid order was lost with its disk` : ""}`,
            invocations: mine.flatMap((effect) => effect.invocations),
            keys: [key],
          });
        }
      }
    }
  }
  return violations;
}

/**
 * Every read lies between what must be visible and what may be: everything
 * acknowledged by the reading incarnation itself (its own writes survive its
 * restarts), and, once the replicas have been connected for `settleMs`,
 * everything acknowledged anywhere (G6); never anything that failed (G2).
 */
function checkReads(
  all: readonly Invocation[],
  context: HistoryContext,
  effects: ReadonlyMap<string, readonly Effect[]>,
  certain: (invocation: Invocation) => boolean,
  attempted: (invocation: Invocation) => boolean,
): Violation[] {
  const violations: Violation[] = [];
  const creates = new Map<string, Invocation>();
  for (const invocation of all) {
    const op = invocation.op;
    if (op.f === "createItem") creates.set(`i:${op.item}`, invocation);
    if (op.f === "createUser") creates.set(`u:${op.user}`, invocation);
    if (op.f === "createOrder") creates.set(`o:${op.order}`, invocation);
  }
  for (const read of all) {
    const op = read.op;
    if (read.outcome !== "ok" || (op.f !== "readItem" && op.f !== "readUser" && op.f !== "readOrder")) continue;
    const value = read.value!;
    const key = op.f === "readItem" ? `i:${op.item}` : op.f === "readUser" ? `u:${op.user}` : `o:${op.order}`;
    const invokedAt = read.invokedAt;
    const completedAt = read.completedAt!;
    const strict = context.connectedWindows.some(([from, to]) => from + context.settleMs <= invokedAt && completedAt <= to);
    const mustSee = (actor: Actor, ackedAt: number | undefined) => ackedAt !== undefined && ackedAt < invokedAt && (strict || actor === read.actor);
    const fail = (message: string, shown: readonly number[]) =>
      violations.push({
        message: `${strict ? "connected " : ""}read #${read.index} at ${read.replicaId}: ${message}`,
        invocations: [read.index, ...shown],
        keys: [key],
      });
    if (value.kind === "not-found") {
      const create = creates.get(key);
      if (create !== undefined && certain(create) && mustSee(create.actor, create.completedAt))
        fail(`${key} not found, though its creation #${create.index} was acknowledged before`, [create.index]);
      continue;
    }
    if (value.kind === "item" || value.kind === "user") {
      const observed = value.kind === "item" ? value.stock : value.credit;
      let lower = 0;
      let upper = 0;
      const lowerBy: number[] = [];
      for (const effect of effects.get(key) ?? []) {
        const happenedSurely = effect.certain && mustSee(effect.actor, effect.ackedAt);
        const mayHaveHappened = effect.from < completedAt;
        if (effect.delta > 0) {
          if (happenedSurely) {
            lower += effect.delta;
            lowerBy.push(...effect.invocations);
          }
          if (mayHaveHappened) upper += effect.delta;
        } else {
          if (mayHaveHappened) lower += effect.delta;
          if (happenedSurely) upper += effect.delta;
        }
      }
      if (observed < lower || observed > upper) fail(`${key} is ${observed}, outside [${lower}, ${upper}]`, lowerBy);
      continue;
    }
    const orderId = key.slice(2);
    const mine = all.filter((invocation) => (invocation.op.f === "addItem" || invocation.op.f === "checkout") && invocation.op.order === orderId);
    const adds = mine.filter((invocation) => invocation.op.f === "addItem");
    const lines = value.lines.map(([item, quantity]) => `${item}x${quantity}`);
    const start = (batchStart(all, orderId, completedAt)?.lines ?? []).map(([item, quantity]) => `${item}x${quantity}`);
    const possible = [...start, ...adds.filter((invocation) => attempted(invocation) && invocation.invokedAt < completedAt).map(lineOf)];
    const seen = [...start, ...adds.filter((invocation) => certain(invocation) && mustSee(invocation.actor, invocation.completedAt)).map(lineOf)];
    if (!isSubMultiset(lines, possible))
      fail(
        `order has [${lines.join(" ")}], more than was attempted [${possible.join(" ")}]`,
        mine.map((invocation) => invocation.index),
      );
    if (!isSubMultiset(seen, lines))
      fail(
        `order has [${lines.join(" ")}], missing acknowledged [${seen.join(" ")}]`,
        mine.map((invocation) => invocation.index),
      );
    const checkouts = mine.filter((invocation) => invocation.op.f === "checkout");
    if (value.paid && !checkouts.some((invocation) => attempted(invocation) && invocation.invokedAt < completedAt))
      fail("order is paid before any checkout of it", []);
    const paidSurely = checkouts.find((invocation) => certain(invocation) && mustSee(invocation.actor, invocation.completedAt));
    if (!value.paid && paidSurely !== undefined) fail(`order is unpaid after checkout #${paidSurely.index} was acknowledged`, [paidSurely.index]);
  }
  return violations;
}

function lineOf(invocation: Invocation): string {
  const op = invocation.op;
  return op.f === "addItem" ? `${op.item}x${op.quantity}` : "";
}

function isSubMultiset(small: readonly string[], large: readonly string[]): boolean {
  const counts = new Map<string, number>();
  for (const value of large) counts.set(value, (counts.get(value) ?? 0) + 1);
  for (const value of small) {
    const left = counts.get(value) ?? 0;
    if (left === 0) return false;
    counts.set(value, left - 1);
  }
  return true;
}

/** Every sum of a subset of `values` (values are small, so the set stays small). */
export function subsetSums(values: readonly number[]): Set<number> {
  let sums = new Set<number>([0]);
  for (const value of values) {
    const next = new Set(sums);
    for (const sum of sums) next.add(sum + value);
    sums = next;
  }
  return sums;
}

export function describeViolations(violations: readonly Violation[], history: History, linesMax: number): string {
  const lines: string[] = violations.slice(0, 10).map((violation) => `  - ${violation.message}`);
  if (violations.length > 10) lines.push(`  … and ${violations.length - 10} more`);
  const keys = new Set(violations.flatMap((violation) => violation.keys));
  const shown = new Set(violations.flatMap((violation) => violation.invocations));
  const relevant = history.invocations.filter((invocation) => shown.has(invocation.index) || keysTouch(invocation, keys));
  lines.push(
    `history of ${[...keys].join(", ") || "the run"} (${relevant.length} of ${history.invocations.length} operations${relevant.length > linesMax ? `, last ${linesMax}` : ""}):`,
  );
  for (const invocation of relevant.slice(-linesMax)) lines.push(`  ${describeInvocation(invocation)}`);
  return lines.join("\n");
}

function keysTouch(invocation: Invocation, keys: ReadonlySet<string>): boolean {
  const op = invocation.op;
  const touched = "item" in op ? [`i:${op.item}`] : "user" in op ? [`u:${op.user}`] : [];
  if ("order" in op) touched.push(`o:${op.order}`);
  return touched.some((key) => keys.has(key));
}
