// An order and its token. The token is a bounded counter of value 1 whose single
// right lives at one actor: that actor is the order's only writer (addItem needs
// the right, checkout spends it). Because writers take turns, the lines need no
// merge of their own: the content with the higher version is the newer one.
import { type Actor, BoundedCounter, assert } from "./boundedCounter.js";
import { type Generation, type GenerationalState, sameGeneration } from "./generation.js";

/** [item id, quantity] as charged when the line was added. */
export type OrderLine = readonly [itemId: string, quantity: number];

export class OrderState implements GenerationalState<OrderState> {
  constructor(
    readonly generation: Generation,
    public userId: string,
    public lines: OrderLine[],
    public totalCost: number,
    /** Bumped by every change of lines or totalCost; only the token holder changes them. */
    public version: number,
    readonly token: BoundedCounter,
  ) {}

  /** A new unpaid order whose token is made at (and held by) `creator`. */
  static create(generation: Generation, userId: string, creator: Actor): OrderState {
    const token = new BoundedCounter();
    assert(token.increment(creator, 1) === null, "a fresh token takes one unit");
    return new OrderState(generation, userId, [], 0, 0, token);
  }

  /** The token's one unit was spent by a checkout. */
  get paid(): boolean {
    return this.token.value() === 0;
  }

  holdsToken(actor: Actor): boolean {
    return this.token.rights(actor) === 1;
  }

  mergeSameGeneration(other: OrderState): boolean {
    const tokenChanged = this.token.merge(other.token);
    if (compareContent(other, this) <= 0) return tokenChanged;
    this.userId = other.userId;
    this.lines = other.lines.slice();
    this.totalCost = other.totalCost;
    this.version = other.version;
    return true;
  }

  coveredBy(other: OrderState): boolean {
    return compareContent(this, other) <= 0 && this.token.coveredBy(other.token);
  }

  /**
   * What a peer's state of our generation claims that no peer may write, or null:
   * a different user, or newer lines while `actor` holds the token (the only writer).
   */
  forgedAgainst(local: OrderState, actor: Actor): string | null {
    if (this.userId !== local.userId) return `user ${this.userId} differs from the order's user ${local.userId}`;
    if (local.holdsToken(actor) && compareContent(this, local) > 0) return `lines changed while ${actor} holds the order's token`;
    return null;
  }

  /** The counter whose rights this state carries. */
  counter(): BoundedCounter {
    return this.token;
  }

  clone(): OrderState {
    return new OrderState(this.generation, this.userId, this.lines.slice(), this.totalCost, this.version, this.token.clone());
  }

  equals(other: OrderState): boolean {
    return sameGeneration(this.generation, other.generation) && compareContent(this, other) === 0 && this.token.equals(other.token);
  }
}

/**
 * Total order on content: version first. Two different contents of one version
 * cannot arise while the token protocol holds; comparing the rest keeps merge
 * deterministic (commutative and associative) even so.
 */
function compareContent(a: OrderState, b: OrderState): number {
  if (a.version !== b.version) return a.version - b.version;
  if (a.totalCost !== b.totalCost) return a.totalCost - b.totalCost;
  if (a.userId !== b.userId) return a.userId < b.userId ? -1 : 1;
  if (a.lines.length !== b.lines.length) return a.lines.length - b.lines.length;
  for (let index = 0; index < a.lines.length; index++) {
    const [itemA, quantityA] = a.lines[index]!;
    const [itemB, quantityB] = b.lines[index]!;
    if (itemA !== itemB) return itemA < itemB ? -1 : 1;
    if (quantityA !== quantityB) return quantityA - quantityB;
  }
  return 0;
}
