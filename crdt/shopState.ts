// The whole shop as seen by one replica: a map of CRDT states per kind, and the
// operations of API.md on them. Pure: no I/O, no clock; ids and randomness come
// from the caller. Every operation either refuses and changes nothing, or applies
// completely and reports each changed key through `onChange` in the same
// synchronous step, so a caller can commit them as one batch.
import { type Actor, type CounterRefusal, assert } from "./boundedCounter.js";
import { decodeItem, decodeOrder, decodeUser, encodeItem, encodeOrder, encodeUser, orderLinesMax } from "./codec.js";
import { type Generation, type GenerationalState, generationZero, mergeGenerational } from "./generation.js";
import { ItemState } from "./itemState.js";
import { OrderState } from "./orderState.js";
import { UserState } from "./userState.js";

export type RefusalReason = "not-found" | "bad-reference" | "insufficient" | "paid" | "overflow" | "not-token-holder";

export interface Refusal {
  readonly reason: RefusalReason;
  readonly message: string;
}

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

export class ShopState {
  readonly items = new Map<string, ItemState>();
  readonly users = new Map<string, UserState>();
  readonly orders = new Map<string, OrderState>();
  /** Lamport clock of generations: above every generation seen. */
  private generationCounter = 0;

  constructor(
    readonly actor: Actor,
    private readonly onChange: (key: StateKey) => void,
  ) {}

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
    this.onChange(itemKey(id));
  }

  addStock(id: string, amount: number): Refusal | null {
    const item = this.items.get(id);
    if (item === undefined) return notFound("item", id);
    const refusal = item.stock.increment(this.actor, amount);
    if (refusal !== null) return counterRefusal(refusal, `stock of item ${id}`, amount, item.stock.value());
    this.onChange(itemKey(id));
    return null;
  }

  subtractStock(id: string, amount: number): Refusal | null {
    const item = this.items.get(id);
    if (item === undefined) return notFound("item", id);
    const refusal = item.stock.decrement(this.actor, amount);
    if (refusal !== null) return counterRefusal(refusal, `stock of item ${id}`, amount, item.stock.value());
    this.onChange(itemKey(id));
    return null;
  }

  batchInitItems(count: number, startingStock: number, price: number): void {
    const generation = this.nextGeneration();
    for (let index = 0; index < count; index++) {
      const item = new ItemState(generation, price);
      assert(item.stock.increment(this.actor, startingStock) === null, "starting stock is a safe integer");
      this.items.set(String(index), item);
      this.onChange(itemKey(String(index)));
    }
  }

  // ---- payment

  createUser(id: string): void {
    assert(!this.users.has(id), `user ${id} is new`);
    this.users.set(id, new UserState(generationZero));
    this.onChange(userKey(id));
  }

  addFunds(id: string, amount: number): Refusal | null {
    const user = this.users.get(id);
    if (user === undefined) return notFound("user", id);
    const refusal = user.credit.increment(this.actor, amount);
    if (refusal !== null) return counterRefusal(refusal, `credit of user ${id}`, amount, user.credit.value());
    this.onChange(userKey(id));
    return null;
  }

  pay(id: string, amount: number): Refusal | null {
    const user = this.users.get(id);
    if (user === undefined) return notFound("user", id);
    const refusal = user.credit.decrement(this.actor, amount);
    if (refusal !== null) return counterRefusal(refusal, `credit of user ${id}`, amount, user.credit.value());
    this.onChange(userKey(id));
    return null;
  }

  batchInitUsers(count: number, startingMoney: number): void {
    const generation = this.nextGeneration();
    for (let index = 0; index < count; index++) {
      const user = new UserState(generation);
      assert(user.credit.increment(this.actor, startingMoney) === null, "starting money is a safe integer");
      this.users.set(String(index), user);
      this.onChange(userKey(String(index)));
    }
  }

  // ---- orders

  createOrder(id: string, userId: string): Refusal | null {
    assert(!this.orders.has(id), `order ${id} is new`);
    if (!this.users.has(userId)) return notFound("user", userId);
    this.orders.set(id, OrderState.create(generationZero, userId, this.actor));
    this.onChange(orderKey(id));
    return null;
  }

  /** `randomIndex(n)` gives an integer in [0, n). */
  batchInitOrders(count: number, itemCount: number, userCount: number, itemPrice: number, randomIndex: (n: number) => number): void {
    const generation = this.nextGeneration();
    for (let index = 0; index < count; index++) {
      const order = OrderState.create(generation, String(randomIndex(userCount)), this.actor);
      order.lines = [[String(randomIndex(itemCount)), 1], [String(randomIndex(itemCount)), 1]];
      order.totalCost = 2 * itemPrice;
      this.orders.set(String(index), order);
      this.onChange(orderKey(String(index)));
    }
  }

  addItem(orderId: string, itemId: string, quantity: number): Refusal | null {
    const order = this.orders.get(orderId);
    if (order === undefined) return notFound("order", orderId);
    const item = this.items.get(itemId);
    if (item === undefined) return { reason: "bad-reference", message: `item ${itemId} does not exist` };
    if (order.paid) return { reason: "paid", message: `order ${orderId} is already paid` };
    if (!order.holdsToken(this.actor)) return notTokenHolder(orderId);
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
    this.onChange(orderKey(orderId));
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
      this.onChange(itemKey(itemId));
    }
    assert(plan.user.credit.decrement(this.actor, order.totalCost) === null, "planned credit is held");
    this.onChange(userKey(order.userId));
    assert(order.token.decrement(this.actor, 1) === null && order.paid, "the held token pays the order");
    this.onChange(orderKey(orderId));
    return null;
  }

  /** What a checkout would take, or why it cannot happen here and now. */
  private planCheckout(orderId: string, order: OrderState): CheckoutPlan | Refusal {
    if (!order.holdsToken(this.actor)) return notTokenHolder(orderId);
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
    const missing: string[] = [];
    for (const [itemId, quantity] of plan.quantities) {
      const rights = plan.items.get(itemId)!.stock.rights(this.actor);
      if (rights < quantity) missing.push(`stock of item ${itemId} (needs ${quantity}, has ${rights})`);
    }
    const credit = user.credit.rights(this.actor);
    if (credit < order.totalCost) missing.push(`credit of user ${order.userId} (needs ${order.totalCost}, has ${credit})`);
    if (missing.length > 0) return { reason: "insufficient", message: `not enough ${missing.join(", ")}` };
    return plan;
  }

  // ---- states from disk or peers

  /** Merge a state read from disk or received from a peer; reports the key changed. */
  mergeEncoded(key: StateKey, bytes: Uint8Array): void {
    const id = key.slice(2);
    switch (key[0]) {
      case "i":
        this.mergeInto(this.items, id, decodeItem(bytes));
        break;
      case "u":
        this.mergeInto(this.users, id, decodeUser(bytes));
        break;
      case "o":
        this.mergeInto(this.orders, id, decodeOrder(bytes));
        break;
      default:
        throw new RangeError(`unknown state key ${key}`);
    }
    this.onChange(key);
  }

  encode(key: StateKey): Uint8Array {
    const id = key.slice(2);
    const state = key[0] === "i" ? this.items.get(id) : key[0] === "u" ? this.users.get(id) : this.orders.get(id);
    assert(state !== undefined, `state ${key} exists to be encoded`);
    if (state instanceof ItemState) return encodeItem(state);
    if (state instanceof UserState) return encodeUser(state);
    return encodeOrder(state);
  }

  private mergeInto<T extends GenerationalState<T>>(states: Map<string, T>, id: string, incoming: T): void {
    if (incoming.generation.counter > this.generationCounter) this.generationCounter = incoming.generation.counter;
    const local = states.get(id);
    const kept = mergeGenerational(local, incoming);
    if (kept !== local) states.set(id, kept);
  }

  private nextGeneration(): Generation {
    this.generationCounter += 1;
    return { counter: this.generationCounter, actor: this.actor };
  }
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

function notTokenHolder(orderId: string): Refusal {
  return { reason: "not-token-holder", message: `this replica does not hold the token of order ${orderId}` };
}

function counterRefusal(refusal: CounterRefusal, what: string, amount: number, value: number): Refusal {
  if (refusal === "overflow") return { reason: "overflow", message: `${what} would pass ${Number.MAX_SAFE_INTEGER}` };
  return { reason: "insufficient", message: `not enough ${what}: asked ${amount}, has ${value}` };
}
