// The whole shop as seen by one replica: a map of CRDT states per kind, and the
// operations of API.md on them. Pure: no I/O, no clock; ids and randomness come
// from the caller. Every operation either refuses and changes nothing, or applies
// completely and reports each changed key through `onChange` in the same
// synchronous step, so a caller can commit them as one batch.
import { type Actor, type BoundedCounter, type CounterRefusal, assert } from "./boundedCounter.js";
import { decodeItem, decodeOrder, decodeUser, encodeItem, encodeOrder, encodeUser, orderLinesMax } from "./codec.js";
import { DecodeError } from "./codec.js";
import { type Generation, type GenerationalState, compareGenerations, generationZero, mergeGenerational, sameGeneration } from "./generation.js";
import { ItemState } from "./itemState.js";
import { OrderState } from "./orderState.js";
import { UserState } from "./userState.js";

export type RefusalReason = "not-found" | "bad-reference" | "insufficient" | "paid" | "overflow" | "rights-elsewhere";

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
  readonly items = new Map<string, ItemState>();
  readonly users = new Map<string, UserState>();
  readonly orders = new Map<string, OrderState>();
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
  ) {
    this.spreadActors = [actor];
  }

  // ---- reads

  findItem(id: string): ItemView | Refusal {
    const item = this.items.get(id);
    if (item === undefined) return notFound("item", id);
    return { stock: item.stock.value(), price: item.price };
  }

  findUser(id: string): UserView | Refusal {
    const user = this.users.get(id);
    if (user === undefined) return notFound("user", id);
    return { user_id: id, credit: user.credit.value() };
  }

  findOrder(id: string): OrderView | Refusal {
    const order = this.orders.get(id);
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
    this.items.set(id, new ItemState(generationZero, price));
    this.onChange(itemKey(id), "local");
  }

  addStock(id: string, amount: number): Refusal | null {
    const item = this.items.get(id);
    if (item === undefined) return notFound("item", id);
    const refusal = this.incrementSpread(item.stock, amount, 0);
    if (refusal !== null) return counterRefusal(refusal, `stock of item ${id}`, amount, item.stock.value());
    this.onChange(itemKey(id), "local");
    return null;
  }

  subtractStock(id: string, amount: number): Refusal | null {
    const item = this.items.get(id);
    if (item === undefined) return notFound("item", id);
    const shortage = this.shortage(item.stock, itemKey(id), amount, `stock of item ${id}`);
    if (shortage !== null) return shortage;
    assert(item.stock.decrement(this.actor, amount) === null, "checked rights cover the decrement");
    this.onChange(itemKey(id), "local");
    return null;
  }

  /** `wallClockMs`: the caller's clock, so that a later batch_init wins (see nextGeneration). */
  batchInitItems(count: number, startingStock: number, price: number, wallClockMs = 0): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    for (let index = 0; index < count; index++) {
      const item = new ItemState(generation, price);
      assert(this.incrementSpread(item.stock, startingStock, index) === null, "starting stock is a safe integer");
      this.items.set(String(index), item);
      this.onChange(itemKey(String(index)), "local");
    }
    return null;
  }

  // ---- payment

  createUser(id: string): void {
    assert(!this.users.has(id), `user ${id} is new`);
    this.users.set(id, new UserState(generationZero));
    this.onChange(userKey(id), "local");
  }

  addFunds(id: string, amount: number): Refusal | null {
    const user = this.users.get(id);
    if (user === undefined) return notFound("user", id);
    const refusal = this.incrementSpread(user.credit, amount, 0);
    if (refusal !== null) return counterRefusal(refusal, `credit of user ${id}`, amount, user.credit.value());
    this.onChange(userKey(id), "local");
    return null;
  }

  pay(id: string, amount: number): Refusal | null {
    const user = this.users.get(id);
    if (user === undefined) return notFound("user", id);
    const shortage = this.shortage(user.credit, userKey(id), amount, `credit of user ${id}`);
    if (shortage !== null) return shortage;
    assert(user.credit.decrement(this.actor, amount) === null, "checked rights cover the decrement");
    this.onChange(userKey(id), "local");
    return null;
  }

  batchInitUsers(count: number, startingMoney: number, wallClockMs = 0): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    for (let index = 0; index < count; index++) {
      const user = new UserState(generation);
      assert(this.incrementSpread(user.credit, startingMoney, index) === null, "starting money is a safe integer");
      this.users.set(String(index), user);
      this.onChange(userKey(String(index)), "local");
    }
    return null;
  }

  // ---- orders

  createOrder(id: string, userId: string): Refusal | null {
    assert(!this.orders.has(id), `order ${id} is new`);
    if (!this.users.has(userId)) return notFound("user", userId);
    // Rotation 0: the token stays here, where the order's next steps likely come,
    // unless this replica is leaving (then spreadActors starts with a peer).
    this.orders.set(id, this.newOrder(generationZero, userId, 0));
    this.onChange(orderKey(id), "local");
    return null;
  }

  /** `randomIndex(n)` gives an integer in [0, n). */
  batchInitOrders(
    count: number,
    itemCount: number,
    userCount: number,
    itemPrice: number,
    randomIndex: (n: number) => number,
    wallClockMs = 0,
  ): Refusal | null {
    const generation = this.nextGeneration(wallClockMs);
    if (isRefusal(generation)) return generation;
    for (let index = 0; index < count; index++) {
      const order = this.newOrder(generation, String(randomIndex(userCount)), index);
      order.lines = [[String(randomIndex(itemCount)), 1], [String(randomIndex(itemCount)), 1]];
      order.totalCost = 2 * itemPrice;
      this.orders.set(String(index), order);
      this.onChange(orderKey(String(index)), "local");
    }
    return null;
  }

  addItem(orderId: string, itemId: string, quantity: number): Refusal | null {
    const order = this.orders.get(orderId);
    if (order === undefined) return notFound("order", orderId);
    const item = this.items.get(itemId);
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
    this.onChange(orderKey(orderId), "local");
    return null;
  }

  /**
   * All or nothing in one synchronous step: every item's stock, the user's credit
   * and the order token, or nothing. A paid order is answered as done again.
   */
  checkout(orderId: string): Refusal | null {
    const order = this.orders.get(orderId);
    if (order === undefined) return notFound("order", orderId);
    if (order.paid) return null;
    const plan = this.planCheckout(orderId, order);
    if (!(plan instanceof CheckoutPlan)) return plan;
    for (const [itemId, quantity] of plan.quantities) {
      assert(plan.items.get(itemId)!.stock.decrement(this.actor, quantity) === null, "planned stock is held");
      this.onChange(itemKey(itemId), "local");
    }
    assert(plan.user.credit.decrement(this.actor, order.totalCost) === null, "planned credit is held");
    this.onChange(userKey(order.userId), "local");
    assert(order.token.decrement(this.actor, 1) === null && order.paid, "the held token pays the order");
    this.onChange(orderKey(orderId), "local");
    return null;
  }

  /** What a checkout would take, or why it cannot happen here and now. */
  private planCheckout(orderId: string, order: OrderState): CheckoutPlan | Refusal {
    const user = this.users.get(order.userId);
    if (user === undefined) return { reason: "bad-reference", message: `user ${order.userId} of order ${orderId} does not exist` };
    const plan = new CheckoutPlan(user);
    for (const [itemId, quantity] of order.lines) {
      const item = this.items.get(itemId);
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

  /** A new order whose token goes to `spreadActors[rotation]` (cyclically), like new rights. */
  private newOrder(generation: Generation, userId: string, rotation: number): OrderState {
    const order = OrderState.create(generation, userId, this.actor);
    const holder = this.spreadActors[rotation % this.spreadActors.length]!;
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
    this.handOut(counter, amount, this.spreadActors, rotation);
    return null;
  }

  /**
   * Hand `amount` of this actor's rights over to `targets` in equal shares (this
   * actor keeps its own share if it is among them); the remainder goes to the
   * targets from position `rotation` on. A share whose row has no room left (it
   * would pass a safe integer) stays here. Returns what was handed over.
   */
  private handOut(counter: BoundedCounter, amount: number, targets: readonly Actor[], rotation: number, from: Actor = this.actor): number {
    if (targets.length === 0) return 0;
    const share = Math.floor(amount / targets.length);
    const remainder = amount % targets.length;
    let handed = 0;
    for (let index = 0; index < targets.length; index++) {
      const target = targets[index]!;
      if (target === from) continue;
      const extra = (index - (rotation % targets.length) + targets.length) % targets.length < remainder ? 1 : 0;
      const given = Math.min(share + extra, counter.transferRoom(from, target));
      if (given <= 0) continue;
      assert(counter.transfer(from, target, given) === null, "held rights can be handed on");
      handed += given;
    }
    return handed;
  }

  // ---- rights between replicas

  /** The counter that holds rights for `key`: stock, credit, or the order token. */
  counterAt(key: StateKey): BoundedCounter | undefined {
    const id = key.slice(2);
    switch (key[0]) {
      case "i":
        return this.items.get(id)?.counter();
      case "u":
        return this.users.get(id)?.counter();
      case "o":
        return this.orders.get(id)?.counter();
      default:
        return undefined;
    }
  }

  /** Keys of every state whose counter gives this actor rights, as they are now. */
  *keysWithRights(): Generator<StateKey> {
    for (const [id, item] of this.items) if (item.stock.rights(this.actor) > 0) yield itemKey(id);
    for (const [id, user] of this.users) if (user.credit.rights(this.actor) > 0) yield userKey(id);
    for (const [id, order] of this.orders) if (order.token.rights(this.actor) > 0) yield orderKey(id);
  }

  /** Hand all of this actor's rights on `key` to `targets` (a replica leaving for good). */
  handOverAll(key: StateKey, targets: readonly Actor[], rotation: number): boolean {
    if (targets.includes(this.actor)) return false;
    return this.moveAllRights(this.actor, key, targets, rotation);
  }

  /** Keys of every state whose counter gives `actor` rights (a released actor's). */
  *keysWithRightsOf(actor: Actor): Generator<StateKey> {
    for (const [id, item] of this.items) if (item.stock.rights(actor) > 0) yield itemKey(id);
    for (const [id, user] of this.users) if (user.credit.rights(actor) > 0) yield userKey(id);
    for (const [id, order] of this.orders) if (order.token.rights(actor) > 0) yield orderKey(id);
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
    const counter = this.counterAt(key);
    const rights = counter?.rights(from) ?? 0;
    if (counter === undefined || rights <= 0 || targets.length === 0) return false;
    const handed = this.handOut(counter, rights, targets, rotation, from);
    // Only rows with no room left keep rights back (the leave reports them as still held).
    assert(counter.rights(from) === rights - handed, "a hand-over moves exactly what it hands");
    if (handed === 0) return false;
    this.onChange(key, "local");
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
      const counter = this.counterAt(key);
      if (counter === undefined) continue;
      const rights = counter.rights(this.actor);
      const spare = Math.min(rights, spareOf(key, rights));
      const generous = Math.min(Math.ceil(spare / 2), rightsGrantedBeyondNeedMax);
      const given = Math.min(spare, Math.max(amount, generous), counter.transferRoom(this.actor, requester));
      if (given <= 0) continue;
      assert(counter.transfer(this.actor, requester, given) === null, "spare rights can be handed on");
      this.onChange(key, "local");
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
        merged = this.mergeInto(this.items, id, decodeItem(bytes), from);
        break;
      case "u":
        merged = this.mergeInto(this.users, id, decodeUser(bytes), from);
        break;
      case "o":
        merged = this.mergeInto(this.orders, id, decodeOrder(bytes), from);
        break;
      default:
        throw new RangeError(`unknown state key ${key}`);
    }
    if (merged.changed) {
      if (merged.keptIncoming) this.onChange(key, "merged", bytes);
      else this.onChange(key, "merged");
    }
    return merged.changed;
  }

  encode(key: StateKey): Uint8Array {
    const id = key.slice(2);
    const state = key[0] === "i" ? this.items.get(id) : key[0] === "u" ? this.users.get(id) : this.orders.get(id);
    assert(state !== undefined, `state ${key} exists to be encoded`);
    if (state instanceof ItemState) return encodeItem(state);
    if (state instanceof UserState) return encodeUser(state);
    return encodeOrder(state);
  }

  private mergeInto<T extends GenerationalState<T> & { counter(): BoundedCounter; forgedAgainst(local: T, actor: Actor): string | null }>(
    states: Map<string, T>,
    id: string,
    incoming: T,
    from: "peer" | "disk",
  ): { changed: boolean; keptIncoming: boolean } {
    const local = states.get(id);
    if (from === "peer") this.checkGeneration(id, incoming.generation);
    // This replica only sends its own row once it is durable, so no peer can know
    // more of it; an older generation is dropped by the merge and needs no check.
    if (from === "peer" && (local === undefined || compareGenerations(local.generation, incoming.generation) <= 0)) {
      const known = local !== undefined && sameGeneration(local.generation, incoming.generation) ? local.counter() : undefined;
      if (incoming.counter().rowExceeds(this.actor, known)) {
        throw new ForgedStateError(`state ${id} holds more of ${this.actor}'s own row than ${this.actor} wrote`);
      }
      const stranger = this.unadmittedRowOwner(incoming.counter(), known);
      if (stranger !== undefined) throw new ForgedStateError(`state ${id} holds new rows of ${stranger}, which is not a member's actor`);
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
    if (kept !== local) states.set(id, kept);
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
