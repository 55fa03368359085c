// Bounded counter with escrowed rights (Balegas et al., SRDS 2015).
//
// R[i][i] = increments made at actor i, R[i][j] = rights i handed to j,
// U[i] = decrements made at i. Only actor i ever writes row i and U[i], so merge
// is the entry-wise max and the type is state-based: duplicated, stale or
// reordered states are harmless. Stored sparse: most counters are touched by few
// actors.
//
// Rows only grow: every entry counts a lifetime (all increments, all decrements,
// all rights ever handed from i to j), never a balance. Each entry is kept a safe
// integer by its only writer (an operation that would pass Number.MAX_SAFE_INTEGER
// is refused as "overflow"), and sums over entries (value, rights) are computed
// exactly even when they pass it, so a large history never rounds a balance.

/** A replica incarnation: the only writer of its own row of every counter. */
export type Actor = string;

export type CounterRefusal = "insufficient-rights" | "self-transfer" | "overflow";

export class BoundedCounter {
  /** R[i][i] */
  readonly increments = new Map<Actor, number>();
  /** R[i][j] for i != j, as from -> (to -> amount) */
  readonly transfers = new Map<Actor, Map<Actor, number>>();
  /** U[i] */
  readonly decrements = new Map<Actor, number>();

  value(): number {
    let added = 0;
    let taken = 0;
    for (const amount of this.increments.values()) added += amount;
    for (const amount of this.decrements.values()) taken += amount;
    if (added <= Number.MAX_SAFE_INTEGER && taken <= Number.MAX_SAFE_INTEGER) return added - taken;
    return exactDifference([...this.increments.values()], [...this.decrements.values()]);
  }

  /** What `actor` may still decrement or hand on. */
  rights(actor: Actor): number {
    // Gains and losses summed apart: each sum is exact while it stays a safe integer.
    let gained = this.increments.get(actor) ?? 0;
    let lost = this.decrements.get(actor) ?? 0;
    for (const [from, row] of this.transfers) {
      if (from === actor) {
        for (const amount of row.values()) lost += amount;
      } else {
        gained += row.get(actor) ?? 0;
      }
    }
    if (gained <= Number.MAX_SAFE_INTEGER && lost <= Number.MAX_SAFE_INTEGER) return gained - lost;
    return this.rightsExact(actor);
  }

  /** rights(), summed in BigInt: only for histories whose sums pass a safe integer. */
  private rightsExact(actor: Actor): number {
    const gains = [this.increments.get(actor) ?? 0];
    const losses = [this.decrements.get(actor) ?? 0];
    for (const [from, row] of this.transfers) {
      if (from === actor) losses.push(...row.values());
      else gains.push(row.get(actor) ?? 0);
    }
    return exactDifference(gains, losses);
  }

  /** How much more `from` may hand to `to` before that entry would pass a safe integer. */
  transferRoom(from: Actor, to: Actor): number {
    return Number.MAX_SAFE_INTEGER - (this.transfers.get(from)?.get(to) ?? 0);
  }

  /** Rights of every actor that appears in the state (zero-rights actors included). */
  rightsByActor(): Map<Actor, number> {
    const result = new Map<Actor, number>();
    for (const actor of this.actors()) result.set(actor, this.rights(actor));
    return result;
  }

  actors(): Set<Actor> {
    const actors = new Set<Actor>(this.increments.keys());
    for (const actor of this.decrements.keys()) actors.add(actor);
    for (const [from, row] of this.transfers) {
      actors.add(from);
      for (const to of row.keys()) actors.add(to);
    }
    return actors;
  }

  increment(actor: Actor, amount: number): CounterRefusal | null {
    assertAmount(amount);
    const next = (this.increments.get(actor) ?? 0) + amount;
    if (!Number.isSafeInteger(next) || !Number.isSafeInteger(this.value() + amount)) return "overflow";
    if (amount > 0) this.increments.set(actor, next);
    return null;
  }

  decrement(actor: Actor, amount: number): CounterRefusal | null {
    assertAmount(amount);
    if (this.rights(actor) < amount) return "insufficient-rights";
    const next = (this.decrements.get(actor) ?? 0) + amount;
    if (!Number.isSafeInteger(next)) return "overflow";
    if (amount > 0) this.decrements.set(actor, next);
    return null;
  }

  transfer(from: Actor, to: Actor, amount: number): CounterRefusal | null {
    assertAmount(amount);
    if (from === to) return "self-transfer";
    const rightsBefore = this.rights(from);
    if (rightsBefore < amount) return "insufficient-rights";
    if (amount === 0) return null;
    let row = this.transfers.get(from);
    if (row === undefined) {
      row = new Map();
      this.transfers.set(from, row);
    }
    const next = (row.get(to) ?? 0) + amount;
    if (!Number.isSafeInteger(next)) return "overflow";
    row.set(to, next);
    assert(this.rights(from) === rightsBefore - amount, "a transfer must move exactly its amount");
    return null;
  }

  /** Entry-wise max: commutative, associative, idempotent. True if any entry rose. */
  merge(other: BoundedCounter): boolean {
    let changed = mergeMax(this.increments, other.increments);
    changed = mergeMax(this.decrements, other.decrements) || changed;
    for (const [from, otherRow] of other.transfers) {
      if (otherRow.size === 0) continue;
      let row = this.transfers.get(from);
      if (row === undefined) {
        row = new Map();
        this.transfers.set(from, row);
      }
      changed = mergeMax(row, otherRow) || changed;
    }
    return changed;
  }

  /** True if no entry of this state is above `other`'s: merging `other` in would give `other`. */
  coveredBy(other: BoundedCounter): boolean {
    if (!entriesCoveredBy(this.increments, other.increments) || !entriesCoveredBy(this.decrements, other.decrements)) return false;
    for (const [from, row] of this.transfers) {
      if (row.size === 0) continue;
      const otherRow = other.transfers.get(from);
      if (otherRow === undefined || !entriesCoveredBy(row, otherRow)) return false;
    }
    return true;
  }

  /**
   * True if this state holds more of `actor`'s own row (its increments, its
   * decrements, or what it handed on) than `known` does. Only `actor` writes that
   * row, so when `known` is `actor`'s own state, such a state was forged.
   */
  rowExceeds(actor: Actor, known: BoundedCounter | undefined): boolean {
    if ((this.increments.get(actor) ?? 0) > (known?.increments.get(actor) ?? 0)) return true;
    if ((this.decrements.get(actor) ?? 0) > (known?.decrements.get(actor) ?? 0)) return true;
    const knownRow = known?.transfers.get(actor);
    for (const [to, amount] of this.transfers.get(actor) ?? []) if (amount > (knownRow?.get(to) ?? 0)) return true;
    return false;
  }

  /**
   * True if this state holds more of `actor`'s increments or decrements than
   * `known`: a change `actor` made. Transfers out of its row do not count (the heir of
   * a released actor writes those).
   */
  changesExceed(actor: Actor, known: BoundedCounter | undefined): boolean {
    if ((this.increments.get(actor) ?? 0) > (known?.increments.get(actor) ?? 0)) return true;
    return (this.decrements.get(actor) ?? 0) > (known?.decrements.get(actor) ?? 0);
  }

  clone(): BoundedCounter {
    const copy = new BoundedCounter();
    copy.merge(this);
    return copy;
  }

  equals(other: BoundedCounter): boolean {
    return (
      mapsEqual(this.increments, other.increments) &&
      mapsEqual(this.decrements, other.decrements) &&
      this.transfers.size === other.transfers.size &&
      [...this.transfers].every(([from, row]) => {
        const otherRow = other.transfers.get(from);
        return otherRow !== undefined && mapsEqual(row, otherRow);
      })
    );
  }

  /**
   * Why this state could not have come from any correct history, or null if it
   * could: every entry a safe non-negative integer, no self-transfer, no actor
   * with negative rights. Checked on every state read from disk or a peer.
   */
  invalidity(): string | null {
    for (const [actor, amount] of this.increments) if (!isAmount(amount)) return `increment of ${actor} is ${amount}`;
    for (const [actor, amount] of this.decrements) if (!isAmount(amount)) return `decrement of ${actor} is ${amount}`;
    for (const [from, row] of this.transfers) {
      for (const [to, amount] of row) {
        if (from === to) return `transfer from ${from} to itself`;
        if (!isAmount(amount)) return `transfer from ${from} to ${to} is ${amount}`;
      }
    }
    if (!Number.isSafeInteger(this.value())) return "value is not a safe integer";
    for (const actor of this.actors()) {
      const rights = this.rights(actor);
      if (rights < 0) return `rights of ${actor} are negative`;
      if (!Number.isSafeInteger(rights)) return `rights of ${actor} are not a safe integer`;
    }
    return null;
  }
}

/** Σgains − Σlosses in exact integer arithmetic (a result past a safe integer is returned rounded, for invalidity() to name). */
function exactDifference(gains: readonly number[], losses: readonly number[]): number {
  let difference = 0n;
  for (const amount of gains) difference += BigInt(amount);
  for (const amount of losses) difference -= BigInt(amount);
  return Number(difference);
}

function mergeMax(target: Map<Actor, number>, source: ReadonlyMap<Actor, number>): boolean {
  let changed = false;
  for (const [actor, amount] of source) {
    const current = target.get(actor);
    if (current === undefined || amount > current) {
      target.set(actor, amount);
      changed = true;
    }
  }
  return changed;
}

function entriesCoveredBy(entries: ReadonlyMap<Actor, number>, other: ReadonlyMap<Actor, number>): boolean {
  for (const [actor, amount] of entries) {
    const otherAmount = other.get(actor);
    if (otherAmount === undefined || amount > otherAmount) return false;
  }
  return true;
}

function mapsEqual(a: ReadonlyMap<Actor, number>, b: ReadonlyMap<Actor, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}

function isAmount(amount: number): boolean {
  return Number.isSafeInteger(amount) && amount >= 0;
}

function assertAmount(amount: number): void {
  assert(isAmount(amount), `an amount must be a safe non-negative integer, got ${amount}`);
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`invariant broken: ${message}`);
}
