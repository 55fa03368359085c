// The ledger of a chaos run: from every recorded request (chaosLoad.ts) and the
// state all replicas agree on afterwards, check G1, G2 and G4 of DESIGN.md:
// - every item's stock and user's credit equals its initial value + acknowledged
//   increments − acknowledged decrements − what the paid orders took, where a
//   request of unknown outcome may count either way (so the value must fall in a
//   range), and a 4xx counts as nothing;
// - an order answered 2xx reads paid; an order reads paid only if some checkout of
//   it was answered 2xx or had an unknown outcome;
// - nothing is negative, nothing answered 5xx.
// Pure: no I/O.
import type { OpRecord, ShopShape } from "./chaosLoad.js";

export interface OrderRead {
  readonly paid: boolean;
  readonly items: readonly (readonly [string, number])[];
  readonly user_id: string;
  readonly total_cost: number;
}

export interface AgreedState {
  /** Stock per item id. */
  readonly stock: ReadonlyMap<string, number>;
  /** Credit per user id. */
  readonly credit: ReadonlyMap<string, number>;
  readonly orders: ReadonlyMap<string, OrderRead>;
}

export interface LedgerReport {
  /** Number of violations found (0 when everything holds). */
  readonly violations: number;
  /** A few of them, readable. */
  readonly examples: readonly string[];
  /** Writes (checkouts among them) by outcome. */
  readonly writes: { readonly ok2xx: number; readonly client4xx: number; readonly unknown: number; readonly refused: number; readonly server5xx: number };
  readonly paidOrders: number;
}

const examplesMax = 12;

/** Acknowledged and unknown amounts on one counter. */
class Account {
  added = 0;
  addedUnknown = 0;
  taken = 0;
  takenUnknown = 0;

  range(initial: number, takenByOrders: number): [low: number, high: number] {
    const base = initial + this.added - this.taken - takenByOrders;
    return [base - this.takenUnknown, base + this.addedUnknown];
  }
}

/** Violations found: their count and the first examplesMax, readable. */
class Violations {
  count = 0;
  readonly examples: string[] = [];

  add(text: string): void {
    this.count += 1;
    if (this.examples.length < examplesMax) this.examples.push(text);
  }
}

export function checkLedger(shape: ShopShape, records: readonly OpRecord[], agreed: AgreedState): LedgerReport {
  const violations = new Violations();
  const { stockAccounts, creditAccounts, checkouts, writes } = accountWrites(records, violations);
  const { takenByOrdersStock, takenByOrdersCredit, paidOrders } = checkOrders(shape, agreed, checkouts, violations);
  checkCounters(violations, "stock of item", shape.items, shape.itemStock, agreed.stock, stockAccounts, takenByOrdersStock);
  checkCounters(violations, "credit of user", shape.users, shape.userCredit, agreed.credit, creditAccounts, takenByOrdersCredit);
  return { violations: violations.count, examples: violations.examples, writes, paidOrders };
}

/** Every write on its counter's account, acknowledged or unknown; the checkout attempts per order; a 5xx is a violation. */
function accountWrites(records: readonly OpRecord[], violations: Violations) {
  const stockAccounts = new Map<string, Account>();
  const creditAccounts = new Map<string, Account>();
  const checkouts = new Map<string, OpRecord[]>();
  const writes = { ok2xx: 0, client4xx: 0, unknown: 0, refused: 0, server5xx: 0 };
  for (const record of records) {
    if (record.outcome === "5xx") violations.add(`5xx answer: ${record.kind} ${record.id} at replica ${record.replicaIndex + 1}: ${record.detail}`);
    if (record.kind.startsWith("find")) continue;
    if (record.outcome === "2xx") writes.ok2xx++;
    else if (record.outcome === "4xx") writes.client4xx++;
    else if (record.outcome === "unknown") writes.unknown++;
    else if (record.outcome === "refused") writes.refused++;
    else writes.server5xx++;
    if (record.kind === "checkout") {
      checkouts.set(record.id, [...(checkouts.get(record.id) ?? []), record]);
      continue;
    }
    const accounts = record.kind === "addStock" || record.kind === "subtract" ? stockAccounts : creditAccounts;
    const account = accounts.get(record.id) ?? new Account();
    accounts.set(record.id, account);
    const increment = record.kind === "addStock" || record.kind === "addFunds";
    // A 4xx or a refused connection changed nothing; a 5xx is already a violation
    // and may have done anything.
    if (record.outcome === "2xx") {
      if (increment) account.added += record.amount;
      else account.taken += record.amount;
    } else if (record.outcome === "unknown" || record.outcome === "5xx") {
      if (increment) account.addedUnknown += record.amount;
      else account.takenUnknown += record.amount;
    }
  }
  return { stockAccounts, creditAccounts, checkouts, writes };
}

/** Each order paid exactly when a checkout may have succeeded (G2, G4); what the paid orders took from stock and credit. */
function checkOrders(shape: ShopShape, agreed: AgreedState, checkouts: ReadonlyMap<string, OpRecord[]>, violations: Violations) {
  const takenByOrdersStock = new Map<string, number>();
  const takenByOrdersCredit = new Map<string, number>();
  let paidOrders = 0;
  for (let index = 0; index < shape.orders; index++) {
    const orderId = String(index);
    const order = agreed.orders.get(orderId);
    const attempts = checkouts.get(orderId) ?? [];
    if (order === undefined) {
      violations.add(`order ${orderId} could not be read`);
      continue;
    }
    const answered2xx = attempts.some((attempt) => attempt.outcome === "2xx");
    const maybe = attempts.some((attempt) => attempt.outcome === "2xx" || attempt.outcome === "unknown" || attempt.outcome === "5xx");
    if (answered2xx && !order.paid) violations.add(`order ${orderId}: checkout answered 2xx, but it reads unpaid (lost, G2/G4)`);
    if (order.paid && !maybe) {
      const said = attempts.length === 0 ? "never checked out" : "every checkout answered 4xx or was refused a connection";
      violations.add(`order ${orderId}: reads paid, but ${said} (invented, G2)`);
    }
    if (!order.paid) continue;
    paidOrders += 1;
    for (const [itemId, quantity] of order.items) takenByOrdersStock.set(itemId, (takenByOrdersStock.get(itemId) ?? 0) + quantity);
    takenByOrdersCredit.set(order.user_id, (takenByOrdersCredit.get(order.user_id) ?? 0) + order.total_cost);
  }
  return { takenByOrdersStock, takenByOrdersCredit, paidOrders };
}

/** Each counter read, not negative (G1), and within what the acknowledged and unknown writes allow (G2). */
function checkCounters(
  violations: Violations,
  what: string,
  count: number,
  initial: number,
  values: ReadonlyMap<string, number>,
  accounts: ReadonlyMap<string, Account>,
  takenByOrders: ReadonlyMap<string, number>,
): void {
  for (let index = 0; index < count; index++) {
    const id = String(index);
    const value = values.get(id);
    if (value === undefined) {
      violations.add(`${what} ${id} could not be read`);
      continue;
    }
    if (value < 0) violations.add(`${what} ${id} is ${value}: negative (G1)`);
    const [low, high] = (accounts.get(id) ?? new Account()).range(initial, takenByOrders.get(id) ?? 0);
    if (value < low || value > high) {
      const why =
        value < low ? "below: an acknowledged increment lost or a decrement invented" : "above: an acknowledged decrement lost or an increment invented";
      violations.add(`${what} ${id} is ${value}, acknowledged writes allow [${low}, ${high}]: ${why} (G2)`);
    }
  }
}
