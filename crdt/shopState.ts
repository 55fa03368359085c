// The whole shop as seen by one replica: a map of CRDT states per kind, and the
// operations of API.md on them. Pure: no I/O, no clock; ids and randomness come
// from the caller. Every operation either refuses and changes nothing, or applies
// completely and reports each changed key through `onChange` in the same
// synchronous step, so a caller can commit them as one batch.
import {
  type BatchKind,
  type BatchRecord,
  BatchRecords,
  batchItem,
  batchOrder,
  batchUser,
  decodeBatchRecords,
  encodeBatchRecords,
  handOut,
} from "./batchRecord.js";
import { KeptStates } from "./keptStates.js";
import { type Actor, type BoundedCounter, type CounterRefusal, assert } from "./boundedCounter.js";
import { decodeItem, decodeOrder, decodeUser, encodeItem, encodeOrder, encodeUser, orderLinesMax } from "./codec.js";
import { DecodeError } from "./codec.js";
import { type Generation, type GenerationalState, compareGenerations, generationZero, mergeGenerational, sameGeneration } from "./generation.js";
import { ItemState } from "./itemState.js";
import { OrderState } from "./orderState.js";
import { UserState } from "./userState.js";
import { type WrittenStates, WrittenStatesInMemory } from "./writtenStates.js";

/** "leaving": this replica is leaving the cluster (or has left) and takes no more writes. */
export const refusalReasons = ["not-found", "bad-reference", "insufficient", "paid", "overflow", "rights-elsewhere", "leaving"] as const;
export type RefusalReason = (typeof refusalReasons)[number];

export interface Refusal {
  readonly reason: RefusalReason;
  readonly message: string;
  /** With "rights-elsewhere": what this replica must be handed before it can try again. */
  readonly missing?: readonly Need[];
}

/** An amount of rights on the counter of a state: stock of an item, credit of a user, an order's token. */
export type Need = readonly [key: StateKey, amount: number];

/** "local": made by this replica's own operation; "merged": received from disk or a peer. */
export type ChangeOrigin = "local" | "merged";

/** A state's key: a one-letter kind, a colon, the id. Also its LevelDB key. */
export type StateKey = string;
export const itemKey = (id: string): StateKey => `i:${id}`;
export const userKey = (id: string): StateKey => `u:${id}`;
export const orderKey = (id: string): StateKey => `o:${id}`;
/** The batch_init records of a kind (crdt/batchRecord.ts): one key each. */
export const batchKey = (kind: BatchKind): StateKey => `b:${kind}`;

export interface ItemView {
  stock: number;
  price: number;
}
export interface UserView {
  user_id: string;
  credit: number;
}
export interface OrderView {
  order_id: string;
  paid: boolean;
  items: [string, number][];
  user_id: string;
  total_cost: number;
}

/**
 * What a state received from a peer may carry, beyond being valid (see mergeEncoded).
 * The caller knows the cluster and the time; ShopState stays pure.
 */
export interface PeerStatePolicy {
  /** May rows of `actor` that this replica does not hold yet come from a peer? */
  actorAdmitted(actor: Actor): boolean;
  /** The largest generation counter a peer's state may carry: the local clock plus the skew allowed. */
  generationCounterMax(): number;
  /** An actor whose rights were released to the others: no later change of its own is taken (none, if absent). */
  released?(actor: Actor): boolean;
}

/**
 * Generation counters are milliseconds of a hybrid clock (see nextGeneration): this
 * one is in the year 37,000, and leaves 2^52 batch_inits of room below
 * Number.MAX_SAFE_INTEGER. The bound when the caller gives no clock.
 */
export const generationCounterCeiling = 2 ** 50;

/** Admits every actor; bounds generations by generationCounterCeiling only. */
export const openPeerStatePolicy: PeerStatePolicy = {
  actorAdmitted: () => true,
  generationCounterMax: () => generationCounterCeiling,
  released: () => false,
};

/**
 * A grant gives what was asked plus at most this much of the donor's spare rights
 * (and at most half of them). Counter rows only grow: every unit moved counts
 * forever in the row of the replica that handed it on, so a generous grant of a
 * huge balance, moved back and forth, would fill a row in a few moves.
 */
export const rightsGrantedBeyondNeedMax = 2 ** 32;

export class ShopState {
  readonly batches = { i: new BatchRecords("i"), u: new BatchRecords("u"), o: new BatchRecords("o") } as const;
  // Every key made by create, and the keys of a batch_init that changed since (or were
  // merged); the others are computed from `batches` (crdt/keptStates.ts).
  private readonly items: KeptStates<ItemState>;
  private readonly users: KeptStates<UserState>;
  private readonly orders: KeptStates<OrderState>;
  /** Keys changed since a batch last took them to write: the bytes of that batch are not their state (settle). */
  private readonly unsettled = new Set<StateKey>();
  /** Lamport clock of generations: above every generation seen. */
  private generationCounter = 0;
  /**
   * Where new rights go: this actor first (unless it is leaving the cluster), then
   * the reachable peers' actors. New stock and credit are split over them as they
   * are made, so checkouts anywhere find rights at home.
   */
  spreadActors: readonly Actor[];
  /** Checks of states received from peers; the caller sets it to the cluster it knows. */
  peerStatePolicy: PeerStatePolicy = openPeerStatePolicy;

  constructor(
    readonly actor: Actor,
    /** `bytes`: the received encoding, when the state kept is exactly the one received. */
    private readonly onChange: (key: StateKey, origin: ChangeOrigin, bytes?: Uint8Array) => void,
    /** Where written states are read back from: the replica's database, or memory (crdt/writtenStates.ts). */
    written: WrittenStates = new WrittenStatesInMemory(),
  ) {
    this.spreadActors = [actor];
    this.items = new KeptStates(this.batches.i, batchItem, decodeItem, written);
    this.users = new KeptStates(this.batches.u, batchUser, decodeUser, written);
    this.orders = new KeptStates(this.batches.o, batchOrder, decodeOrder, written);
  }

  /** Report a changed key: it is not settled (see settle) until a batch takes it again. */
  private changed(key: StateKey, origin: ChangeOrigin, bytes?: Uint8Array): void {
    this.unsettled.add(key);
    this.onChange(key, origin, bytes);
  }

  /**
   * These encodings were written (a durable batch): each kept state that did not
   * change since it was encoded is read back from where it was written from now on.
   */
  settle(written: readonly { readonly key: StateKey; readonly bytes: Uint8Array }[]): void {
    for (const { key, bytes } of written) {
      if (this.unsettled.has(key) || key[0] === "b") continue;
      this.keptOf(key[0])?.settle(key.slice(2), bytes);
    }
  }

  /** The states of a kind, by its key letter ("i", "u", "o"). */
  private keptOf(kind: string | undefined): KeptStates<ItemState> | KeptStates<UserState> | KeptStates<OrderState> | undefined {
    return kind === "i" ? this.items : kind === "u" ? this.users : kind === "o" ? this.orders : undefined;
  }

  // ---- states as they are now (not to be changed by the caller)

  item(id: string): ItemState | undefined {
    return this.items.current(id);
  }

  user(id: string): UserState | undefined {
    return this.users.current(id);
  }

  order(id: string): OrderState | undefined {
    return this.orders.current(id);
  }

  /** Every item as it is now, batch keys included. */
  itemEntries(): Generator<[string, ItemState]> {
    return this.items.entries();
  }

  userEntries(): Generator<[string, UserState]> {
    return this.users.entries();
  }

  orderEntries(): Generator<[string, OrderState]> {
    return this.orders.entries();
  }

  /** Every key to send for a whole copy of this state: batch records first, then the states kept (not computed). */
  *keptKeys(): Generator<StateKey> {
    for (const kind of ["i", "u", "o"] as const) if (this.batches[kind].all.length > 0) yield batchKey(kind);
    for (const id of this.items.keptIds()) yield itemKey(id);
    for (const id of this.users.keptIds()) yield userKey(id);
    for (const id of this.orders.keptIds()) yield orderKey(id);
  }

  /** How many keys of a kind exist, batch keys included. */
  stateCount(kind: BatchKind): number {
    return this.keptOf(kind)!.count();
  }

  // ---- reads

  findItem(id: string): ItemView | Refusal {
    const item = this.item(id);
    if (item === undefined) return notFound("item", id);
    return { stock: item.stock.value(), price: item.price };
  }

  findUser(id: string): UserView | Refusal {
    const user = this.user(id);
    if (user === undefined) return notFound("user", id);
    return { user_id: id, credit: user.credit.value() };
  }

  findOrder(id: string): OrderView | Refusal {
    const order = this.order(id);
    if (order === undefined) return notFound("order", id);
    return {
      order_id: id,
      paid: order.paid,
      items: order.lines.map(([itemId, quantity]) => [itemId, quantity]),
      user_id: order.userId,
      total_cost: order.totalCost,
    };
  }

  // ---- stock

  createItem(id: string, price: number): void {
    assert(!this.items.has(id), `item ${id} is new`);
    this.items.keep(id, new ItemState(generationZero, price));
    this.changed(itemKey(id), "local");
  }

  addStock(id: string, amount: number): Refusal | null {
    return this.addTo(itemKey(id), this.items.toChange(id)?.stock, amount, "item", "stock");
  }

  subtractStock(id: string, amount: number): Refusal | null {
    return this.takeFrom(itemKey(id), this.items.toChange(id)?.stock, amount, "item", "stock");
  }

  /** `wallClockMs`: the caller's clock, so that a later batch_init wins (see nextGeneration). */
  batchInitItems(count: number, startingStock: number, price: number, wallClockMs = 0): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    return this.addBatch("i", { generation, count, spreadActors: this.spreadActors, amount: startingStock, price, itemCount: 0, userCount: 0, seed: 0 });
  }

  // ---- payment

  createUser(id: string): void {
    assert(!this.users.has(id), `user ${id} is new`);
    this.users.keep(id, new UserState(generationZero));
    this.changed(userKey(id), "local");
  }

  addFunds(id: string, amount: number): Refusal | null {
    return this.addTo(userKey(id), this.users.toChange(id)?.credit, amount, "user", "credit");
  }

  pay(id: string, amount: number): Refusal | null {
    return this.takeFrom(userKey(id), this.users.toChange(id)?.credit, amount, "user", "credit");
  }

  /** add or add_funds: new rights spread as they are made. */
  private addTo(key: StateKey, counter: BoundedCounter | undefined, amount: number, kind: string, what: string): Refusal | null {
    const id = key.slice(2);
    if (counter === undefined) return notFound(kind, id);
    const refusal = this.incrementSpread(counter, amount, 0);
    if (refusal !== null) return counterRefusal(refusal, `${what} of ${kind} ${id}`, amount, counter.value());
    this.changed(key, "local");
    return null;
  }

  /** subtract or pay: this replica's own rights, or a refusal that says what is missing. */
  private takeFrom(key: StateKey, counter: BoundedCounter | undefined, amount: number, kind: string, what: string): Refusal | null {
    const id = key.slice(2);
    if (counter === undefined) return notFound(kind, id);
    const shortage = this.shortage(counter, key, amount, `${what} of ${kind} ${id}`);
    if (shortage !== null) return shortage;
    assert(counter.decrement(this.actor, amount) === null, "checked rights cover the decrement");
    this.changed(key, "local");
    return null;
  }

  batchInitUsers(count: number, startingMoney: number, wallClockMs = 0): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    return this.addBatch("u", { generation, count, spreadActors: this.spreadActors, amount: startingMoney, price: 0, itemCount: 0, userCount: 0, seed: 0 });
  }

  // ---- orders

  createOrder(id: string, userId: string): Refusal | null {
    assert(!this.orders.has(id), `order ${id} is new`);
    if (this.user(userId) === undefined) return notFound("user", userId);
    this.orders.keep(id, this.newOrder(userId));
    this.changed(orderKey(id), "local");
    return null;
  }

  /** `randomIndex(n)` gives an integer in [0, n): it draws the seed of the order lines. */
  batchInitOrders(count: number, itemCount: number, userCount: number, itemPrice: number, randomIndex: (n: number) => number, wallClockMs = 0): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    const seed = randomIndex(2 ** 32);
    return this.addBatch("o", { generation, count, spreadActors: this.spreadActors, amount: 0, price: itemPrice, itemCount, userCount, seed });
  }

  /** Record a batch_init: its keys now read as the record says until each changes. */
  private addBatch(kind: BatchKind, record: BatchRecord): Refusal | null {
    if (record.count === 0) return null;
    try {
      this.batches[kind].merge([record]);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      return { reason: "overflow", message: `too many batch_init sizes of one kind are in use; one of at least the largest n replaces them` };
    }
    this.changed(batchKey(kind), "local");
    return null;
  }

  addItem(orderId: string, itemId: string, quantity: number): Refusal | null {
    const order = this.orders.toChange(orderId);
    if (order === undefined) return notFound("order", orderId);
    const item = this.item(itemId);
    if (item === undefined) return { reason: "bad-reference", message: `item ${itemId} does not exist` };
    if (order.paid) return { reason: "paid", message: `order ${orderId} is already paid` };
    if (!order.holdsToken(this.actor)) return tokenElsewhere(orderId);
    if (order.lines.length >= orderLinesMax) {
      return { reason: "overflow", message: `order ${orderId} already has the most lines allowed (${orderLinesMax})` };
    }
    const totalCost = order.totalCost + quantity * item.price;
    if (!Number.isSafeInteger(totalCost)) {
      return { reason: "overflow", message: `total cost of order ${orderId} would pass ${Number.MAX_SAFE_INTEGER}` };
    }
    order.lines.push([itemId, quantity]);
    order.totalCost = totalCost;
    order.version += 1;
    this.changed(orderKey(orderId), "local");
    return null;
  }

  /**
   * All or nothing in one synchronous step: every item's stock, the user's credit
   * and the order token, or nothing. A paid order is answered as done again.
   */
  checkout(orderId: string): Refusal | null {
    // Read, not kept: a refused or repeated checkout leaves a written state unheld.
    const order = this.orders.current(orderId);
    if (order === undefined) return notFound("order", orderId);
    if (order.paid) return null;
    const plan = this.planCheckout(orderId, order);
    if (!(plan instanceof CheckoutPlan)) return plan;
    for (const [itemId, quantity] of plan.quantities) {
      const item = plan.items.get(itemId)!;
      assert(item.stock.decrement(this.actor, quantity) === null, "planned stock is held");
      this.items.keep(itemId, item);
      this.changed(itemKey(itemId), "local");
    }
    assert(plan.user.credit.decrement(this.actor, order.totalCost) === null, "planned credit is held");
    this.users.keep(order.userId, plan.user);
    this.changed(userKey(order.userId), "local");
    assert(order.token.decrement(this.actor, 1) === null && order.paid, "the held token pays the order");
    this.orders.keep(orderId, order);
    this.changed(orderKey(orderId), "local");
    return null;
  }

  /** What a checkout would take, or why it cannot happen here and now. */
  private planCheckout(orderId: string, order: OrderState): CheckoutPlan | Refusal {
    const user = this.users.current(order.userId);
    if (user === undefined) return { reason: "bad-reference", message: `user ${order.userId} of order ${orderId} does not exist` };
    const plan = new CheckoutPlan(user);
    for (const [itemId, quantity] of order.lines) {
      // The same item on two lines: one state, read once, takes the summed quantity.
      const item = plan.items.get(itemId) ?? this.items.current(itemId);
      if (item === undefined) return { reason: "bad-reference", message: `item ${itemId} of order ${orderId} does not exist` };
      plan.items.set(itemId, item);
      const summed = (plan.quantities.get(itemId) ?? 0) + quantity;
      if (!Number.isSafeInteger(summed)) {
        return { reason: "overflow", message: `quantity of item ${itemId} in order ${orderId} passes ${Number.MAX_SAFE_INTEGER}` };
      }
      plan.quantities.set(itemId, summed);
    }
    const short: string[] = [];
    const missing: Need[] = [];
    for (const [itemId, quantity] of plan.quantities) {
      this.collectShortage(plan.items.get(itemId)!.stock, itemKey(itemId), quantity, `stock of item ${itemId}`, short, missing);
    }
    this.collectShortage(user.credit, userKey(order.userId), order.totalCost, `credit of user ${order.userId}`, short, missing);
    if (short.length > 0) return { reason: "insufficient", message: `not enough ${short.join(", ")}` };
    if (!order.holdsToken(this.actor)) missing.push([orderKey(orderId), 1]);
    if (missing.length > 0) return rightsElsewhere(`order ${orderId}`, missing);
    return plan;
  }

  /**
   * Null if this actor's rights cover `amount`; "insufficient" if even the whole
   * value (as this replica sees it) does not; else "rights-elsewhere" with the need.
   */
  private shortage(counter: BoundedCounter, key: StateKey, amount: number, what: string): Refusal | null {
    const short: string[] = [];
    const missing: Need[] = [];
    this.collectShortage(counter, key, amount, what, short, missing);
    if (short.length > 0) return { reason: "insufficient", message: `not enough ${short.join(", ")}` };
    if (missing.length > 0) return rightsElsewhere(what, missing);
    return null;
  }

  private collectShortage(counter: BoundedCounter, key: StateKey, amount: number, what: string, short: string[], missing: Need[]): void {
    const rights = counter.rights(this.actor);
    if (rights >= amount) return;
    const value = counter.value();
    if (value < amount) short.push(`${what} (needs ${amount}, has ${value})`);
    else missing.push([key, amount - rights]);
  }

  /**
   * A new order whose token goes to `spreadActors[0]`: this replica, where the
   * order's next steps likely come, unless it is leaving (then a peer).
   */
  private newOrder(userId: string): OrderState {
    const order = OrderState.create(generationZero, userId, this.actor);
    const holder = this.spreadActors[0]!;
    if (holder !== this.actor) assert(order.token.transfer(this.actor, holder, 1) === null, "a fresh token moves");
    return order;
  }

  /**
   * Increment at this actor and split the new rights over `spreadActors` in the
   * same step; `rotation` picks who gets the remainder, so single units spread too.
   */
  private incrementSpread(counter: BoundedCounter, amount: number, rotation: number): CounterRefusal | null {
    const refusal = counter.increment(this.actor, amount);
    if (refusal !== null) return refusal;
    handOut(counter, this.actor, amount, this.spreadActors, rotation);
    return null;
  }

  // ---- rights between replicas

  /** The counter that holds rights for `key` (stock, credit, or the order token), to read. */
  counterAt(key: StateKey): BoundedCounter | undefined {
    return this.keptOf(key[0])?.current(key.slice(2))?.counter();
  }

  /** The counter that holds rights for `key`, to change: a batch key is kept from now on. */
  private counterToChange(key: StateKey): BoundedCounter | undefined {
    return this.keptOf(key[0])?.toChange(key.slice(2))?.counter();
  }

  /** Keys of every state whose counter gives this actor rights, as they are now. */
  keysWithRights(): Generator<StateKey> {
    return this.keysWithRightsOf(this.actor);
  }

  /** Hand all of this actor's rights on `key` to `targets` (a replica leaving for good). */
  handOverAll(key: StateKey, targets: readonly Actor[], rotation: number): boolean {
    if (targets.includes(this.actor)) return false;
    return this.moveAllRights(this.actor, key, targets, rotation);
  }

  /** Keys of every state whose counter gives `actor` rights (this replica's, or a released actor's). */
  *keysWithRightsOf(actor: Actor): Generator<StateKey> {
    for (const id of this.items.idsHolding(actor)) yield itemKey(id);
    for (const id of this.users.idsHolding(actor)) yield userKey(id);
    for (const id of this.orders.idsHolding(actor)) yield orderKey(id);
  }

  /**
   * Release the rights of `dead` (an incarnation that lost its disk, or a member gone
   * for good) on `key` to `targets`: written into its row by this replica, its heir,
   * as this replica sees them. Only the operator decides it (Replica.release), once.
   */
  releaseAll(dead: Actor, key: StateKey, targets: readonly Actor[], rotation: number): boolean {
    if (dead === this.actor || targets.includes(dead)) return false;
    return this.moveAllRights(dead, key, targets, rotation);
  }

  private moveAllRights(from: Actor, key: StateKey, targets: readonly Actor[], rotation: number): boolean {
    if ((this.counterAt(key)?.rights(from) ?? 0) <= 0 || targets.length === 0) return false;
    const counter = this.counterToChange(key)!;
    const rights = counter.rights(from);
    const handed = handOut(counter, from, rights, targets, rotation);
    // Only rows with no room left keep rights back (the leave reports them as still held).
    assert(counter.rights(from) === rights - handed, "a hand-over moves exactly what it hands");
    if (handed === 0) return false;
    this.changed(key, "local");
    return true;
  }

  /**
   * Hand rights to `requester`, generously: per need, what is asked or half of
   * what this actor can spare, whichever is more, but never more than is asked
   * plus rightsGrantedBeyondNeedMax, nor past a safe integer in this actor's row.
   * `spareOf(key, rights)` says how much of its rights this actor can spare.
   * Returns what was handed over.
   */
  grantRights(requester: Actor, needs: readonly Need[], spareOf: (key: StateKey, rights: number) => number): Need[] {
    const granted: Need[] = [];
    if (requester === this.actor) return granted;
    for (const [key, amount] of needs) {
      if ((this.counterAt(key)?.rights(this.actor) ?? 0) <= 0) continue;
      const counter = this.counterToChange(key)!;
      const rights = counter.rights(this.actor);
      const spare = Math.min(rights, spareOf(key, rights));
      const generous = Math.min(Math.ceil(spare / 2), rightsGrantedBeyondNeedMax);
      const given = Math.min(spare, Math.max(amount, generous), counter.transferRoom(this.actor, requester));
      if (given <= 0) continue;
      assert(counter.transfer(this.actor, requester, given) === null, "spare rights can be handed on");
      this.changed(key, "local");
      granted.push([key, given]);
    }
    return granted;
  }

  // ---- states from disk or peers

  /**
   * Merge a state received from a peer, or read from this replica's own disk;
   * reports the key through onChange and returns true if it changed. A state that
   * is not valid is a DecodeError; so is one that would be invalid merged with
   * ours, and a peer's state that holds more of this replica's own row than this
   * replica wrote (a ForgedStateError).
   */
  mergeEncoded(key: StateKey, bytes: Uint8Array, from: "peer" | "disk" = "peer"): boolean {
    const id = key.slice(2);
    let merged: { changed: boolean; keptIncoming: boolean };
    switch (key[0]) {
      case "i":
        merged = this.mergeInto(this.items, id, decodeItem(bytes), bytes, from);
        break;
      case "u":
        merged = this.mergeInto(this.users, id, decodeUser(bytes), bytes, from);
        break;
      case "o":
        merged = this.mergeInto(this.orders, id, decodeOrder(bytes), bytes, from);
        break;
      case "b":
        merged = { changed: this.mergeBatches(batchKindOf(key), bytes, from), keptIncoming: false };
        break;
      default:
        throw new RangeError(`unknown state key ${key}`);
    }
    if (merged.changed) {
      if (merged.keptIncoming) this.changed(key, "merged", bytes);
      else this.changed(key, "merged");
      // Read from disk: what is stored is its state already, nothing to write or settle.
      if (from === "disk") this.unsettled.delete(key);
    }
    return merged.changed;
  }

  /**
   * The bytes a batch writes now for `key` (group commit, one batch in flight at a
   * time): `received`, a peer's bytes that are exactly its state, or its encoding.
   * Once that batch is durable, the key is settled to them unless it changed since.
   */
  encodeToWrite(key: StateKey, received: Uint8Array | undefined): Uint8Array {
    this.unsettled.delete(key);
    return received ?? this.encode(key);
  }

  /** The state of `key` as it is now (a batch key that never changed too). */
  encode(key: StateKey): Uint8Array {
    if (key[0] === "b") return encodeBatchRecords(this.batches[batchKindOf(key)]);
    const state = this.keptOf(key[0])?.current(key.slice(2));
    assert(state !== undefined, `state ${key} exists to be encoded`);
    if (state instanceof ItemState) return encodeItem(state);
    if (state instanceof UserState) return encodeUser(state);
    return encodeOrder(state);
  }

  /**
   * Batch records from disk or a peer. A peer's record that would answer keys here
   * is checked as a state would be: its generation bounded, its maker an admitted
   * actor that is neither released nor this replica (only this replica makes its
   * own records, and keeps each until a newer one answers all its keys).
   */
  private mergeBatches(kind: BatchKind, bytes: Uint8Array, from: "peer" | "disk"): boolean {
    const records = this.batches[kind];
    const incoming = decodeBatchRecords(kind, bytes);
    for (const record of incoming) {
      if (from === "disk" || records.covers(record)) continue;
      const maker = record.generation.actor;
      const what = `batch record ${kind} ${record.generation.counter}`;
      this.checkGeneration(batchKey(kind), record.generation);
      if (maker === this.actor) throw new ForgedStateError(`${what} claims to be made by ${this.actor}, which did not make it`);
      if (!this.peerStatePolicy.actorAdmitted(maker)) throw new UnadmittedActorError(`${what} is made by ${maker}, which is not a member's actor`);
      if (this.peerStatePolicy.released?.(maker) === true) throw new ForgedStateError(`${what} is made by ${maker}, whose rights were released`);
    }
    const changed = records.merge(incoming);
    for (const record of incoming) {
      if (record.generation.counter > this.generationCounter) this.generationCounter = record.generation.counter;
    }
    return changed;
  }

  private mergeInto<T extends GenerationalState<T> & { counter(): BoundedCounter; forgedAgainst(local: T, actor: Actor): string | null }>(
    states: KeptStates<T>,
    id: string,
    incoming: T,
    bytes: Uint8Array,
    from: "peer" | "disk",
  ): { changed: boolean; keptIncoming: boolean } {
    const local = from === "disk" ? states.currentAtLoad(id, incoming) : states.current(id);
    if (from === "peer") this.checkGeneration(id, incoming.generation);
    // This replica only sends its own row once it is durable, so no peer can know
    // more of it; an older generation is dropped by the merge and needs no check.
    if (from === "peer" && (local === undefined || compareGenerations(local.generation, incoming.generation) <= 0)) {
      const known = local !== undefined && sameGeneration(local.generation, incoming.generation) ? local.counter() : undefined;
      if (incoming.counter().rowExceeds(this.actor, known)) {
        throw new ForgedStateError(`state ${id} holds more of ${this.actor}'s own row than ${this.actor} wrote`);
      }
      const stranger = this.unadmittedRowOwner(incoming.counter(), known);
      if (stranger !== undefined) throw new UnadmittedActorError(`state ${id} holds new rows of ${stranger}, which is not a member's actor`);
      const zombie = this.releasedChanger(incoming.counter(), known);
      if (zombie !== undefined) throw new ForgedStateError(`state ${id} holds later changes of ${zombie}, whose rights were released`);
      const forgery = local !== undefined && known !== undefined ? incoming.forgedAgainst(local, this.actor) : null;
      if (forgery !== null) throw new ForgedStateError(`state ${id}: ${forgery}`);
    }
    // Two states that are each valid can merge into an invalid one when their sender
    // told two histories of its own row (rights handed to two replicas at once): keep
    // ours, or this replica would store a state it refuses to load, and oversell.
    if (local !== undefined && sameGeneration(local.generation, incoming.generation) && !local.coveredBy(incoming)) {
      const merged = local.counter().clone();
      merged.merge(incoming.counter());
      const invalidity = merged.invalidity();
      if (invalidity !== null) throw new DecodeError(`state ${id} merged with ours would be invalid: ${invalidity}`);
    }
    if (incoming.generation.counter > this.generationCounter) this.generationCounter = incoming.generation.counter;
    const { kept, changed } = mergeGenerational(local, incoming);
    // A batch key that did not change stays computed; one that did is kept from now on.
    if (changed && from === "disk" && kept === incoming) states.keepSettled(id, incoming, bytes);
    else if (changed) states.keep(id, kept);
    return { changed, keptIncoming: kept === incoming };
  }

  /**
   * A peer's generation counter past the policy's bound (our clock plus the skew
   * allowed) is refused: this replica's next batch_init would count on from it, and
   * one near Number.MAX_SAFE_INTEGER would make it mint an unsafe one.
   */
  private checkGeneration(id: string, generation: Generation): void {
    const counterMax = this.peerStatePolicy.generationCounterMax();
    if (generation.counter > counterMax) {
      throw new ForgedStateError(`state ${id} has generation counter ${generation.counter}, past ${counterMax} (our clock plus the skew allowed)`);
    }
  }

  /**
   * The rule for rows of actors the policy does not admit (actors of replicas that
   * are not members): a peer's state is refused if it holds more of such a row than
   * `known` (our state of its generation) does. Rows this replica holds already were
   * admitted when they came, or were written here: states relayed by anti-entropy
   * carry rows of lost incarnations and retired members, and those merge as before.
   * What is refused is new value or rights appearing from nobody (a forged row).
   */
  /** A released actor whose increments or decrements in `incoming` go beyond what this replica knows. */
  private releasedChanger(incoming: BoundedCounter, known: BoundedCounter | undefined): Actor | undefined {
    const released = this.peerStatePolicy.released;
    if (released === undefined) return undefined;
    for (const actor of incoming.increments.keys()) if (released(actor) && incoming.changesExceed(actor, known)) return actor;
    for (const actor of incoming.decrements.keys()) if (released(actor) && incoming.changesExceed(actor, known)) return actor;
    return undefined;
  }

  private unadmittedRowOwner(incoming: BoundedCounter, known: BoundedCounter | undefined): Actor | undefined {
    const owners = new Set<Actor>(incoming.increments.keys());
    for (const actor of incoming.decrements.keys()) owners.add(actor);
    for (const actor of incoming.transfers.keys()) owners.add(actor);
    for (const actor of owners) {
      if (actor !== this.actor && !this.peerStatePolicy.actorAdmitted(actor) && incoming.rowExceeds(actor, known)) return actor;
    }
    return undefined;
  }

  /**
   * A hybrid logical clock: above every generation seen (Lamport), and at least
   * the wall clock, so a batch_init made later in real time wins even at a replica
   * that has not yet heard of an earlier one. Refused (never minted) past a safe
   * integer; peers' counters are bounded on arrival, so only a damaged disk gets here.
   */
  private nextGeneration(wallClockMs: number): Generation | Refusal {
    const counter = Math.max(this.generationCounter + 1, Math.floor(wallClockMs));
    if (!Number.isSafeInteger(counter)) {
      return { reason: "overflow", message: `the next batch_init generation would pass ${Number.MAX_SAFE_INTEGER}` };
    }
    this.generationCounter = counter;
    return { counter, actor: this.actor };
  }
}

/** A peer sent a state that claims changes only this replica could have made. */
export class ForgedStateError extends DecodeError {}

/**
 * A state with rows of an actor that no member (as this replica knows them now)
 * names: forged, or written by a replica that joined and whose entry has not
 * reached this one yet. The replicator holds it until the membership says which.
 */
export class UnadmittedActorError extends ForgedStateError {}

function batchKindOf(key: StateKey): BatchKind {
  const kind = key.slice(2);
  if (kind !== "i" && kind !== "u" && kind !== "o") throw new RangeError(`unknown state key ${key}`);
  return kind;
}

class CheckoutPlan {
  readonly items = new Map<string, ItemState>();
  /** Summed quantity per item. */
  readonly quantities = new Map<string, number>();
  constructor(readonly user: UserState) {}
}

export function isRefusal(value: object | null): value is Refusal {
  return value !== null && "reason" in value;
}

function notFound(kind: string, id: string): Refusal {
  return { reason: "not-found", message: `${kind} ${id} not found` };
}

function tokenElsewhere(orderId: string): Refusal {
  return rightsElsewhere(`the token of order ${orderId}`, [[orderKey(orderId), 1]]);
}

function rightsElsewhere(what: string, missing: Need[]): Refusal {
  return { reason: "rights-elsewhere", message: `rights for ${what} are held by other replicas`, missing };
}

function counterRefusal(refusal: CounterRefusal, what: string, amount: number, value: number): Refusal {
  if (refusal === "overflow") return { reason: "overflow", message: `${what} would pass ${Number.MAX_SAFE_INTEGER}` };
  return { reason: "insufficient", message: `not enough ${what}: asked ${amount}, has ${value}` };
}
